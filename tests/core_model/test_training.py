"""A real (tiny) model: training, decoding, saving and loading, exercised end to end."""
import json
import shutil

import pytest

from core_model import artifacts
from core_model.baselines import NotebookGreedyDecoder, seed_eager_decode
from core_model.data import DataError, Pair, read_pairs, split
from core_model.responder import Responder


def test_tiny_model_reproduces_its_pairs(tiny_responder, tiny_pairs):
    replies = tiny_responder.reply_batch([p.q for p in tiny_pairs])
    assert replies == [p.a for p in tiny_pairs]


def test_batched_decode_matches_seed_style_eager_decode(tiny_responder, tiny_pairs):
    r = tiny_responder
    ids = [r.encode(p.q) for p in tiny_pairs[:5]]
    batched = r.decoder(ids)
    for row_ids, row in zip(ids, batched):
        eager = seed_eager_decode(r.loaded.model, row_ids)
        assert [t for t in row if t != 0] == eager


def test_save_load_same_outputs(tiny_model_dir, tiny_responder, tiny_pairs, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)
    again = Responder(copy)
    qs = [p.q for p in tiny_pairs] + ["처음 보는 문장", ""]
    assert again.reply_batch(qs) == tiny_responder.reply_batch(qs)
    manifest = json.loads((copy / "manifest.json").read_text())
    assert set(manifest["files"]) == {"model.weights.h5", "vocab.json", "bank.json", "selector.weights.h5",
                                      "selector.json"}
    assert manifest["bank"] == {"pairs": len(tiny_pairs)}
    assert manifest["config"]["max_reply_len"] >= max(len(p.a) for p in tiny_pairs) // 10


