"""The seq2seq network, built in code from a config dataclass (weights are the only saved state).

Encoder: Embedding + LSTM; its final (h, c) is the context the decoder starts from.
Decoder: Embedding + LSTM with teacher forcing in training; optional Luong ("general") attention
over the encoder outputs; a Dense layer gives logits over the vocabulary (softmax lives in the loss
and the decoder, so training is numerically stable).
The step function reuses the decoder LSTM's own cell, so training and decoding share weights.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from core_model.vocab import PAD_ID  # noqa: E402


@dataclass(frozen=True)
class ModelConfig:
    """The architecture, always given in full: by training (its recipe is `core_model.train.TrainConfig`)
    or by a model directory's manifest."""
    vocab_size: int
    embedding_dim: int
    units: int
    dropout: float
    attention: bool
    max_input_len: int
    max_reply_len: int

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model settings: {sorted(unknown)}")
        return cls(**data)


SEED_CONFIG = dict(embedding_dim=64, units=512, dropout=0.0, attention=False)
"""The notebook's sizes (vocabulary 2000 is passed as vocab_size)."""


class Seq2Seq(keras.Model):
    def __init__(self, config: ModelConfig, **kwargs) -> None:
        super().__init__(**kwargs)
        self.config = config
        c = config
        self.enc_emb = keras.layers.Embedding(c.vocab_size, c.embedding_dim, mask_zero=True, name="enc_emb")
        self.enc_lstm = keras.layers.LSTM(c.units, return_sequences=True, return_state=True, name="enc_lstm")
        self.dec_emb = keras.layers.Embedding(c.vocab_size, c.embedding_dim, name="dec_emb")
        self.dec_lstm = keras.layers.LSTM(c.units, return_sequences=True, return_state=True, name="dec_lstm")
        self.dropout = keras.layers.Dropout(c.dropout)
        if c.attention:
            self.attn_score = keras.layers.Dense(c.units, use_bias=False, name="attn_score")
            self.attn_combine = keras.layers.Dense(c.units, activation="tanh", name="attn_combine")
        self.out = keras.layers.Dense(c.vocab_size, name="logits")

    # -- pieces shared by training and decoding ---------------------------------------------------
    def encode(self, enc_ids, training: bool = False):
        """-> (encoder outputs, h, c, mask over real input positions)."""
        mask = tf.not_equal(enc_ids, PAD_ID)
        x = self.dropout(self.enc_emb(enc_ids), training=training)
        seq, h, c = self.enc_lstm(x, mask=mask, training=training)
        return seq, h, c, mask

    def head(self, dec_seq, enc_seq, enc_mask, training: bool = False):
        """Decoder states (B, T, U) -> logits (B, T, V), attending over the encoder if configured."""
        if self.config.attention:
            scores = tf.einsum("btu,bsu->bts", self.attn_score(dec_seq), enc_seq)
            scores = tf.where(enc_mask[:, None, :], scores, tf.constant(-1e9, scores.dtype))
            context = tf.einsum("bts,bsu->btu", tf.nn.softmax(scores, axis=-1), enc_seq)
            dec_seq = self.attn_combine(tf.concat([context, dec_seq], axis=-1))
        return self.out(self.dropout(dec_seq, training=training))

    def call(self, inputs, training: bool = False):
        """Teacher forcing: (encoder ids, decoder ids starting with <sos>) -> logits."""
        enc_ids, dec_ids = inputs
        return self.teacher_forced(dec_ids, *self.encode(enc_ids, training=training), training=training)

    def teacher_forced(self, dec_ids, enc_seq, h, c, enc_mask, training: bool = False):
        """Decoder ids starting with <sos>, given an encoding -> logits (B, T, V)."""
        x = self.dropout(self.dec_emb(dec_ids), training=training)
        dec_seq, _, _ = self.dec_lstm(x, initial_state=[h, c], training=training)
        return self.head(dec_seq, enc_seq, enc_mask, training=training)

    def step(self, tokens, h, c, enc_seq, enc_mask):
        """One decoding step for a batch: tokens (B,) -> logits (B, V), new h, c (graph friendly)."""
        x = self.dec_emb(tokens)
        out, (h, c) = self.dec_lstm.cell(x, [h, c], training=False)
        logits = self.head(out[:, None, :], enc_seq, enc_mask)
        return logits[:, 0, :], h, c


def build_model(config: ModelConfig) -> Seq2Seq:
    """Create the model and its weights (a dummy forward pass builds every layer)."""
    model = Seq2Seq(config)
    dummy = tf.ones((1, 2), tf.int32)
    model((dummy, dummy))
    return model


def masked_loss(y_true, logits):
    """Mean cross-entropy over real (non-pad) target tokens only."""
    y_true = tf.cast(y_true, tf.int32)
    per_token = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y_true, logits=logits)
    mask = tf.cast(tf.not_equal(y_true, PAD_ID), per_token.dtype)
    return tf.reduce_sum(per_token * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)
