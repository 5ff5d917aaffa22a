"""A response selector: a dual encoder that scores how well an answer fits a message.

The seq2seq model does not know which answer fits: among ten held-out answers its log-probability
ranks the true one first 16% of the time (random: 10%), because it favours short generic answers.
The selector is trained for exactly that choice. Two small towers map a message and an answer to
unit vectors; their dot product is the fit. Trained on the corpus's own pairs with in-batch negatives
(every other answer of the batch is a wrong answer for the message), it learns which answers go with
which messages, so "피곤하다" comes near answers about rest even when they share no word with it.

Inputs are character 1-3-grams within words (`<` and `>` mark word edges), the same view of the text
as the TF-IDF retrieval: Korean endings and particles vary where stems stay, and n-grams of the stem
survive that. Each tower is a bag of n-gram embeddings (shared by both towers, masked mean), then a
tanh layer and a projection; heavy dropout because 10k pairs are few (dev Recall@1 of 10: dropout
0.1 -> 0.35, 0.5 -> 0.39). Only weights are saved (`selector.weights.h5`) with the n-gram vocabulary
as JSON (`selector.json`), both pinned in the model directory's manifest.
"""
from __future__ import annotations

import json
import os
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

WEIGHTS = "selector.weights.h5"
FEATURES = "selector.json"
PAD, ALWAYS = 0, 1  # ALWAYS is in every row, so a text without known n-grams still has a vector
BATCH = 256  # rows per forward pass when embedding


@dataclass(frozen=True)
class SelectorConfig:
    """The shipped selector's recipe (chosen on the dev split by Recall@1 of 10)."""
    dim: int = 128
    hidden: int = 256
    dropout: float = 0.5
    min_count: int = 2
    max_features: int = 96
    epochs: int = 5
    batch_size: int = 128
    scale: float = 20.0
    learning_rate: float = 2e-3
    seed: int = 42
    judged_weight: float = 1.0  # weight of the raters' preferences beside the corpus pairs' loss
    judged_batch: int = 64
    judged_margin: float = 0.1

    @classmethod
    def from_dict(cls, data: dict) -> SelectorConfig:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def char_features(text: str) -> list[str]:
    """Character 1-3-grams of each word, word edges marked: "잘 자" -> 잘, <잘, 잘>, <잘>, 자, ..."""
    out: list[str] = []
    for word in text.split():
        marked = f"<{word}>"
        for n in (1, 2, 3):
            out += [marked[i:i + n] for i in range(len(marked) - n + 1) if marked[i:i + n] not in ("<", ">")]
    return out


class Featurizer:
    """n-gram -> id, from the training texts (n-grams seen fewer than `min_count` times are dropped)."""

    def __init__(self, features: Sequence[str], max_features: int = 96) -> None:
        self.features = list(features)
        self.max_features = max_features
        self._index = {f: i + 2 for i, f in enumerate(self.features)}

    @classmethod
    def build(cls, texts: Sequence[str], min_count: int = 2, max_features: int = 96) -> Featurizer:
        counts = Counter(f for text in texts for f in set(char_features(text)))
        kept = sorted((f for f, c in counts.items() if c >= min_count), key=lambda f: (-counts[f], f))
        return cls(kept, max_features)

    def __len__(self) -> int:
        return len(self.features) + 2

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        rows = [([ALWAYS] + [self._index[f] for f in char_features(t) if f in self._index])[: self.max_features]
                for t in texts]
        out = np.full((len(rows), max(len(r) for r in rows) if rows else 1), PAD, np.int32)
        for i, row in enumerate(rows):
            out[i, : len(row)] = row
        return out


def build_towers(n_features: int, config: SelectorConfig) -> tuple[keras.Model, keras.Model]:
    """(message tower, answer tower): shared n-gram embeddings, separate layers above them."""
    embedding = keras.layers.Embedding(n_features, config.dim, mask_zero=True, name="ngrams")

    def tower(name: str) -> keras.Model:
        ids = keras.Input((None,), dtype="int32")
        pooled = keras.layers.GlobalAveragePooling1D()(embedding(ids), mask=embedding.compute_mask(ids))
        x = keras.layers.Dropout(config.dropout)(pooled)
        x = keras.layers.Dense(config.hidden, activation="tanh")(x)
        return keras.Model(ids, keras.layers.UnitNormalization()(keras.layers.Dense(config.dim)(x)), name=name)

    return tower("message"), tower("answer")


