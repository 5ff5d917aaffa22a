"""Human-written answers the model may choose instead of its own words.

On a leak-free held-out split the seq2seq model's own replies score below simply returning the
answer of the most similar training question (chrF 6.4 vs 7.3): a fitting human answer shares
more with what people say than a generated one. So a model directory may carry the Q/A pairs of
its training side (`bank.json`, pinned by sha256 in the manifest, never any held-out pair); the
responder finds the questions most like the user's and chooses among their answers
(`core_model.ranking`), speaking in the model's own words only when none fits.

Retrieval is TF-IDF over character 1-3-grams within words (scikit-learn), rebuilt from the JSON at
load: no pickled index is ever read. N-grams of spaces alone are dropped: they occur in every
question, so an emoji or a foreign word would otherwise "resemble" every short question.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

BANK = "bank.json"
@dataclass
class AnswerBank:
    questions: list[str]
    answers: list[str]
    answer_tokens: list[list[str]] | None = None  # Okt tokens of each answer, for the model to score
    written: list[bool] | None = None  # which pairs were written for the bank (data/written_pairs.csv)
    _vectorizer: object = field(default=None, init=False, repr=False)
    _index: object = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.questions) != len(self.answers) or not self.questions:
            raise ValueError("an answer bank needs as many answers as questions, and at least one")
        if self.answer_tokens is not None and len(self.answer_tokens) != len(self.answers):
            raise ValueError("answer_tokens must have one entry per answer")
        self.written = [bool(w) for w in self.written] if self.written is not None else [False] * len(self.answers)
        if len(self.written) != len(self.answers):
            raise ValueError("written must have one entry per answer")
        from sklearn.feature_extraction.text import TfidfVectorizer

        char_ngrams = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3)).build_analyzer()
        self._vectorizer = TfidfVectorizer(analyzer=lambda text: [g for g in char_ngrams(text) if g.strip()],
                                           sublinear_tf=True)
        self._index = self._vectorizer.fit_transform(self.questions)  # rows are L2-normalized

    @classmethod
    def from_pairs(cls, pairs: Sequence[tuple[str, str, list[str] | None]],
                   written: Sequence[tuple[str, str, list[str] | None]] = ()) -> AnswerBank:
        """(question, answer, answer tokens or None) triples of the corpus, then of the pairs written for the
        bank; a repeated question/answer pair is kept once (as the corpus's if it is there)."""
        unique: dict[tuple[str, str], tuple[str, str, list[str] | None, bool]] = {}
        for triples, is_written in ((pairs, False), (written, True)):
            for q, a, t in triples:
                unique.setdefault((q, a), (q, a, t, is_written))
        rows = list(unique.values())
        tokens = [t for _, _, t, _ in rows]
        return cls([q for q, *_ in rows], [a for _, a, *_ in rows],
                   None if any(t is None for t in tokens) else tokens, [w for *_, w in rows])

    def extended(self, pairs: Sequence[tuple[str, str]]) -> AnswerBank:
        """This bank plus `pairs` (approved taught answers: a person's answer to that question, not written for
        the bank). Answer tokens are dropped: they are only for studies of a model directory's own bank."""
        return AnswerBank(self.questions + [q for q, _ in pairs], self.answers + [a for _, a in pairs],
                          written=self.written + [False] * len(pairs))

    def __len__(self) -> int:
        return len(self.questions)

    def vectorize(self, texts: Sequence[str]):
        """Sparse TF-IDF rows (unit norm) in the questions' n-gram space: messages, answers, anything."""
        return self._vectorizer.transform(list(texts))

    def nearest(self, questions: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """-> (indices, cosine similarities), each (len(questions), k), most similar first."""
        k = max(1, min(k, len(self)))
        sims = (self.vectorize(questions) @ self._index.T).toarray()
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k] if k < len(self) else \
            np.tile(np.arange(len(self)), (len(questions), 1))
        top_sims = np.take_along_axis(sims, top, 1)
        order = np.argsort(-top_sims, axis=1, kind="stable")
        return np.take_along_axis(top, order, 1), np.take_along_axis(top_sims, order, 1)

    def save(self, path: Path) -> None:
        data = {"questions": self.questions, "answers": self.answers, "answer_tokens": self.answer_tokens,
                "written": [int(w) for w in self.written]}
        path.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> AnswerBank:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(list(data["questions"]), list(data["answers"]), data.get("answer_tokens"), data.get("written"))
