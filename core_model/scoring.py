"""How probable the model finds given replies: teacher-forced mean log-probability per token.

Used to weigh reply candidates (the model's own and retrieved human answers) in one compiled,
batched forward pass. A token outside the vocabulary (`<unk>`, which decoding never emits) costs
`UNK_PENALTY` nats more, so answers full of words the model cannot say lose weight.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from core_model.model import Seq2Seq
from core_model.vocab import EOS_ID, PAD_ID, SOS_ID, UNK_ID, pad_rows

UNK_PENALTY = 5.0
CHUNK = 128  # rows per forward pass: bounds the (rows, length, vocabulary) logits to ~100 MB


class SequenceScorer:
    def __init__(self, model: Seq2Seq) -> None:
        self.model = model
        matrix, rows = tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None], tf.int32)
        self._fn = tf.function(self._score, input_signature=[matrix, rows, matrix, matrix])

    def _score(self, enc_ids: tf.Tensor, owner: tf.Tensor, dec_ids: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
        """Each input is encoded once; reply row i is read against input `owner[i]`."""
        enc_seq, h, c, mask = (tf.gather(x, owner) for x in self.model.encode(enc_ids))
        logits = self.model.teacher_forced(dec_ids, enc_seq, h, c, mask)
        token_logp = tf.gather(logits, targets, batch_dims=2) - tf.reduce_logsumexp(logits, axis=-1)
        token_logp -= UNK_PENALTY * tf.cast(tf.equal(targets, UNK_ID), token_logp.dtype)
        real = tf.cast(tf.not_equal(targets, PAD_ID), token_logp.dtype)
        return tf.reduce_sum(token_logp * real, 1) / tf.maximum(tf.reduce_sum(real, 1), 1.0)

    def __call__(self, inputs: list[list[int]], replies: list[list[list[int]]]) -> list[np.ndarray]:
        """Mean log p(reply token | input, previous tokens), `<eos>` included, for every reply of every input.

        Rows are scored in passes of similar reply length: the output projection over the whole
        vocabulary at every position is the cost, so padding is kept small.
        """
        cap = self.model.config.max_reply_len - 1
        rows = [(i, r[:cap] + [EOS_ID]) for i, options in enumerate(replies) for r in options]
        order = sorted(range(len(rows)), key=lambda k: len(rows[k][1]))
        scores = np.zeros(len(rows), np.float32)
        for start in range(0, len(order), CHUNK):
            chunk = order[start:start + CHUNK]
            owners = sorted({rows[k][0] for k in chunk})
            where = {owner: n for n, owner in enumerate(owners)}
            scores[chunk] = self._fn(tf.constant(pad_rows([inputs[o] or [PAD_ID] for o in owners])),
                                     tf.constant([where[rows[k][0]] for k in chunk], tf.int32),
                                     tf.constant(pad_rows([[SOS_ID] + rows[k][1][:-1] for k in chunk])),
                                     tf.constant(pad_rows([rows[k][1] for k in chunk]))).numpy()
        bounds = np.cumsum([0] + [len(options) for options in replies])
        return [scores[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
