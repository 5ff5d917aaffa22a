"""Training: tokenize pairs, build the vocabulary, length-bucketed batches, epoch selection, save."""
from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from core_model import artifacts
from core_model.answer_bank import AnswerBank
from core_model.data import Pair
from core_model.decode import GreedyDecoder
from core_model.model import ModelConfig, build_model, masked_loss
from core_model.responder import render
from core_model.selector import SelectorConfig, train_selector
from core_model.tokenizer import Tokenizer
from core_model.vocab import EOS_ID, PAD_ID, SOS_ID, Vocab

SELECT_BY = ("chrf", "loss", "last")
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
    patience: int = field(default=0, metadata={
        "help": "stop after this many epochs without a better dev score; 0 trains every epoch"})
    select_by: str = field(default="chrf", metadata={
        "choices": SELECT_BY,
        "help": "epoch kept: best chrF of greedy dev replies, lowest dev loss, or the last one"})
    min_distinct: float = field(default=0.5, metadata={
        "help": "with --select-by chrf, the share of distinct dev replies an epoch needs to be kept"})
    learning_rate: float = 2e-3
    seed: int = 42
    selector_epochs: int = field(default=SelectorConfig.epochs, metadata={
        "help": "epochs of the response selector (the epoch with the best dev Recall@1 of 10 is kept); 0: none"})
    selector_members: int = field(default=SelectorConfig.members, metadata={
        "help": "dual encoders in the response selector, trained from successive seeds, their fits averaged"})

    def __post_init__(self) -> None:
        if self.selector_members < 1:
            raise ValueError(f"selector_members is {self.selector_members}: a selector needs at least one member")


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


class ReplySelection(keras.callbacks.Callback):
    """Keep the epoch whose greedy replies to the dev questions have the best chrF, among varied ones.

    Loss and chrF both reward a model that answers almost everything with one safe sentence: on
    ChatbotData dev chrF peaked at epoch 4 with 53 distinct replies for 537 questions ("저도요.").
    So an epoch counts only when at least `min_distinct` of its replies per question are distinct
    (if none does, the best of the rest is kept). Logs `val_chrf` and `val_distinct` every epoch.
    """

    def __init__(self, inputs: list[list[int]], answers: list[str], vocab: Vocab, min_distinct: float,
                 patience: int, verbose: bool) -> None:
        super().__init__()
        self.inputs, self.answers, self.vocab = inputs, answers, vocab
        self.min_distinct, self.patience, self.verbose = min_distinct, patience, verbose
        self.best: tuple[bool, float] | None = None
        self.best_epoch, self._best_weights, self._wait = 0, None, 0
        self._decoder: GreedyDecoder | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        import sacrebleu

        self._decoder = self._decoder or GreedyDecoder(self.model)  # traced once, reads live weights
        rows: list[list[int]] = []
        for i in range(0, len(self.inputs), 256):
            rows += self._decoder(self.inputs[i:i + 256])
        replies = [render(self.vocab, r)[0] for r in rows]
        chrf = sacrebleu.corpus_chrf(replies, [self.answers]).score
        distinct = len(set(replies)) / max(1, len(replies))
        if logs is not None:
            logs.update(val_chrf=chrf, val_distinct=distinct)
        key = (distinct >= self.min_distinct, chrf)
        if self.best is None or key > self.best:
            self.best, self.best_epoch, self._wait = key, epoch, 0
            self._best_weights = self.model.get_weights()
        else:
            self._wait += 1
            self.model.stop_training = bool(self.patience) and self._wait >= self.patience
        if self.verbose:
            print(f"epoch {epoch + 1}: dev chrF {chrf:.2f}, {distinct:.0%} distinct replies; "
                  f"keeping epoch {self.best_epoch + 1}", flush=True)

    def on_train_end(self, logs: dict | None = None) -> None:
        if self._best_weights is not None:
            self.model.set_weights(self._best_weights)


def token_loss(model: keras.Model, examples: list[tuple[list[int], list[int]]]) -> float:
    """Masked cross-entropy per real target token over `examples` (the held-out loss models are compared by)."""
    total = weight = 0.0
    for (enc, dec), tgt in _batches(examples, 256, None):
        n = float((tgt != PAD_ID).sum())
        total += float(masked_loss(tgt, model((enc, dec)))) * n
        weight += n
    return round(total / max(weight, 1.0), 4)


