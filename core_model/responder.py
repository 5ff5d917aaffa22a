"""Text in, safe Korean text out: the whole inference path for a batch of messages.

With an answer bank and a response selector in the model directory, the answers to the questions
most like each message are scored (`core_model.ranking`) and the best one is the reply when it scores
well enough. Below `ACKNOWLEDGE_BELOW` the best answer is more often unfit than not, so a short
acknowledgement is sent instead (`core_model.acknowledgements`; for a message in a situation it
recognises, whose acknowledgement says the message back, below the higher `SITUATION_ACKNOWLEDGE_BELOW`);
below `GENERATE_BELOW` (an emoji, a foreign word, something the bank never saw) the seq2seq model
speaks in its own words, so only those messages are decoded. Without a bank (or with
`answer_bank=False`) every reply is generated.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core_model import artifacts, device
from core_model.acknowledgements import DISTRESS, Situation, acknowledgements, situation
from core_model.answer_bank import AnswerBank
from core_model.data import text_key
from core_model.decode import BeamDecoder, GreedyDecoder
from core_model.ranking import AnswerRanker
from core_model.text import neutralize_mentions, normalize
from core_model.tokenizer import Tokenizer, detokenize
from core_model.vocab import EOS_ID, Vocab

GENERATE_BELOW = 0.6
"""Score (question similarity + fit, `core_model.ranking`) under which the model's own reply is sent
instead of the best bank answer. On the dev split 99% of questions have a bank answer scoring above
0.73 (median 1.09); an emoji, "ㅎㅎ" or "hello" reach 0.40-0.45 with their best answer, which then
fits by accident only."""
ACKNOWLEDGE_BELOW = 0.925
"""Score under which the best bank answer is too often unfit: a short acknowledgement that invites the
user to say more is sent instead (rated 1, "acceptable but generic", in every one of its ratings). Set
on the dev split's rated candidate pool (200 questions x 5 candidates, 2 blind raters;
`scripts/candidate_study.py`) with the selector trained on 2,854 rater preferences (two members): best
answer always 43% fitting / 29% unfit; acknowledged below 0.875: 38.5% / 20% (19.5% acknowledged);
below 0.925: 38% / 17% (25%); below 0.95: 35.5% / 15.5% (31.5%): past 0.925 each unfit reply avoided
costs more than one fitting one. A reply to something the user never said is the worst one a user can
get."""
SITUATION_ACKNOWLEDGE_BELOW = 1.05
"""The threshold for a message in a situation (`core_model.acknowledgements.situation`), whose
acknowledgement reacts to what it says: rated blind on the dev split's 44 such messages scoring 0.925 to
1.05 (2 raters, reports/ratings/dev-ack2), the situation's acknowledgement was 50% fitting / 9% unfit,
the best bank answer 32% / 43%."""
FALLBACK_REPLY = "음, 뭐라고 답해야 할지 모르겠어요."


def acknowledge_below(found: Situation | None) -> float:
    """The score under which a message in situation `found` (None: in none) gets an acknowledgement
    instead of the best bank answer. A wish to die gets one whatever its score (`DISTRESS`)."""
    return SITUATION_ACKNOWLEDGE_BELOW if found else ACKNOWLEDGE_BELOW


def render(vocab: Vocab, row: list[int]) -> tuple[str, bool]:
    """Decoded ids -> (reply text a user may see, whether the model ended it with <eos>)."""
    return safe_text(detokenize(vocab.decode(row))), EOS_ID in row


def safe_text(text: str) -> str:
    """Normalized, unable to ping anyone, never empty."""
    return neutralize_mentions(normalize(text)) or FALLBACK_REPLY


@dataclass(frozen=True)
class Prepared:
    """A message made ready for the model: normalized text (for the ranker) and token ids."""
    text: str
    ids: list[int]


@dataclass(frozen=True)
class Reply:
    text: str
    ended: bool  # the model ended it with <eos> (always true for a bank answer)
    source: str  # "model" (its own words), "bank" (a human-written answer) or "acknowledgement"


class Responder:
    """A loaded model with its tokenizer, compiled decoder and answer ranker. Use from one thread at a time."""

    def __init__(self, model_dir: str | Path, tokenizer: Tokenizer | None = None, beam_width: int = 1,
                 answer_bank: bool = True, loaded: artifacts.LoadedModel | None = None) -> None:
        """`answer_bank` false: generation only. `loaded`: a model already loaded from `model_dir`."""
        self.device = device.configure()
        self.tokenizer = tokenizer or Tokenizer()
        self.loaded = loaded or artifacts.load(model_dir)
        model = self.loaded.model
        self.decoder = BeamDecoder(model, beam_width) if beam_width > 1 else GreedyDecoder(model)
        bank, selector = self.loaded.bank, self.loaded.selector
        self.ranker: AnswerRanker | None = None
        self._by_key: dict[str, list[int]] = {}
        if answer_bank and bank and selector:
            self._use_bank(bank)

    def _use_bank(self, bank: AnswerBank) -> None:
        """Rank answers from `bank` from the next batch on (built first, then swapped in one assignment)."""
        by_key: dict[str, list[int]] = {}
        for j, question in enumerate(bank.questions):
            by_key.setdefault(text_key(question), []).append(j)
        self.ranker, self._by_key = AnswerRanker(bank, self.loaded.selector), by_key

    def set_extra_pairs(self, pairs: list[tuple[str, str]]) -> None:
        """Answer from the model's bank plus these (question, answer) pairs (approved taught answers),
        replacing any given before. Called off the decode thread; the swap is one assignment."""
        bank = self.loaded.bank
        if self.ranker is None or bank is None:
            return
        self._use_bank(bank.extended(pairs) if pairs else bank)

    @property
    def version(self) -> str:
        return self.loaded.version

    def encode(self, text: str) -> list[int]:
        cfg = self.loaded.model.config
        return self.loaded.vocab.encode(self.tokenizer.tokenize(text), cfg.max_input_len)

    def prepare(self, text: str) -> Prepared:
        """Tokenize (Okt): the worker calls this on its own thread, overlapping the previous decode."""
        return Prepared(normalize(text), self.encode(text))

    def reply_prepared(self, batch: list[Prepared]) -> list[tuple[str, str]]:
        """(reply, source) per prepared message; source is "model" (its own words) or "bank"."""
        return [(r.text, r.source) for r in self.replies(batch)]

    def reply_batch(self, texts: list[str]) -> list[str]:
        """One batched call for all `texts`; every reply is normalized and cannot ping anyone."""
        return [r.text for r in self.replies([self.prepare(t) for t in texts])]

    def replies(self, batch: list[Prepared]) -> list[Reply]:
        picks = self._bank_picks(batch) if self.ranker and batch else [None] * len(batch)
        todo = [i for i, pick in enumerate(picks) if pick is None]
        out: list[Reply | None] = list(picks)
        if todo:
            for i, row in zip(todo, self.decoder([batch[i].ids for i in todo])):
                text, ended = render(self.loaded.vocab, row)
                out[i] = Reply(text, ended, "model")
        return out  # type: ignore[return-value]

    def _bank_picks(self, batch: list[Prepared]) -> list[Reply | None]:
        """The best-fitting bank answer per message, or None where the model should speak.

        A question the bank holds as it is (spacing and punctuation aside) is answered from the
        answers to it: what the corpus, or a user's `/teach`, says to exactly this question comes first,
        after one thing only: a wish to die or disappear, which always gets care and a helpline.
        """
        ranker, by_key = self.ranker, self._by_key  # one consistent bank even if a new one is swapped in
        assert ranker is not None
        texts = [p.text for p in batch]
        best, scores = ranker.best(texts)
        same = [by_key.get(text_key(t), []) for t in texts]
        answered = [i for i, js in enumerate(same) if js]
        fits = dict(zip(answered, ranker.score([texts[i] for i in answered],
                                               [[ranker.bank.answers[j] for j in same[i]] for i in answered])))
        found = [situation(t) for t in texts]
        unsure = [i for i, (score, js, there) in enumerate(zip(scores, same, found))
                  if there is DISTRESS or (not js and GENERATE_BELOW <= score < acknowledge_below(there))]
        phrases = {i: acknowledgements(texts[i]) for i in unsure}
        acks = dict(zip(unsure, ranker.score([texts[i] for i in unsure], [phrases[i] for i in unsure])))
        out: list[Reply | None] = []
        for i, (j, score, js) in enumerate(zip(best, scores, same)):
            if i in acks:
                out.append(Reply(phrases[i][int(np.argmax(acks[i]))], True, "acknowledgement"))
            elif js:
                out.append(Reply(safe_text(ranker.bank.answers[js[int(np.argmax(fits[i]))]]), True, "bank"))
            elif score >= GENERATE_BELOW:
                out.append(Reply(safe_text(ranker.bank.answers[j]), True, "bank"))
            else:
                out.append(None)
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
        self.reply_batch(["안녕", "😀"])  # a bank answer and a generated one
