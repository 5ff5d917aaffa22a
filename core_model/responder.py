"""Text in, safe Korean text out: the whole inference path for a batch of messages."""
from __future__ import annotations

from pathlib import Path

from core_model import artifacts, device
from core_model.decode import BeamDecoder, GreedyDecoder
from core_model.text import neutralize_mentions, normalize
from core_model.tokenizer import Tokenizer, detokenize
from core_model.vocab import EOS_ID, Vocab

FALLBACK_REPLY = "음, 뭐라고 답해야 할지 모르겠어요."


def render(vocab: Vocab, row: list[int]) -> tuple[str, bool]:
    """Decoded ids -> (reply text a user may see, whether the model ended it with <eos>)."""
    text = normalize(detokenize(vocab.decode(row)))
    return neutralize_mentions(text) or FALLBACK_REPLY, EOS_ID in row


class Responder:
    """A loaded model with its tokenizer and compiled decoder. Use from one thread at a time."""

    def __init__(self, model_dir: str | Path, tokenizer: Tokenizer | None = None, beam_width: int = 1) -> None:
        self.device = device.configure()
        self.tokenizer = tokenizer or Tokenizer()
        self.loaded = artifacts.load(model_dir)
        self.decoder = (BeamDecoder(self.loaded.model, beam_width) if beam_width > 1
                        else GreedyDecoder(self.loaded.model))

    @property
    def version(self) -> str:
        return self.loaded.version

    def encode(self, text: str) -> list[int]:
        cfg = self.loaded.model.config
        return self.loaded.vocab.encode(self.tokenizer.tokenize(text), cfg.max_input_len)

    def reply_batch(self, texts: list[str]) -> list[str]:
        """One batched decode for all `texts`; every reply is normalized and cannot ping anyone."""
        return [text for text, _ in self.reply_batch_detailed(texts)]

    prepare = encode  # the worker tokenizes on its own thread, overlapping the previous decode

    def reply_prepared(self, batch_ids: list[list[int]]) -> list[str]:
        return [text for text, _ in self._replies(batch_ids)]

    def reply_batch_detailed(self, texts: list[str]) -> list[tuple[str, bool]]:
        """(reply, whether the model ended it with <eos> rather than the length limit) per text."""
        return self._replies([self.encode(t) for t in texts])

    def _replies(self, batch_ids: list[list[int]]) -> list[tuple[str, bool]]:
        return [render(self.loaded.vocab, row) for row in self.decoder(batch_ids)]

    def reply(self, text: str) -> str:
        return self.reply_batch([text])[0]

    def warm_up(self, sentences: int = 300) -> None:
        """Trace the decode graph and let the JVM compile Okt's hot paths before the first user.

        Okt is ~30x slower on its first few hundred calls (the JIT has not compiled it yet), so it
        tokenizes pseudo-sentences made of the vocabulary's own words (no data file needed).
        """
        words = self.loaded.vocab.tokens[4:]
        for i in range(sentences):
            self.tokenizer.tokenize(detokenize(words[(i * 7) % max(1, len(words) - 8):][:8]))
        self.reply_batch(["안녕"])
