"""Logged conversations -> pairs -> retrain -> promotion -> a running worker serves the new version."""
import json
import os
import shutil

from bot.worker import InferenceWorker
from core_model.data import Pair, split, write_pairs
from scripts import bank, retrain
from tests.conftest import TINY, corpus_pairs


def flags(**override):
    cfg = {**TINY, **override}
    flags = [f"--{k.replace('_', '-')}" for k in cfg]
    return [f"{flag}={v}" if not isinstance(v, bool) else flag if v else "--no-" + flag[2:]
            for flag, v in zip(flags, cfg.values())]


async def test_retrain_promotes_only_when_not_worse_and_worker_serves_it(tmp_path, tiny_model_dir):
    base, pairs, written = tmp_path / "base.csv", tmp_path / "pairs.csv", tmp_path / "written.csv"
    write_pairs(base, corpus_pairs(80, start=200))
    write_pairs(pairs, [Pair("우리 봇 이름이 뭐야", "저는 한국어 챗봇이에요.")])
    write_pairs(written, [Pair("비행기 타러 간다", "설레겠어요! 조심히 다녀와요.")])
    models = tmp_path / "models"
    models.mkdir()
    common = ["--pairs", str(pairs), "--base", str(base), "--models-dir", str(models), "--written", str(written)]

    # Early stopping on the held-out split: nothing to compare with yet, so it is promoted.
    assert retrain.main([*common, "--out", str(models / "v2"), *flags(epochs=20, patience=2)]) == 0
    assert (models / "current").is_symlink() and os.readlink(models / "current") == "v2"
    v2 = json.loads((models / "v2" / "manifest.json").read_text())
    bank_v2 = json.loads((models / "v2" / "bank.json").read_text())
    assert ("비행기 타러 간다", "설레겠어요! 조심히 다녀와요.") in zip(bank_v2["questions"], bank_v2["answers"])
    assert v2["bank"]["written_pairs"] == 1 and v2["written"]["path"] == str(written)  # a retrain keeps them
    assert v2["selector"]["pairs"] == v2["split"]["train"] + 1  # the selector learns from them too

    worker = InferenceWorker(tiny_model_dir)
    await worker.start()
    old = worker.version
    result = await worker.reload(models / "current")
    assert result.ok and result.version != old
    reply = await worker.reply("우리 봇 이름이 뭐야")
    assert reply.ok and reply.model_version == result.version
    await worker.stop()

    # Trained to memorize the tiny corpus, it is worse on held-out pairs: kept out of `current`.
    assert retrain.main([*common, "--out", str(models / "v3"), *flags(epochs=40, patience=0)]) == 3
    assert os.readlink(models / "current") == "v2" and (models / "v3" / "manifest.json").exists()
    v3 = json.loads((models / "v3" / "manifest.json").read_text())
    assert v3["compared_to"]["heldout_loss"] < v3["heldout_loss"] and 0 <= v3["heldout_chrf"] <= 100
    low, high = v3["compared_to"]["chrf_gain_ci95"]
    assert low <= high
    assert 0 <= v3["heldout_selection"]["recall_at_1_of_10"] <= 1  # the selector is judged too
    low, high = v3["compared_to"]["recall_at_1_gain_ci95"]
    assert -1 <= low <= high <= 1


def test_retrain_refuses_a_model_whose_replies_are_worse_even_at_a_lower_loss(tmp_path, tiny_model_dir):
    """The loss only judges the generator; users see the replies, mostly from the answer bank."""
    base, pairs, held = tmp_path / "base.csv", tmp_path / "pairs.csv", tmp_path / "held.csv"
    write_pairs(base, corpus_pairs(80, start=200))
    write_pairs(pairs, [Pair("우리 봇 이름이 뭐야", "저는 한국어 챗봇이에요.")])
    write_pairs(held, split(corpus_pairs(80, start=200))[1])
    models = tmp_path / "models"
    models.mkdir()
    # The current model never saw this corpus (high held-out loss), but its bank holds the held-out
    # answers themselves: its replies are as good as they can be.
    shutil.copytree(tiny_model_dir, models / "v1")
    assert bank.main(["--model", str(models / "v1"), "--data", str(base), "--pairs", str(held)]) == 0
    assert retrain.main(["--pairs", str(pairs), "--base", str(base), "--models-dir", str(models),
                         "--compare-to", str(models / "v1"), "--out", str(models / "v2"),
                         *flags(epochs=20, patience=2)]) == 3
    v2 = json.loads((models / "v2" / "manifest.json").read_text())
    assert v2["heldout_loss"] < v2["compared_to"]["heldout_loss"]  # better by the loss ...
    assert v2["compared_to"]["chrf_gain_ci95"][1] < 0  # ... clearly worse by the replies
    assert v2["compared_to"]["heldout_chrf"] == 100.0 and not (models / "current").exists()
