"""Blind raters' judgements of (message, answer) pairs, as training data for the response selector.

The corpus says which answer was written for each question; it cannot say which answers of *other*
questions would also fit, or which only look like they would. Raters did: `data/judged_answers.tsv`
holds 9,760 (message, answer, mean rating 0-2) rows, the answers of similar bank questions for 1,952
training-side messages in two pools (`scripts/candidate_study.py`, ratings in reports/ratings/pool/). Every fitting
(>= 1.5) and unfit (<= 0.5) answer of one message make a preference the selector is trained to keep.
"""
from __future__ import annotations

import csv
from pathlib import Path

FITTING, UNFIT = 1.5, 0.5


def read_judged(path: str | Path) -> list[tuple[str, str, float]]:
    """(message, answer, rating) rows of a `message<TAB>answer<TAB>rating` file with a header."""
    rows = []
    with open(path, encoding="utf-8", newline="") as f:
        for n, row in enumerate(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE), 1):
            if n == 1:
                continue
            if len(row) != 3:
                raise ValueError(f"{path}: line {n}: expected message, answer and rating")
            rows.append((row[0], row[1], float(row[2])))
    return rows


def write_judged(path: str | Path, rows: list[tuple[str, str, float]]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("message\tanswer\trating\n")
        f.writelines(f"{m}\t{a}\t{r:g}\n" for m, a, r in rows)


def load_preferences(path: str | Path | None) -> list[tuple[str, str, str]]:
    """The preferences in a judged file; none for no path (`--judged ''`) or a default file that is absent."""
    return preferences(read_judged(path)) if path and Path(path).exists() else []


def preferences(rows: list[tuple[str, str, float]]) -> list[tuple[str, str, str]]:
    """(message, fitting answer, unfit answer) for every such pair of answers judged for one message."""
    by_message: dict[str, list[tuple[str, float]]] = {}
    for message, answer, rating in rows:
        by_message.setdefault(message, []).append((answer, rating))
    return [(m, good, bad) for m, answers in by_message.items()
            for good, g in answers if g >= FITTING for bad, b in answers if b <= UNFIT]
