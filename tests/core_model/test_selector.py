"""The response selector: trained on real ChatbotData pairs, it learns which answer fits; saved as weights + JSON."""
import dataclasses
import json
import shutil

import numpy as np
import pytest

from core_model import artifacts
from core_model.evaluation import selection_measures, selection_ranks
from core_model.selector import Featurizer, Selector, SelectorConfig, char_features, train_selector
from tests.conftest import corpus_pairs


@pytest.fixture(scope="module")
def trained():
    pairs = [(p.q, p.a) for p in corpus_pairs(400)]
    config = SelectorConfig(epochs=12, dim=32, hidden=64, dropout=0.1, batch_size=32, members=1)
    selector, history = train_selector(pairs[:360], pairs[360:], config, verbose=False)
    return selector, history, pairs


def test_features_are_word_ngrams_and_every_text_has_one():
    assert char_features("잘 자") == ["잘", "<잘", "잘>", "<잘>", "자", "<자", "자>", "<자>"]
    featurizer = Featurizer.build(["잘 자", "잘 자요"], min_count=2)
    assert "자" in featurizer.features and "요" not in featurizer.features  # seen once: dropped
    rows = featurizer.encode(["", "😀", "잘 자"])
    assert rows.shape[0] == 3 and (rows[:2, 0] == 1).all() and (rows[:2, 1:] == 0).all()  # only ALWAYS
    assert (rows[2] > 1).sum() > 0


def test_it_learns_which_answer_fits(trained):
    selector, history, pairs = trained
    seen = selection_measures(selection_ranks(selector.score, pairs[:200]))
    assert seen["recall_at_1_of_10"] > 0.6  # chance: 0.1
    assert len(history["dev_recall_at_1"]) == 12 and 1 <= history["epoch_kept"] <= 12
    assert history["loss"][-1] < history["loss"][0]
    scores = selector.score(["", pairs[0][0]], [[pairs[0][1], "😀"], []])
    assert [len(s) for s in scores] == [2, 0] and np.isfinite(scores[0]).all()


def test_it_ships_in_the_model_directory_pinned_by_sha256(trained, tiny_model_dir, tmp_path):
    selector, _, pairs = trained
    out = tmp_path / "m"
    shutil.copytree(tiny_model_dir, out)
    artifacts.attach_selector(out, selector, {"pairs": 360})
    loaded = artifacts.load(out)
    again = loaded.selector.score([pairs[3][0]], [[a for _, a in pairs[:5]]])[0]
    assert again == pytest.approx(selector.score([pairs[3][0]], [[a for _, a in pairs[:5]]])[0], abs=1e-5)
    manifest = json.loads((out / "manifest.json").read_text())
    assert {"selector.weights.h5", "selector.json"} <= set(manifest["files"]) and manifest["selector"]["pairs"] == 360
    (out / "selector.json").write_text((out / "selector.json").read_text().replace("<", "{"), encoding="utf-8")
    with pytest.raises(artifacts.ModelLoadError, match="selector.json does not match"):
        artifacts.load(out)
    assert isinstance(Selector.load(tiny_model_dir), Selector)


def test_raters_preferences_are_learned(trained, tmp_path):
    """Judged (message, fitting answer, unfit answer) triples from the repo's rated pool: the selector
    trained with them keeps their order, the one trained on the corpus pairs alone does not."""
    from bot.paths import BASE_JUDGED
    from core_model.judgements import load_preferences, preferences, read_judged, write_judged

    plain, _, pairs = trained
    triples = load_preferences(BASE_JUDGED)[:300]
    assert len(triples) == 300 and load_preferences("") == [] and load_preferences(tmp_path / "absent.tsv") == []
    judged, _ = train_selector(pairs[:360], pairs[360:], plain.config, verbose=False, judged=triples)

    def kept(selector: Selector) -> float:
        scores = selector.score([m for m, _, _ in triples], [[good, bad] for _, good, bad in triples])
        return float(np.mean([s[0] > s[1] for s in scores]))

    assert kept(judged) > 0.8 and kept(judged) > kept(plain) + 0.2
    rows = [("배고파", "밥 먹어요.", 2.0), ("배고파", "축하해요!", 0.0), ("배고파", "그렇군요.", 1.0)]
    write_judged(tmp_path / "j.tsv", rows)
    assert read_judged(tmp_path / "j.tsv") == rows and preferences(rows) == [("배고파", "밥 먹어요.", "축하해요!")]


def test_members_are_averaged_and_saved_at_half_precision(trained, tmp_path):
    """Two members from seeds 42 and 43: the fit is the mean of theirs, the file holds each at float16,
    and a selector saved in Keras's own layout before members existed still loads as one member."""
    import h5py
    import keras

    plain, _, pairs = trained
    config = dataclasses.replace(plain.config, members=2, epochs=3)
    pair, history = train_selector(pairs[:360], pairs[360:], config, verbose=False)
    assert [m["seed"] for m in history["members"]] == [42, 43] and len(pair.members) == 2
    assert 0.0 <= history["dev_recall_at_1_of_10"] <= 1.0
    messages, answers = [q for q, _ in pairs[:4]], [[a for _, a in pairs[:6]]] * 4
    alone = [Selector(pair.featurizer, config, [towers]).score(messages, answers) for towers in pair.members]
    both = pair.score(messages, answers)
    for m in range(4):
        assert both[m] == pytest.approx((alone[0][m] + alone[1][m]) / 2, abs=1e-5)
    pair.save(tmp_path)
    with h5py.File(tmp_path / "selector.weights.h5") as f:
        assert sorted(f) == ["member_0", "member_1"]
        assert {f["member_0"][k].dtype for k in f["member_0"]} == {np.dtype("float16")}
    loaded = Selector.load(tmp_path)
    assert len(loaded.members) == 2
    for a, b in zip(loaded.score(messages, answers), both):
        assert a == pytest.approx(b, abs=1e-5)  # trained weights were rounded to the saved precision

    old = tmp_path / "old"
    old.mkdir()
    (message, answer), = plain.members
    both_towers = keras.Model([message.input, answer.input], [message.output, answer.output])
    both_towers.save_weights(old / "selector.weights.h5")
    (old / "selector.json").write_text(json.dumps({"config": plain.config.__dict__,
                                                   "features": plain.featurizer.features}))
    legacy = Selector.load(old)
    assert len(legacy.members) == 1
    for a, b in zip(legacy.score(messages, answers), plain.score(messages, answers)):
        assert a == pytest.approx(b, abs=1e-5)
