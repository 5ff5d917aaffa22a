"""Vocabulary: specials first, then the corpus's words by frequency; saved as JSON."""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PAD, SOS, EOS, UNK = "<pad>", "<sos>", "<eos>", "<unk>"
SPECIALS = (PAD, SOS, EOS, UNK)
PAD_ID, SOS_ID, EOS_ID, UNK_ID = range(4)


def pad_rows(rows: Sequence[Sequence[int]]) -> np.ndarray:
    """Right-pad id rows with `<pad>` into one int32 matrix (at least one column)."""
    out = np.full((len(rows), max(1, max((len(r) for r in rows), default=0))), PAD_ID, np.int32)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


@dataclass(frozen=True)
class Vocab:
    tokens: tuple[str, ...]

    def __post_init__(self) -> None:
        if tuple(self.tokens[:4]) != SPECIALS:
            raise ValueError(f"vocabulary must start with {SPECIALS}")
        object.__setattr__(self, "_index", {t: i for i, t in enumerate(self.tokens)})

    def __len__(self) -> int:
        return len(self.tokens)

    @classmethod
    def build(cls, sentences: Iterable[Sequence[str]], max_size: int = 8000, min_count: int = 1) -> Vocab:
        """Most frequent tokens (ties broken alphabetically, so builds are reproducible)."""
        counts = Counter(tok for sent in sentences for tok in sent)
        words = sorted((t for t, n in counts.items() if n >= min_count and t not in SPECIALS),
                       key=lambda t: (-counts[t], t))
        return cls(SPECIALS + tuple(words[: max(0, max_size - len(SPECIALS))]))

    def encode(self, tokens: Sequence[str], max_len: int | None = None, add_eos: bool = False) -> list[int]:
        ids = [self._index.get(t, UNK_ID) for t in tokens]  # type: ignore[attr-defined]
        if max_len is not None:
            ids = ids[: max_len - (1 if add_eos else 0)]
        return ids + [EOS_ID] if add_eos else ids

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens up to the first `<eos>`, without specials."""
        out: list[str] = []
        for i in ids:
            i = int(i)
            if i == EOS_ID:
                break
            if i >= len(SPECIALS) and i < len(self.tokens):
                out.append(self.tokens[i])
        return out

    def coverage(self, sentences: Iterable[Sequence[str]]) -> float:
        total = known = 0
        for sent in sentences:
            for tok in sent:
                total += 1
                known += tok in self._index  # type: ignore[attr-defined]
        return known / total if total else 1.0

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"tokens": list(self.tokens)}, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Vocab:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(tuple(data["tokens"]))
