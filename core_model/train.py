"""Training: tokenize pairs, build the vocabulary, length-bucketed batches, early stopping, save."""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from core_model import artifacts
from core_model.data import Pair
from core_model.model import ModelConfig, build_model, masked_loss
from core_model.tokenizer import Tokenizer
from core_model.vocab import EOS_ID, PAD_ID, SOS_ID, Vocab

LENGTH_CAP = 64  # hard ceiling whatever the data says; ChatbotData needs about 31


@dataclass(frozen=True)
class TrainConfig:
    """Defaults are the shipped model's recipe, so `chatbot retrain` compares like with like."""
    vocab_size: int = 6000
    min_count: int = 2
    embedding_dim: int = 128
    units: int = 256
    dropout: float = 0.2
    attention: bool = True
    epochs: int = 20
    batch_size: int = 64
    patience: int = 0  # epochs without held-out improvement before stopping; 0 trains every epoch
    learning_rate: float = 2e-3
    seed: int = 42


def _batches(examples: list[tuple[list[int], list[int]]], batch_size: int, rng: random.Random | None):
    """Group examples of similar length into padded (inputs, targets) batches.

    Examples are sorted by length (with a little noise when shuffling) and cut into batches, so a
    batch pads to its own longest row, rounded up to a multiple of 4 to bound the number of graph
    shapes. Batch order is shuffled each epoch.
    """
    order = sorted(range(len(examples)), key=lambda i: (
        len(examples[i][0]) + len(examples[i][1]) + (rng.random() * 3 if rng else 0)))
    chunks = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if rng:
        rng.shuffle(chunks)
    for chunk in chunks:
        q_len = -(-max(len(examples[i][0]) for i in chunk) // 4) * 4 or 4
        a_len = -(-(max(len(examples[i][1]) for i in chunk) + 1) // 4) * 4
        enc = np.full((len(chunk), q_len), PAD_ID, np.int32)
        dec = np.full((len(chunk), a_len), PAD_ID, np.int32)
        tgt = np.full((len(chunk), a_len), PAD_ID, np.int32)
        for row, i in enumerate(chunk):
            q, a = examples[i]
            enc[row, : len(q)] = q
            dec[row, : len(a) + 1] = [SOS_ID] + a
            tgt[row, : len(a) + 1] = a + [EOS_ID]
        yield (enc, dec), tgt


def _dataset(examples, batch_size: int, seed: int | None) -> tuple[tf.data.Dataset, int]:
    rng = random.Random(seed) if seed is not None else None
    spec = tf.TensorSpec([None, None], tf.int32)
    ds = tf.data.Dataset.from_generator(
        lambda: _batches(examples, batch_size, rng), output_signature=((spec, spec), spec))
    # Repeated, with an explicit step count, so Keras never runs off the end of a pass.
    return ds.repeat(), -(-len(examples) // batch_size)


def train(train_pairs: list[Pair], out_dir: str | Path, cfg: TrainConfig = TrainConfig(),
          held_pairs: list[Pair] | None = None, extra_info: dict | None = None,
          verbose: int | str = "auto", tokenizer: Tokenizer | None = None) -> dict:
    """Train a model on `train_pairs` and write its directory; returns the manifest.

    `held_pairs` (normally `core_model.data.split(...)[1]`) drive early stopping and the reported
    held-out loss; the model never trains on them. Without them the training loss is monitored.
    """
    keras.utils.set_random_seed(cfg.seed)
    tok = tokenizer or Tokenizer()
    held_pairs = held_pairs or []
    if not train_pairs:
        raise ValueError("no training pairs left after the held-out split")
    from tqdm import tqdm

    def tokenized(pairs: list[Pair], what: str) -> list[tuple[list[str], list[str]]]:
        bar = tqdm(pairs, desc=f"tokenizing {what}", unit="pair", disable=verbose == 0 or not pairs)
        return [(tok.tokenize(p.q), tok.tokenize(p.a)) for p in bar]

    train_tok = tokenized(train_pairs, "training pairs")
    held_tok = tokenized(held_pairs, "held-out pairs")
    vocab = Vocab.build([s for qa in train_tok for s in qa], cfg.vocab_size, cfg.min_count)
    max_in = min(LENGTH_CAP, max(len(q) for q, _ in train_tok) or 1)
    max_out = min(LENGTH_CAP, max(len(a) for _, a in train_tok) + 1)

    def enc(tokens):
        return [(vocab.encode(q, max_in), vocab.encode(a, max_out - 1)) for q, a in tokens]

    config = ModelConfig(vocab_size=len(vocab), embedding_dim=cfg.embedding_dim, units=cfg.units,
                         dropout=cfg.dropout, attention=cfg.attention,
                         max_input_len=max_in, max_reply_len=max_out)
    model = build_model(config)
    model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate, clipnorm=1.0), loss=masked_loss)
    train_ds, steps = _dataset(enc(train_tok), cfg.batch_size, cfg.seed)
    fit_args: dict = {}
    monitor = "loss"
    if held_tok:
        fit_args["validation_data"], fit_args["validation_steps"] = _dataset(
            enc(held_tok), cfg.batch_size * 4, None)
        monitor = "val_loss"
    callbacks = [keras.callbacks.EarlyStopping(monitor=monitor, patience=cfg.patience, restore_best_weights=True)
                 ] if cfg.patience > 0 else []
    history = model.fit(train_ds, steps_per_epoch=steps, epochs=cfg.epochs, callbacks=callbacks,
                        shuffle=False, verbose=verbose, **fit_args)
    curves = {k: [round(float(v), 4) for v in vals] for k, vals in history.history.items()}
    info = {
        "train_config": asdict(cfg),
        "split": {"train": len(train_pairs), "heldout": len(held_pairs)},
        "vocab_coverage_train": round(vocab.coverage(s for qa in train_tok for s in qa), 4),
        "epochs_trained": len(curves.get("loss", [])),
        "heldout_loss": (round(min(curves[monitor]) if callbacks else curves[monitor][-1], 4)
                         if monitor == "val_loss" else None),
        "train_loss": round(min(curves["loss"]), 4),
        "history": curves,
        **(extra_info or {}),
    }
    return artifacts.save(out_dir, model, vocab, info)
