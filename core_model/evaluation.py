"""Measures shared by `chatbot eval`, `chatbot retrain` and training: how replies are judged.

Response selection (Recall@1 of 10, MRR): each held-out question's own answer among 9 answers of
other held-out pairs, drawn with a fixed seed, so every system that can score candidates is ranked on
the same lists. It asks what users feel - does the reply fit this message - without rewarding a
generic answer the way chrF against one reference does.
"""
from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

Scorer = Callable[[list[str], list[list[str]]], list[np.ndarray]]
"""(messages, candidate answers per message) -> one score per candidate, higher = fits better."""
DISTRACTORS = 9
SELECTION_SEED = 0


def selection_lists(pairs: Sequence[tuple[str, str]], seed: int = SELECTION_SEED) -> list[list[str]]:
    """Per pair: its own answer first, then 9 answers of other pairs (never the same text)."""
    rng = random.Random(seed)
    answers = [a for _, a in pairs]
    out = []
    for _, own in pairs:
        pool = [j for j in range(len(pairs)) if answers[j] != own]
        out.append([own] + [answers[j] for j in rng.sample(pool, min(DISTRACTORS, len(pool)))])
    return out


def selection_ranks(score: Scorer, pairs: Sequence[tuple[str, str]], seed: int = SELECTION_SEED,
                    batch: int = 256) -> list[int]:
    """Rank of the own answer among its list (1 = first; a tie counts against it)."""
    lists = selection_lists(pairs, seed)
    ranks: list[int] = []
    for start in range(0, len(pairs), batch):
        messages = [q for q, _ in pairs[start:start + batch]]
        for s in score(messages, lists[start:start + batch]):
            s = np.asarray(s, np.float64)
            ranks.append(1 + int(np.sum(~(s[1:] < s[0]))))
    return ranks


def selection_measures(ranks: Sequence[int]) -> dict[str, float]:
    """{'recall_at_1_of_10': share ranked first, 'mrr': mean reciprocal rank}."""
    n = max(1, len(ranks))
    return {"recall_at_1_of_10": round(sum(r == 1 for r in ranks) / n, 4),
            "mrr": round(sum(1 / r for r in ranks) / n, 4)}


# --- Automatic reply measures (kept in the report; nothing is chosen by them alone) ------------------

HANGUL = re.compile(r"[\uac00-\ud7a3\u3131-\u318e]")


def fluent(text: str, ended_by_eos: bool) -> bool:
    """Non-empty, mostly Hangul, no word three times in a row, ended by <eos>."""
    letters = [c for c in text if c.isalpha()]
    words = text.split()
    tripled = any(words[i] == words[i + 1] == words[i + 2] for i in range(len(words) - 2))
    return bool(text) and ended_by_eos and not tripled and \
        sum(bool(HANGUL.match(c)) for c in letters) >= 0.5 * max(1, len(letters))


def scores(hyps: list[str], refs: list[str], eos: list[bool]) -> dict:
    import sacrebleu

    return {"bleu": round(sacrebleu.corpus_bleu(hyps, [refs]).score, 2),
            "chrf": round(sacrebleu.corpus_chrf(hyps, [refs]).score, 2),
            "fluency": round(sum(fluent(h, e) for h, e in zip(hyps, eos)) / max(1, len(hyps)), 4),
            "distinct_replies": len(set(hyps))}


def chrf_gain_interval(hyps: list[str], baseline: list[str], refs: list[str], resamples: int = 1000,
                       seed: int = 0) -> list[float]:
    """95% paired-bootstrap interval of chrF(hyps) - chrF(baseline): is a gain more than noise?

    The way sacrebleu's own paired bootstrap (`sacrebleu.significance`) does it: each sentence's chrF
    statistics are extracted once, and every resample only sums them (not 2 x 1,000 corpus scorings).
    """
    from sacrebleu.metrics import CHRF

    metric = CHRF()
    ours = np.asarray(metric._extract_corpus_statistics(hyps, [refs]), np.float64)
    theirs = np.asarray(metric._extract_corpus_statistics(baseline, [refs]), np.float64)
    rows = np.random.default_rng(seed).integers(0, len(refs), (resamples, len(refs)))
    gains = np.sort([metric._compute_score_from_stats(ours[r].sum(0)).score
                     - metric._compute_score_from_stats(theirs[r].sum(0)).score for r in rows])
    return [round(float(np.quantile(gains, 0.025)), 2), round(float(np.quantile(gains, 0.975)), 2)]


