"""The seed notebook's ways of decoding, kept only as baselines for `chatbot eval` and `chatbot bench`.

Nothing on the serving path imports this module.
"""
from __future__ import annotations

import tensorflow as tf

from core_model.decode import GreedyDecoder, _banned_bias
from core_model.model import Seq2Seq
from core_model.vocab import EOS_ID, PAD_ID, SOS_ID


class NotebookGreedyDecoder(GreedyDecoder):
    """Greedy as the seed notebook decoded: `<unk>` may be emitted (it is dropped from the text) and
    nothing stops repeats, so the seed's recipe is scored as it was, without this project's fixes."""
    BANS_UNK = False

    def _constrain(self, logits: tf.Tensor, prev: tf.Tensor, seqs: tf.Tensor, t: tf.Tensor) -> tf.Tensor:
        return logits


def seed_eager_decode(model: Seq2Seq, ids: list[int]) -> list[int]:
    """The notebook's way: eager Keras layer calls, batch 1, one Python-loop step per token.

    The benchmark's baseline; it produces the same tokens as `GreedyDecoder`.
    """
    enc_seq, h, c, mask = model.encode(tf.constant([ids or [PAD_ID]], tf.int32))
    y = tf.reshape(tf.convert_to_tensor(SOS_ID), (1, 1))
    bias = _banned_bias(model.config.vocab_size)
    seq: list[int] = []
    for _ in range(model.config.max_reply_len):
        x = model.dec_emb(y)
        dec_seq, h, c = model.dec_lstm(x, initial_state=[h, c])
        probs = tf.nn.softmax(model.head(dec_seq, enc_seq, mask))
        banned = [int(y[0, 0])] + [seq[j + 2] for j in range(len(seq) - 2) if seq[j:j + 2] == seq[-2:]]
        repeat = tf.reduce_sum(tf.one_hot(banned, model.config.vocab_size, on_value=-1e9, off_value=0.0), 0)
        y = tf.cast(tf.argmax(probs + bias + repeat, axis=-1), tf.int32)
        y = tf.reshape(y, (1, 1))
        seq.append(int(y[0, 0]))
        if int(y[0, 0]) == EOS_ID:
            break
    return seq
