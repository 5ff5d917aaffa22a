"""Choose one reply among candidates by minimum Bayes risk: the one most like the likely others.

The candidates are the model's own beam-search reply and the answers to the most similar training
questions. Picking the one the model itself finds most probable mostly returns its own generic
reply; picking the nearest question's answer ignores the model. Minimum Bayes risk takes the
candidate with the highest expected similarity (chrF, as the evaluation measures replies) to all
the others, each weighted by how probable the model finds it (softmax of its mean per-token
log-probability): a consensus reply, chosen by the model's own beliefs. Each candidate is judged by
the others only: with the usual self-term the model's own reply, which beam search made the most
probable, wins again (dev chrF 6.25 instead of 7.52). Pure numpy, no TensorFlow.

Tuned on the dev split (never the held-out one): 8 retrieved answers, temperature 3. The model's
log-probabilities favour short generic answers; softening them (dev chrF at temperature 1 / 1.5 / 2 /
3 / 5 / uniform weights: 7.52 / 7.66 / 7.75 / 7.84 / 7.68 / 7.59; paired bootstrap of 3 against 1:
[+0.09, +0.63]) lets the agreement among the candidates count for more.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DEFAULT_CANDIDATES = 8  # retrieved answers weighed beside the model's own reply; 0: generation only
CHAR_ORDER = 6
BETA = 2.0
TEMPERATURE = 3.0


def chrf_matrix(texts: Sequence[str], order: int = CHAR_ORDER, beta: float = BETA) -> np.ndarray:
    """M[a, b] = sentence chrF of texts[a] against reference texts[b] (sacrebleu's definition)."""
    from sacrebleu.metrics.helpers import extract_all_char_ngrams

    grams = [extract_all_char_ngrams(text, order) for text in texts]  # per text, one Counter per order
    m = len(texts)
    precision = np.zeros((m, m))
    recall = np.zeros((m, m))
    effective = np.zeros((m, m))
    for n in range(order):
        columns = {g: i for i, g in enumerate({g for per_text in grams for g in per_text[n]})}
        c = np.zeros((m, max(1, len(columns))))
        for row, per_text in enumerate(grams):
            for g, count in per_text[n].items():
                c[row, columns[g]] = count
        totals = c.sum(1)
        matches = np.minimum(c[:, None, :], c[None, :, :]).sum(-1)
        both = (totals[:, None] > 0) & (totals[None, :] > 0)
        precision += np.where(both, matches / np.maximum(totals[:, None], 1), 0.0)
        recall += np.where(both, matches / np.maximum(totals[None, :], 1), 0.0)
        effective += both
    precision = np.divide(precision, effective, out=np.zeros_like(precision), where=effective > 0)
    recall = np.divide(recall, effective, out=np.zeros_like(recall), where=effective > 0)
    f2 = beta ** 2
    denom = f2 * precision + recall
    return 100 * np.divide((1 + f2) * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)


def choose(texts: Sequence[str], logprobs: Sequence[float], temperature: float = TEMPERATURE) -> int:
    """Index of the candidate with the highest model-weighted expected chrF against the others."""
    if len(texts) == 1:
        return 0
    scores = np.asarray(logprobs, np.float64) / temperature
    weights = np.exp(scores - scores.max())
    weights /= weights.sum()
    similarity = chrf_matrix(texts)
    np.fill_diagonal(similarity, 0.0)
    return int(np.argmax(similarity @ weights))