def test_corrupt_model_directories_are_refused(tiny_model_dir, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(tiny_model_dir, bad)
    with open(bad / "model.weights.h5", "r+b") as fh:
        fh.seek(2000)
        fh.write(b"garbage")
    with pytest.raises(artifacts.ModelLoadError, match="sha256"):
        artifacts.load(bad)
    (bad / "vocab.json").unlink()
    with pytest.raises(artifacts.ModelLoadError, match="missing"):
        artifacts.load(bad)
    with pytest.raises(artifacts.ModelLoadError, match="not a model directory"):
        artifacts.load(tmp_path / "nothing")


def test_replies_never_ping(tiny_responder):
    for reply in tiny_responder.reply_batch(["@everyone", "<!channel> 모여", "<@U1> 안녕"]):
        assert "@everyone" not in reply and "<!" not in reply and "<@" not in reply


def test_bad_training_files_give_one_line_errors(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    wrong_cols = tmp_path / "cols.csv"
    wrong_cols.write_text("question,answer\n안녕,반가워\n", encoding="utf-8")
    latin = tmp_path / "latin.csv"
    latin.write_bytes("Q,A\n안녕,반가워\n".encode("euc-kr"))
    for path, fragment in ((empty, "empty"), (wrong_cols, "missing column"), (latin, "not UTF-8"),
                           (tmp_path / "none.csv", "no such file")):
        with pytest.raises(DataError, match=fragment) as info:
            read_pairs(path)
        assert "\n" not in str(info.value)


def test_split_is_stable_and_keeps_repeats_together():
    pairs = read_pairs("data/ChatbotData.csv")
    train, held = split(pairs)
    assert 0.07 < len(held) / len(pairs) < 0.13
    assert split(list(reversed(pairs)))[1] == list(reversed(held))  # order does not matter
    key = lambda s: "".join(c for c in s if c.isalnum())  # noqa: E731
    train_q, train_a = {key(p.q) for p in train}, {key(p.a) for p in train}
    assert not any(key(p.q) in train_q or key(p.a) in train_a for p in held)
    assert split([Pair("가", "나")] * 3)[0] in ([Pair("가", "나")] * 3, [])


def test_beam_search_finds_the_learned_answers(tiny_model_dir, tiny_pairs):
    beam = Responder(tiny_model_dir, beam_width=4)
    replies = beam.reply_batch([p.q for p in tiny_pairs] + ["", "😀"])
    assert replies[:-2] == [p.a for p in tiny_pairs]
    assert all(r for r in replies[-2:])


def test_dev_split_is_carved_from_training_without_leaks():
    from core_model.data import dev_split

    train, held = split(read_pairs("data/ChatbotData.csv"))
    fit, dev = dev_split(train)
    assert sorted(fit + dev, key=repr) == sorted(train, key=repr)
    assert 0.03 < len(dev) / len(train) < 0.07
    key = lambda s: "".join(c for c in s.lower() if c.isalnum())  # noqa: E731
    fit_keys = {key(p.q) for p in fit} | {"a" + key(p.a) for p in fit}
    assert not any(key(p.q) in fit_keys or "a" + key(p.a) in fit_keys for p in dev)
    assert not set(dev) & set(held)


def test_the_kept_epoch_has_the_best_dev_chrf_among_varied_epochs(tmp_path):
    import sacrebleu

    from core_model.train import TrainConfig, train
    from tests.conftest import TINY, corpus_pairs

    pairs = corpus_pairs(60)
    fit, dev = pairs[:48], pairs[48:]
    cfg = TrainConfig(**{**TINY, "epochs": 30, "patience": 0, "select_by": "chrf", "min_distinct": 0.5})
    manifest = train(fit, tmp_path / "m", cfg, dev_pairs=dev, held_pairs=dev, verbose=0)
    chrf, distinct = manifest["history"]["val_chrf"], manifest["history"]["val_distinct"]
    assert len(chrf) == len(distinct) == manifest["epochs_trained"] == 30
    assert min(distinct) < 0.5 <= max(distinct)  # both kinds of epoch occurred
    best = max(range(30), key=lambda e: (distinct[e] >= 0.5, chrf[e]))
    assert manifest["epoch_kept"] == best + 1 and manifest["dev_chrf"] == chrf[best]
    replies = Responder(tmp_path / "m", answer_bank=False).reply_batch([p.q for p in dev])  # the restored weights
    assert sacrebleu.corpus_chrf(replies, [[p.a for p in dev]]).score == pytest.approx(chrf[best], abs=1e-3)
    assert len(set(replies)) / len(replies) == pytest.approx(distinct[best], abs=1e-3)
    assert distinct[best] >= 0.5
    assert manifest["heldout_loss"] > 0
    with pytest.raises(ValueError, match="select_by"):
        train(fit, tmp_path / "x", TrainConfig(select_by="bleu"), verbose=0)


def test_a_trigram_never_comes_twice():
    import tensorflow as tf

    from core_model.decode import _block_repeated_trigrams

    seqs = tf.constant([[5, 6, 7, 5, 6, 0, 0], [5, 6, 7, 5, 6, 0, 0]])
    logits = tf.zeros([2, 10])
    blocked = _block_repeated_trigrams(logits, seqs, tf.constant([6, 6]), tf.constant(5)).numpy()
    assert blocked[0, 7] < -1e8 and blocked[1, 7] < -1e8  # "5 6 7" was said; "5 6" may not go on with 7
    assert (blocked[:, [0, 1, 2, 3, 4, 5, 6, 8, 9]] == 0).all()
    early = _block_repeated_trigrams(logits, seqs, tf.constant([6, 6]), tf.constant(2)).numpy()
    assert (early == 0).all()  # nothing is complete before step 3


def test_greedy_replies_never_repeat_a_trigram(tiny_responder, tiny_pairs):
    words = tiny_responder.loaded.vocab.tokens[4:]
    salads = [" ".join(words[i::37][:12]) for i in range(37)] + [p.q * 3 for p in tiny_pairs]
    rows = tiny_responder.decoder([tiny_responder.encode(s) for s in salads])
    for row in rows:
        row = [t for t in row if t]
        trigrams = list(zip(row, row[1:], row[2:]))
        assert len(trigrams) == len(set(trigrams))


def test_the_notebooks_greedy_decoding_lifts_only_the_guards(tiny_responder, tiny_pairs):
    from core_model.decode import _banned_bias
    from core_model.vocab import PAD_ID, SOS_ID, UNK_ID

    vocab_size = tiny_responder.loaded.model.config.vocab_size
    guarded, notebook = _banned_bias(vocab_size).numpy(), _banned_bias(vocab_size, unk=False).numpy()
    assert guarded[UNK_ID] < -1e8 and notebook[UNK_ID] == 0 and notebook[[PAD_ID, SOS_ID]].max() < -1e8
    ids = [tiny_responder.encode(p.q) for p in tiny_pairs]
    # The learned answers need no guard, so both decoders give them.
    assert NotebookGreedyDecoder(tiny_responder.loaded.model)(ids) == tiny_responder.decoder(ids)
