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
0.1 -> 0.35, 0.5 -> 0.39). A few such dual encoders ("members", from different seeds) are averaged:
one alone is noisy. Only weights are saved (`selector.weights.h5`, half precision, a group per member)
with the n-gram vocabulary as JSON (`selector.json`), both pinned in the model directory's manifest.
"""
from __future__ import annotations

import json
import os
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

WEIGHTS = "selector.weights.h5"
FEATURES = "selector.json"
WEIGHTS_FORMAT = "chatbot-selector-members-1"
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
    members: int = 2  # dual encoders trained alike from seeds seed, seed + 1, ...; the fit is their mean

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
    """Scores (message, answer) fit as the mean over its members of the dot product of their two towers'
    unit vectors, in [-1, 1]. Members are dual encoders trained alike from different seeds: one alone
    is noisy (two seeds differ by 5 points of unfit picks on the dev pool), their mean less so."""

    def __init__(self, featurizer: Featurizer, config: SelectorConfig,
                 members: Sequence[tuple[keras.Model, keras.Model]] | None = None) -> None:
        self.featurizer, self.config = featurizer, config
        self.members = list(members or [build_towers(len(featurizer), config) for _ in range(config.members)])
        self._sides = [self._side(side) for side in (0, 1)]

    def _side(self, side: int):
        """One compiled call for every member's tower of a side (message 0, answer 1): their unit vectors
        side by side, scaled so that a dot product of two rows is the mean of the members' dot products."""
        scale = 1.0 / float(np.sqrt(len(self.members)))
        towers = [pair[side] for pair in self.members]

        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)], reduce_retracing=True)
        def vectors(ids: tf.Tensor) -> tf.Tensor:
            return tf.concat([tower(ids, training=False) for tower in towers], 1) * scale

        return vectors

    def _vectors(self, side: int, texts: Sequence[str]) -> np.ndarray:
        parts = [self._sides[side](self.featurizer.encode(texts[i:i + BATCH])).numpy()
                 for i in range(0, len(texts), BATCH)]
        return np.concatenate(parts) if parts else np.zeros((0, self.config.dim * len(self.members)), np.float32)

    def embed_messages(self, texts: Sequence[str]) -> np.ndarray:
        return self._vectors(0, list(texts))

    def embed_answers(self, texts: Sequence[str]) -> np.ndarray:
        return self._vectors(1, list(texts))

    def score(self, messages: Sequence[str], candidates: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """Fit of every candidate answer to its message: one array per message."""
        flat = [c for options in candidates for c in options]
        answers, queries = self.embed_answers(flat), self.embed_messages(messages)
        bounds = np.cumsum([0] + [len(options) for options in candidates])
        return [answers[a:b] @ q for q, a, b in zip(queries, bounds[:-1], bounds[1:])]

    def save(self, out_dir: str | Path) -> None:
        """Weights at half precision (the ranking does not move; the file is half the size), one group per
        member, and the n-gram vocabulary with the recipe as JSON."""
        import h5py

        out = Path(out_dir)
        with h5py.File(out / WEIGHTS, "w") as f:
            f.attrs["format"] = WEIGHTS_FORMAT
            for k, towers in enumerate(self.members):
                group = f.create_group(f"member_{k}")
                for i, value in enumerate(_variables(towers)):
                    group.create_dataset(f"{i:03d}", data=value.numpy().astype(np.float16))
        (out / FEATURES).write_text(json.dumps({"config": asdict(self.config), "features": self.featurizer.features},
                                               ensure_ascii=False, separators=(",", ":")), encoding="utf-8")

    @classmethod
    def load(cls, model_dir: str | Path) -> Selector:
        import h5py

        path = Path(model_dir)
        data = json.loads((path / FEATURES).read_text(encoding="utf-8"))
        config = SelectorConfig.from_dict(data["config"])
        featurizer = Featurizer(data["features"], config.max_features)
        with h5py.File(path / WEIGHTS, "r") as f:
            if f.attrs.get("format") != WEIGHTS_FORMAT:  # a selector saved before members: Keras's layout
                selector = cls(featurizer, config, [build_towers(len(featurizer), config)])
                (message, answer), = selector.members
                keras.Model([message.input, answer.input], [message.output, answer.output]).load_weights(
                    path / WEIGHTS)
                return selector
            groups = sorted(f, key=lambda name: int(name.split("_")[1]))
            selector = cls(featurizer, config, [build_towers(len(featurizer), config) for _ in groups])
            for towers, name in zip(selector.members, groups):
                variables = _variables(towers)
                if len(f[name]) != len(variables):
                    raise ValueError(f"{WEIGHTS}: {name} has {len(f[name])} arrays, the recipe {len(variables)}")
                for i, v in enumerate(variables):
                    v.assign(f[name][f"{i:03d}"][()].astype(np.float32))
        return selector


def _variables(towers: tuple[keras.Model, keras.Model]) -> list:
    """A member's variables, each once (the two towers share the n-gram embeddings)."""
    message, answer = towers
    return message.weights + [v for v in answer.weights if all(v is not w for w in message.weights)]


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

    `config.members` dual encoders are trained so, from seeds `seed`, `seed + 1`, ...; the history is the
    first one's, with each member's best epoch and the whole selector's dev Recall@1 of 10.
    """
    featurizer = Featurizer.build([t for pair in fit for t in pair], config.min_count, config.max_features)
    data = (featurizer.encode([q for q, _ in fit]), featurizer.encode([a for _, a in fit]),
            np.unique([a for _, a in fit], return_inverse=True)[1].astype(np.int32),
            [featurizer.encode([row[k] for row in judged]) for k in range(3)] if judged else None)
    members, histories = [], []
    for k in range(config.members):
        if verbose and config.members > 1:
            print(f"selector member {k + 1}/{config.members}", flush=True)
        towers, history = _train_member(featurizer, replace(config, seed=config.seed + k), data, dev, verbose)
        members.append(towers)
        histories.append(history)
    selector = Selector(featurizer, config, members)
    for towers in members:  # the precision it is saved at, so the selector in hand scores as the loaded one
        for v in _variables(towers):
            v.assign(v.numpy().astype(np.float16).astype(np.float32))
    history = {**histories[0], "members": [{"seed": config.seed + k, "epoch_kept": h["epoch_kept"],
                                            "dev_recall_at_1": max(h["dev_recall_at_1"], default=0.0)}
                                           for k, h in enumerate(histories)]}
    if dev:
        from core_model.evaluation import selection_measures, selection_ranks

        history["dev_recall_at_1_of_10"] = selection_measures(selection_ranks(selector.score, dev))["recall_at_1_of_10"]
    return selector, history


def _train_member(featurizer: Featurizer, config: SelectorConfig, data: tuple, dev: Sequence[tuple[str, str]],
                  verbose: bool) -> tuple[tuple[keras.Model, keras.Model], dict]:
    """One dual encoder from `config.seed`; the epoch with the best dev Recall@1 of 10 kept."""
    from core_model.evaluation import selection_ranks

    random.seed(config.seed)
    np.random.seed(config.seed)
    tf.random.set_seed(config.seed)
    messages, answers, answer_ids, prefer = data
    towers = build_towers(len(featurizer), config)
    message_tower, answer_tower = towers
    alone = Selector(featurizer, config, [towers])
    variables = _variables(towers)
    optimizer = keras.optimizers.Adam(config.learning_rate)

    def contrastive(q: tf.Tensor, a: tf.Tensor, ids: tf.Tensor) -> tf.Tensor:
        logits = config.scale * tf.matmul(message_tower(q, training=True),
                                          answer_tower(a, training=True), transpose_b=True)
        n = tf.shape(ids)[0]
        twin = tf.equal(ids[:, None], ids[None, :]) & ~tf.eye(n, dtype=tf.bool)
        logits = tf.where(twin, tf.constant(-1e9, logits.dtype), logits)
        labels = tf.range(n)
        return tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)) + \
            tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, tf.transpose(logits),
                                                                        from_logits=True))

    def preference(m: tf.Tensor, better: tf.Tensor, worse: tf.Tensor) -> tf.Tensor:
        vm = message_tower(m, training=True)
        gap = tf.reduce_sum(vm * answer_tower(worse, training=True), 1) - \
            tf.reduce_sum(vm * answer_tower(better, training=True), 1)
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
    steps = max(1, len(messages) // config.batch_size)
    for epoch in range(config.epochs):
        bar = keras.utils.Progbar(steps, verbose=1 if verbose else 0, unit_name="batch")
        order, losses = rng.permutation(len(messages)), []
        for s in range(steps):
            b = order[s * config.batch_size:(s + 1) * config.batch_size]
            if prefer is None:
                losses.append(float(step(messages[b], answers[b], answer_ids[b])))
            else:
                j = rng.integers(0, len(prefer[0]), config.judged_batch)
                losses.append(float(judged_step(messages[b], answers[b], answer_ids[b],
                                                prefer[0][j], prefer[1][j], prefer[2][j])))
            bar.update(s + 1, [("loss", losses[-1])])
        history["loss"].append(round(float(np.mean(losses)), 4))
        ranks = selection_ranks(alone.score, dev) if dev else []
        recall = float(np.mean([r == 1 for r in ranks])) if ranks else 0.0
        history["dev_recall_at_1"].append(round(recall, 4))
        if verbose:
            print(f"selector epoch {epoch + 1}/{config.epochs}: loss {history['loss'][-1]}, dev Recall@1 of 10 "
                  f"{recall:.3f}", flush=True)
        if recall > best or not dev:
            best, best_weights = recall, [v.numpy() for v in variables]
    for v, value in zip(variables, best_weights):
        v.assign(value)
    history["epoch_kept"] = int(np.argmax(history["dev_recall_at_1"])) + 1 if dev else config.epochs
    return towers, history
