"""Text in, safe Korean text out: the whole inference path for a batch of messages.

The model decodes a reply for every message in one batched call. When the model directory has an
answer bank (and `candidates` > 0), the answers to the most similar training questions join the
model's reply as candidates, the model scores them all, and `consensus.choose` picks one.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core_model import artifacts, consensus, device
from core_model.data import text_key
from core_model.decode import BeamDecoder, GreedyDecoder
from core_model.scoring import SequenceScorer
from core_model.text import neutralize_mentions, normalize
from core_model.tokenizer import Tokenizer, detokenize
from core_model.vocab import EOS_ID, PAD_ID, Vocab

FALLBACK_REPLY = "음, 뭐라고 답해야 할지 모르겠어요."


def render(vocab: Vocab, row: list[int]) -> tuple[str, bool]:
    """Decoded ids -> (reply text a user may see, whether the model ended it with <eos>)."""
    return safe_text(detokenize(vocab.decode(row))), EOS_ID in row


def safe_text(text: str) -> str:
    """Normalized, unable to ping anyone, never empty."""
    return neutralize_mentions(normalize(text)) or FALLBACK_REPLY


@dataclass(frozen=True)
class Prepared:
    """A message made ready for the model: normalized text (for retrieval) and token ids."""
    text: str
    ids: list[int]


class Responder:
    """A loaded model with its tokenizer and compiled decoder. Use from one thread at a time."""

    def __init__(self, model_dir: str | Path, tokenizer: Tokenizer | None = None, beam_width: int = 1,
                 candidates: int = consensus.DEFAULT_CANDIDATES, loaded: artifacts.LoadedModel | None = None) -> None:
        """`loaded`: a model already loaded from `model_dir`, to decode it another way without a second copy."""
        self.device = device.configure()
        self.tokenizer = tokenizer or Tokenizer()
        self.loaded = loaded or artifacts.load(model_dir)
        model = self.loaded.model
        self.decoder = BeamDecoder(model, beam_width) if beam_width > 1 else GreedyDecoder(model)
        self.bank = self.loaded.bank if candidates > 0 else None
        self.candidates = candidates
        self.last_sources: list[str] = []  # per reply of the last batch: "model" or "bank" (for metrics)
        if self.bank is not None:
            self._scorer = SequenceScorer(model)
            cap = model.config.max_reply_len - 1
            self._bank_ids = [self.loaded.vocab.encode(t, cap) for t in self.bank.answer_tokens or []]

    @property
    def version(self) -> str:
        return self.loaded.version

    def encode(self, text: str) -> list[int]:
        cfg = self.loaded.model.config
        return self.loaded.vocab.encode(self.tokenizer.tokenize(text), cfg.max_input_len)

    def prepare(self, text: str) -> Prepared:
        """Tokenize (Okt): the worker calls this on its own thread, overlapping the previous decode."""
        return Prepared(normalize(text), self.encode(text))

    def reply_batch(self, texts: list[str]) -> list[str]:
        """One batched decode for all `texts`; every reply is normalized and cannot ping anyone."""
        return [text for text, _ in self.reply_batch_detailed(texts)]

    def reply_prepared(self, batch: list[Prepared]) -> list[tuple[str, str]]:
        """(reply, source) per prepared message; source is "model" (its own words) or "bank"."""
        replies = self._replies(batch)
        return [(text, source) for (text, _), source in zip(replies, self.last_sources)]

    def reply_batch_detailed(self, texts: list[str]) -> list[tuple[str, bool]]:
        """(reply, whether it ended by <eos> rather than the length limit) per text."""
        return self._replies([self.prepare(t) for t in texts])

    def _replies(self, batch: list[Prepared]) -> list[tuple[str, bool]]:
        rows = self.decoder([p.ids for p in batch])
        generated = [render(self.loaded.vocab, row) for row in rows]
        if self.bank is None or not batch:
            self.last_sources = ["model"] * len(batch)
            return generated
        return self._choose(batch, rows, generated)

    def _choose(self, batch: list[Prepared], rows: list[list[int]],
                generated: list[tuple[str, bool]]) -> list[tuple[str, bool]]:
        """Per message: the model's reply or a retrieved answer, by `consensus.choose`.

        A question the bank holds as it is (spacing and punctuation aside) is answered from the bank
        alone: what the corpus, or a user's `/teach`, says to exactly this question comes first.
        """
        assert self.bank is not None
        found = self.bank.candidates([p.text for p in batch], self.candidates)
        keys = [text_key(p.text) for p in batch]
        exact = [[j for j in js if text_key(self.bank.questions[j]) == key] for key, js in zip(keys, found)]
        own = [[t for t in (row[: row.index(EOS_ID)] if EOS_ID in row else row) if t != PAD_ID] for row in rows]
        scores = self._scorer([p.ids for p in batch],
                              [[mine] + [self._bank_ids[j] for j in js] for mine, js in zip(own, found)])
        out, self.last_sources = [], []
        for gen, js, same, score in zip(generated, found, exact, scores):
            texts = [gen[0]] + [self.bank.answers[j] for j in js]
            if same:
                keep = [1 + js.index(j) for j in same]
                pick = keep[consensus.choose([texts[k] for k in keep], score[keep])]
            else:
                pick = consensus.choose(texts, score)
            out.append(gen if pick == 0 else (safe_text(texts[pick]), True))
            self.last_sources.append("model" if pick == 0 else "bank")
        return out

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
