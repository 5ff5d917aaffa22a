"""Which bank answer fits a message: a shortlist by similar questions, reranked by how the answer fits.

1. Shortlist: the answers to the 20 bank questions most like the message (TF-IDF over character
   n-grams): what people answered to a similar question is grounded in a situation like the user's.
2. Rerank: question similarity + the answer's fit to the message, where fit = the selector's score
   (`core_model.selector`, a dual encoder trained for this choice) + 0.5 x the words the answer
   shares with the message (TF-IDF cosine).

Chosen on the dev split, judged by two blind raters on 60 dev questions (fitting / unfit):
nearest question's answer 20% / 38%; shortlist reranked by the selector alone 25% / 38%; by the
selector + 0.5 x shared words 32% / 38% (this); the same with the selector's message vectors in the
shortlist's similarity 28% / 40%. Scoring every bank answer by fit alone, without the shortlist, was
far worse (10-15% / 48-68%): over 10k answers a weak scorer finds answers that share a word ("계속")
and nothing else. The seq2seq model's log-probability of an answer, with or without an anti-language-
model term, did not help the dev Recall@1 of 10 at any weight, so no seq2seq pass is spent here.

`fit` alone is what `chatbot eval` ranks held-out answers by (Recall@1 of 10; dev: selector 0.35,
shared words 0.37, fit 0.43): a held-out answer has no bank question to be similar to.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core_model.answer_bank import AnswerBank
from core_model.selector import Selector

SHORTLIST = 20
OVERLAP_WEIGHT = 0.5
WRITTEN_GATE_MARGIN = 0.3
"""How much less a written answer's score counts when deciding whether the bank can answer at all (the
thresholds in `core_model.responder`). A written answer (data/written_pairs.csv) says its own question back,
so shared words and fit flatter it when the message is only loosely like that question. Rated blind on the
dev split (2 raters): counted at face value, written answers replaced 25 acknowledgements, 10 of them unfit;
counted 0.3 lower, the 113 dev replies that changed when they joined the bank went from 36 fitting / 32
unfit to 48 / 28. Which answer is sent is still decided by the full score (a bonus for written answers
there raised unfit on held-out: reports/ratings/dev-written/README.md)."""


class AnswerRanker:
    """Scores answers for messages; holds the bank's answer vectors (computed once, at load)."""

    def __init__(self, bank: AnswerBank, selector: Selector) -> None:
        self.bank, self.selector = bank, selector
        self._vectors = selector.embed_answers(bank.answers)  # (answers, dim), unit rows
        self._overlap = bank.vectorize(bank.answers)          # sparse TF-IDF rows, unit norm
        self._gate_offset = WRITTEN_GATE_MARGIN * np.asarray(bank.written, dtype=np.float32)

    def _shortlist(self, messages: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """-> (shortlisted bank indices, their scores: question similarity + fit), each (messages, SHORTLIST)."""
        nearest, sims = self.bank.nearest(messages, SHORTLIST)
        queries = self.selector.embed_messages(messages)
        fit = np.einsum("md,mkd->mk", queries, self._vectors[nearest])
        words = self.bank.vectorize(messages)
        overlap = np.stack([(self._overlap[row] @ words[m].T).toarray()[:, 0] for m, row in enumerate(nearest)])
        return nearest, sims + fit + OVERLAP_WEIGHT * overlap

    def best(self, messages: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """-> (bank index of the best answer, how well the bank can answer) per message: the best score
        (question similarity + fit), a written answer's counted `WRITTEN_GATE_MARGIN` lower."""
        nearest, total = self._shortlist(messages)
        pick = np.argmax(total, axis=1)
        rows = np.arange(len(messages))
        return nearest[rows, pick], np.max(total - self._gate_offset[nearest], axis=1)

    def ranked(self, messages: Sequence[str]) -> np.ndarray:
        """The shortlist's bank indices per message, best first (for studies of the whole ranking)."""
        nearest, total = self._shortlist(messages)
        return np.take_along_axis(nearest, np.argsort(-total, axis=1, kind="stable"), 1)

    def score(self, messages: Sequence[str], candidates: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """Fit of any candidate texts (held-out answers, say) to their message: one array per message."""
        flat = [c for options in candidates for c in options]
        if not flat:
            return [np.zeros(0) for _ in messages]
        owner = np.repeat(np.arange(len(messages)), [len(options) for options in candidates])
        fit = np.einsum("cd,cd->c", self.selector.embed_answers(flat), self.selector.embed_messages(messages)[owner])
        overlap = np.asarray(self.bank.vectorize(flat).multiply(self.bank.vectorize(messages)[owner]).sum(1))[:, 0]
        scores = fit + OVERLAP_WEIGHT * overlap
        bounds = np.cumsum([0] + [len(options) for options in candidates])
        return [scores[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
