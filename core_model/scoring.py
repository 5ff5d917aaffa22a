"""How probable the model finds given replies: teacher-forced mean log-probability per token.

Used to weigh reply candidates (the model's own and retrieved human answers) in one compiled,
batched forward pass. A token outside the vocabulary (`<unk>`, which decoding never emits) costs
`UNK_PENALTY` nats more, so answers full of words the model cannot say lose weight.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from core_model.model import Seq2Seq
from core_model.vocab import EOS_ID, PAD_ID, SOS_ID, UNK_ID

UNK_PENALTY = 5.0
CHUNK = 128  # rows per forward pass: bounds the (rows, length, vocabulary) logits to ~100 MB


def _pad(rows: list[list[int]]) -> np.ndarray:
    width = -(-max(1, max(len(r) for r in rows)) // 8) * 8  # few distinct shapes
    out = np.full((len(rows), width), PAD_ID, np.int32)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


class SequenceScorer:
    def __init__(self, model: Seq2Seq) -> None:
        self.model = model
        spec = tf.TensorSpec([None, None], tf.int32)
        self._fn = tf.function(self._score, input_signature=[spec, spec, spec])

    def _score(self, enc_ids: tf.Tensor, dec_ids: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
        logits = self.model((enc_ids, dec_ids), training=False)
        token_logp = tf.gather(logits, targets, batch_dims=2) - tf.reduce_logsumexp(logits, axis=-1)
        token_logp -= UNK_PENALTY * tf.cast(tf.equal(targets, UNK_ID), token_logp.dtype)
        mask = tf.cast(tf.not_equal(targets, PAD_ID), token_logp.dtype)
        return tf.reduce_sum(token_logp * mask, 1) / tf.maximum(tf.reduce_sum(mask, 1), 1.0)

    def __call__(self, inputs: list[list[int]], replies: list[list[int]]) -> np.ndarray:
        """Mean log p(reply token | input, previous tokens) per pair, `<eos>` included."""
        cap = self.model.config.max_reply_len - 1
        targets = [r[:cap] + [EOS_ID] for r in replies]
        out = [np.zeros(0, np.float32)]
        for i in range(0, len(inputs), CHUNK):
            chunk = targets[i:i + CHUNK]
            out.append(self._fn(tf.constant(_pad([x or [PAD_ID] for x in inputs[i:i + CHUNK]])),
                                tf.constant(_pad([[SOS_ID] + t[:-1] for t in chunk])),
                                tf.constant(_pad(chunk))).numpy())
        return np.concatenate(out)