def recall_gain_interval(ranks: Sequence[int], baseline: Sequence[int], resamples: int = 1000,
                         seed: int = 0) -> list[float]:
    """95% paired-bootstrap interval of Recall@1(ranks) - Recall@1(baseline) over the same lists."""
    a = np.asarray([r == 1 for r in ranks], float) - np.asarray([r == 1 for r in baseline], float)
    rng = np.random.default_rng(seed)
    gains = np.sort(a[rng.integers(0, len(a), (resamples, len(a)))].mean(1)) if len(a) else np.zeros(1)
    return [round(float(np.quantile(gains, 0.025)), 4), round(float(np.quantile(gains, 0.975)), 4)]


# --- Judged appropriateness: blind rating sheets and their unblinding -------------------------------

RATING_SCALE = (0, 1, 2)
FITTING, UNFIT = 1.5, 0.5  # a row's mean rating at or above / at or below these (the rater's guide)


def write_sheet(sheet: str | Path, messages: Sequence[str], replies: dict[str, Sequence[str]],
                seed: int = SELECTION_SEED) -> Path:
    """A blind rating sheet: one row per distinct (message, reply), shuffled, ids only.

    The key (id -> message index and the systems that gave that reply) goes beside it as
    `<sheet>.key.json`; give raters the sheet alone. Writes `id<TAB>message<TAB>reply<TAB>rating`
    with the rating column empty.
    """
    rows: dict[tuple[int, str], list[str]] = {}
    for system, texts in replies.items():
        for i, text in enumerate(texts):
            rows.setdefault((i, _cell(text)), []).append(system)
    order = list(rows)
    random.Random(seed).shuffle(order)
    sheet = Path(sheet)
    sheet.parent.mkdir(parents=True, exist_ok=True)
    lines = ["id\tmessage\treply\trating"]
    key = {}
    for n, (i, text) in enumerate(order, 1):
        row_id = f"r{n:04d}"
        lines.append(f"{row_id}\t{_cell(messages[i])}\t{text}\t")
        key[row_id] = {"message": i, "systems": rows[(i, text)]}
    sheet.write_text("\n".join(lines) + "\n", encoding="utf-8")
    key_path = sheet.with_name(sheet.name + ".key.json")
    key_path.write_text(json.dumps({"systems": list(replies), "messages": len(messages), "rows": key},
                                   ensure_ascii=False, indent=1), encoding="utf-8")
    return key_path


def _cell(text: str) -> str:
    return " ".join(str(text).replace("\t", " ").split())


def read_ratings(path: str | Path) -> dict[str, int]:
    """id -> rating (0, 1 or 2) from a rated sheet; a missing or other rating is an error naming the row."""
    out = {}
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        cells = line.split("\t")
        if n == 1 or not line.strip():
            continue
        value = cells[-1].strip() if len(cells) >= 2 else ""
        if value not in {str(v) for v in RATING_SCALE}:
            raise ValueError(f"{path}: line {n} ({cells[0]}): rating {value!r} is not 0, 1 or 2")
        out[cells[0].strip()] = int(value)
    return out


def unblind(key_path: str | Path, rating_paths: Sequence[str | Path]) -> dict:
    """Per system: share of replies rated fitting (mean >= 1.5) and unfit (mean <= 0.5), mean rating;
    exact agreement between raters (pairwise, over the rows all of them rated)."""
    key = json.loads(Path(key_path).read_text(encoding="utf-8"))
    raters = [read_ratings(p) for p in rating_paths]
    rows = [r for r in key["rows"] if all(r in rater for rater in raters)]
    means = {r: float(np.mean([rater[r] for rater in raters])) for r in rows}
    per_system: dict[str, list[float]] = {s: [] for s in key["systems"]}
    for r in rows:
        for system in key["rows"][r]["systems"]:
            per_system[system].append(means[r])
    pairs = [(a, b) for i, a in enumerate(raters) for b in raters[i + 1:]]
    agreement = float(np.mean([a[r] == b[r] for a, b in pairs for r in rows])) if pairs and rows else None
    return {
        "raters": len(raters), "rows_rated": len(rows), "rows": len(key["rows"]),
        "exact_agreement": None if agreement is None else round(agreement, 4),
        "systems": {s: {"n": len(v), "fitting": round(float(np.mean([m >= FITTING for m in v])), 4) if v else None,
                        "unfit": round(float(np.mean([m <= UNFIT for m in v])), 4) if v else None,
                        "mean": round(float(np.mean(v)), 3) if v else None}
                    for s, v in per_system.items()},
    }