def _dataset(examples, batch_size: int, seed: int | None) -> tuple[tf.data.Dataset, int]:
    rng = random.Random(seed) if seed is not None else None
    spec = tf.TensorSpec([None, None], tf.int32)
    ds = tf.data.Dataset.from_generator(
        lambda: _batches(examples, batch_size, rng), output_signature=((spec, spec), spec))
    # Repeated, with an explicit step count, so Keras never runs off the end of a pass.
    return ds.repeat(), -(-len(examples) // batch_size)


def train(train_pairs: list[Pair], out_dir: str | Path, cfg: TrainConfig = TrainConfig(),
          dev_pairs: list[Pair] | None = None, held_pairs: list[Pair] | None = None,
          extra_info: dict | None = None, verbose: int | str = "auto", tokenizer: Tokenizer | None = None,
          judged: Sequence[tuple[str, str, str]] = (), written: Sequence[Pair] = ()) -> dict:
    """Train a model on `train_pairs` and write its directory; returns the manifest.

    `written`: pairs written for the answer bank (data/written_pairs.csv): the bank holds them beside
    the corpus's pairs and the selector learns from them too (what a fitting answer looks like: dev
    Recall@1 of 10 0.38 -> 0.49); the seq2seq model does not.

    `judged`: raters' (message, fitting answer, unfit answer) preferences the response selector also
    learns from (`core_model.judgements`).

    `dev_pairs` (normally `core_model.data.dev_split(...)[1]`) choose the epoch that is kept
    (`cfg.select_by`) and drive early stopping; `held_pairs` (`split(...)[1]`) only give the
    reported held-out loss. The model never trains on either. Without dev pairs the last epoch is kept.
    """
    if cfg.select_by not in SELECT_BY:
        raise ValueError(f"select_by must be one of {', '.join(SELECT_BY)}, not {cfg.select_by!r}")
    keras.utils.set_random_seed(cfg.seed)
    tok = tokenizer or Tokenizer()
    dev_pairs, held_pairs = dev_pairs or [], held_pairs or []
    if not train_pairs:
        raise ValueError("no training pairs left after the held-out split")
    from tqdm import tqdm

    def tokenized(pairs: list[Pair], what: str) -> list[tuple[list[str], list[str]]]:
        bar = tqdm(pairs, desc=f"tokenizing {what}", unit="pair", disable=verbose == 0 or not pairs)
        return [(tok.tokenize(p.q), tok.tokenize(p.a)) for p in bar]

    train_tok = tokenized(train_pairs, "training pairs")
    dev_tok = tokenized(dev_pairs, "dev pairs")
    held_tok = tokenized(held_pairs, "held-out pairs")
    written_tok = tokenized(list(written), "written pairs")
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
    callbacks: list[keras.callbacks.Callback] = []
    selection = None
    if dev_tok:
        dev_examples = enc(dev_tok)
        fit_args["validation_data"], fit_args["validation_steps"] = _dataset(dev_examples, cfg.batch_size * 4, None)
        if cfg.select_by == "chrf":
            selection = ReplySelection([q for q, _ in dev_examples], [p.a for p in dev_pairs], vocab,
                                       cfg.min_distinct, cfg.patience, verbose not in (0, False))
            callbacks.append(selection)
        elif cfg.select_by == "loss":
            callbacks.append(keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=cfg.patience or cfg.epochs, restore_best_weights=True))
    history = model.fit(train_ds, steps_per_epoch=steps, epochs=cfg.epochs, callbacks=callbacks,
                        shuffle=False, verbose=verbose, **fit_args)
    curves = {k: [round(float(v), 4) for v in vals] for k, vals in history.history.items()}
    kept = len(curves["loss"]) - 1
    if selection:
        kept = selection.best_epoch
    elif dev_tok and cfg.select_by == "loss":
        kept = int(np.argmin(curves["val_loss"]))
    heldout_loss = token_loss(model, enc(held_tok)) if held_tok else None
    # Every pair the model may learn from (the dev pairs too, never the held-out ones) can be answered verbatim.
    bank = AnswerBank.from_pairs([(p.q, p.a, a) for p, (_, a) in zip(train_pairs + dev_pairs, train_tok + dev_tok)],
                                 [(p.q, p.a, a) for p, (_, a) in zip(written, written_tok)])
    selector, selector_info = None, None
    if cfg.selector_epochs > 0:
        selector, curves_sel = train_selector([(p.q, p.a) for p in train_pairs + list(written)],
                                              [(p.q, p.a) for p in dev_pairs],
                                              SelectorConfig(epochs=cfg.selector_epochs, seed=cfg.seed,
                                                             members=cfg.selector_members),
                                              verbose=verbose not in (0, False), judged=judged)
        selector_info = {"config": asdict(selector.config), "pairs": len(train_pairs) + len(written),
                         "judged_preferences": len(judged), **curves_sel}
    info = {
        "train_config": asdict(cfg),
        "split": {"train": len(train_pairs), "dev": len(dev_pairs), "heldout": len(held_pairs)},
        "vocab_coverage_train": round(vocab.coverage(s for qa in train_tok for s in qa), 4),
        "epochs_trained": len(curves.get("loss", [])),
        "epoch_kept": kept + 1,
        "dev_chrf": curves["val_chrf"][kept] if "val_chrf" in curves else None,
        "heldout_loss": heldout_loss,
        "train_loss": curves["loss"][kept],
        "history": curves,
        "bank": {"pairs": len(bank), **({"written_pairs": len(written)} if written else {})},
        **({"selector": selector_info} if selector_info else {}),
        **(extra_info or {}),
    }
    return artifacts.save(out_dir, model, vocab, info, bank, selector)