class Selector:
    """Scores (message, answer) fit as the dot product of the two towers' unit vectors, in [-1, 1]."""

    def __init__(self, featurizer: Featurizer, config: SelectorConfig,
                 towers: tuple[keras.Model, keras.Model] | None = None) -> None:
        self.featurizer, self.config = featurizer, config
        self.message_tower, self.answer_tower = towers or build_towers(len(featurizer), config)

    def _vectors(self, tower: keras.Model, texts: Sequence[str]) -> np.ndarray:
        parts = [tower(self.featurizer.encode(texts[i:i + BATCH]), training=False).numpy()
                 for i in range(0, len(texts), BATCH)]
        return np.concatenate(parts) if parts else np.zeros((0, self.config.dim), np.float32)

    def embed_messages(self, texts: Sequence[str]) -> np.ndarray:
        return self._vectors(self.message_tower, list(texts))

    def embed_answers(self, texts: Sequence[str]) -> np.ndarray:
        return self._vectors(self.answer_tower, list(texts))

    def score(self, messages: Sequence[str], candidates: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """Fit of every candidate answer to its message: one array per message."""
        flat = [c for options in candidates for c in options]
        answers, queries = self.embed_answers(flat), self.embed_messages(messages)
        bounds = np.cumsum([0] + [len(options) for options in candidates])
        return [answers[a:b] @ q for q, a, b in zip(queries, bounds[:-1], bounds[1:])]

    def save(self, out_dir: str | Path) -> None:
        out = Path(out_dir)
        both = keras.Model([self.message_tower.input, self.answer_tower.input],
                           [self.message_tower.output, self.answer_tower.output])
        both.save_weights(out / WEIGHTS)
        (out / FEATURES).write_text(json.dumps({"config": asdict(self.config), "features": self.featurizer.features},
                                               ensure_ascii=False, separators=(",", ":")), encoding="utf-8")

    @classmethod
    def load(cls, model_dir: str | Path) -> Selector:
        path = Path(model_dir)
        data = json.loads((path / FEATURES).read_text(encoding="utf-8"))
        config = SelectorConfig.from_dict(data["config"])
        selector = cls(Featurizer(data["features"], config.max_features), config)
        keras.Model([selector.message_tower.input, selector.answer_tower.input],
                    [selector.message_tower.output, selector.answer_tower.output]).load_weights(path / WEIGHTS)
        return selector


def train_selector(fit: Sequence[tuple[str, str]], dev: Sequence[tuple[str, str]],
                   config: SelectorConfig = SelectorConfig(), verbose: bool = True,
                   judged: Sequence[tuple[str, str, str]] = ()) -> tuple[Selector, dict]:
    """Train on (message, answer) pairs; keep the epoch with the best dev Recall@1 of 10.

    Loss: softmax over the batch's answers for each message and over the batch's messages for each
    answer (the usual symmetric in-batch contrastive loss). A batch answer that is the same text as
    the right one is not counted as a wrong one (ChatbotData repeats answers across questions).

    `judged`: (message, answer raters found fitting, answer they found unfit) triples
    (`core_model.judgements`). The corpus only says which answer was written for a question, and the
    answers of similar questions, the shortlist the responder chooses from, look alike to it; the raters
    say which of those fit. A logistic margin loss on each triple (weight `judged_weight`) is added to
    every step, `judged_batch` triples at a time.
    """
    from core_model.evaluation import selection_ranks

    random.seed(config.seed)
    np.random.seed(config.seed)
    tf.random.set_seed(config.seed)
    featurizer = Featurizer.build([t for pair in fit for t in pair], config.min_count, config.max_features)
    selector = Selector(featurizer, config)
    messages, answers = featurizer.encode([q for q, _ in fit]), featurizer.encode([a for _, a in fit])
    answer_ids = np.unique([a for _, a in fit], return_inverse=True)[1].astype(np.int32)
    prefer = [featurizer.encode([row[k] for row in judged]) for k in range(3)] if judged else None
    variables = selector.message_tower.trainable_variables + [
        v for v in selector.answer_tower.trainable_variables
        if all(v is not w for w in selector.message_tower.trainable_variables)]
    optimizer = keras.optimizers.Adam(config.learning_rate)

    def contrastive(q: tf.Tensor, a: tf.Tensor, ids: tf.Tensor) -> tf.Tensor:
        logits = config.scale * tf.matmul(selector.message_tower(q, training=True),
                                          selector.answer_tower(a, training=True), transpose_b=True)
        n = tf.shape(ids)[0]
        twin = tf.equal(ids[:, None], ids[None, :]) & ~tf.eye(n, dtype=tf.bool)
        logits = tf.where(twin, tf.constant(-1e9, logits.dtype), logits)
        labels = tf.range(n)
        return tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)) + \
            tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, tf.transpose(logits),
                                                                        from_logits=True))

    def preference(m: tf.Tensor, better: tf.Tensor, worse: tf.Tensor) -> tf.Tensor:
        vm = selector.message_tower(m, training=True)
        gap = tf.reduce_sum(vm * selector.answer_tower(worse, training=True), 1) - \
            tf.reduce_sum(vm * selector.answer_tower(better, training=True), 1)
        return tf.reduce_mean(tf.nn.softplus(config.scale * (gap + config.judged_margin)))

    @tf.function(reduce_retracing=True)
    def step(q: tf.Tensor, a: tf.Tensor, ids: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = contrastive(q, a, ids)
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    @tf.function(reduce_retracing=True)
    def judged_step(q: tf.Tensor, a: tf.Tensor, ids: tf.Tensor, m: tf.Tensor, better: tf.Tensor,
                    worse: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = contrastive(q, a, ids) + config.judged_weight * preference(m, better, worse)
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    rng = np.random.default_rng(config.seed)
    history: dict[str, list[float]] = {"loss": [], "dev_recall_at_1": []}
    best, best_weights = -1.0, None
    steps = max(1, len(fit) // config.batch_size)
    for epoch in range(config.epochs):
        bar = keras.utils.Progbar(steps, verbose=1 if verbose else 0, unit_name="batch")
        order, losses = rng.permutation(len(fit)), []
        for s in range(steps):
            b = order[s * config.batch_size:(s + 1) * config.batch_size]
            if prefer is None:
                losses.append(float(step(messages[b], answers[b], answer_ids[b])))
            else:
                j = rng.integers(0, len(judged), config.judged_batch)
                losses.append(float(judged_step(messages[b], answers[b], answer_ids[b],
                                                prefer[0][j], prefer[1][j], prefer[2][j])))
            bar.update(s + 1, [("loss", losses[-1])])
        history["loss"].append(round(float(np.mean(losses)), 4))
        ranks = selection_ranks(lambda qs, cands: selector.score(qs, cands), dev) if dev else []
        recall = float(np.mean([r == 1 for r in ranks])) if ranks else 0.0
        history["dev_recall_at_1"].append(round(recall, 4))
        if verbose:
            print(f"selector epoch {epoch + 1}/{config.epochs}: loss {history['loss'][-1]}, dev Recall@1 of 10 "
                  f"{recall:.3f}", flush=True)
        if recall > best or not dev:
            best, best_weights = recall, [w.copy() for w in _weights(selector)]
    _set_weights(selector, best_weights)
    history["epoch_kept"] = int(np.argmax(history["dev_recall_at_1"])) + 1 if dev else config.epochs
    return selector, history


def _weights(selector: Selector) -> list[np.ndarray]:
    return selector.message_tower.get_weights() + selector.answer_tower.get_weights()


def _set_weights(selector: Selector, weights: list[np.ndarray]) -> None:
    n = len(selector.message_tower.get_weights())
    selector.message_tower.set_weights(weights[:n])
    selector.answer_tower.set_weights(weights[n:])
