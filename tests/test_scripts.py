"""`chatbot eval` and `chatbot bench` run end to end on a real (tiny) model and print their JSON."""
import json
import os
import subprocess
import sys

import pytest

from core_model.evaluation import fluent
from tests.conftest import REPO


def run(args, timeout=600):
    proc = subprocess.run([sys.executable, "-m", "chatbot", *args], cwd=REPO, capture_output=True, timeout=timeout,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    return json.loads(proc.stdout.decode().strip().splitlines()[-1])


def test_eval_scores_models_and_retrieval(tiny_model_dir, tmp_path):
    sheet = tmp_path / "sheet.tsv"
    out = run(["eval", "--model", f"shipped={tiny_model_dir}@4:1", "--model", f"tiny={tiny_model_dir}",
               "--model", f"seed={tiny_model_dir}@notebook", "--sheet", str(sheet), "--sample", "12",
               "--limit", "40", "--json", "--reports", str(tmp_path)])
    assert out["split"] == {"train": out["split"]["train"], "heldout": 40}
    selection = {"selector", "overlap", "generator", "generator_anti_lm"}
    assert set(out["systems"]) == {"shipped", "tiny", "seed", "retrieval"} | selection
    assert out["targets"]["chrf_vs_seed"] > 0 and "chrf_vs_seed_our_decoder" not in out["targets"]
    for name, system in out["systems"].items():
        if name not in selection:
            assert 0 <= system["chrf"] <= 100 and 0 <= system["fluency"] <= 1 and system["distinct_replies"] >= 1
        if name in selection | {"shipped"}:
            assert 0 <= system["recall_at_1_of_10"] <= 1 and 0.1 <= system["mrr"] <= 1
    shipped = out["systems"]["shipped"]
    ratio = shipped["chrf"] / out["systems"]["retrieval"]["chrf"]
    assert out["targets"]["chrf_vs_retrieval"] == round(ratio, 3)
    assert out["targets"]["met"] == (shipped["recall_at_1_of_10"] >= 0.4 and shipped["fluency"] >= 0.95)
    low, high = out["targets"]["chrf_gain_vs_retrieval_ci95"]
    assert low <= high
    report = (tmp_path / "eval.md").read_text()
    assert "| tiny |" in report and "Met: " in report and report.count("\n| ") >= 20 + 2
    # The blind sheet: 12 questions, no system named; two raters' copies unblind into reports/judged.*.
    rows = sheet.read_text(encoding="utf-8").splitlines()
    assert rows[0] == "id\tmessage\treply\trating" and len({r.split("\t")[1] for r in rows[1:]}) == 12
    assert not any(name in r for r in rows for name in ("shipped", "retrieval", "reference"))
    for n, rating in ((1, "2"), (2, "1")):
        (tmp_path / f"rated{n}.tsv").write_text("\n".join([rows[0]] + [r + rating for r in rows[1:]]) + "\n",
                                                encoding="utf-8")
    judged = run(["eval", "--ratings", str(tmp_path / "rated1.tsv"), str(tmp_path / "rated2.tsv"),
                  "--key", f"{sheet}.key.json", "--reports", str(tmp_path), "--json"])
    assert judged["raters"] == 2 and judged["exact_agreement"] == 0.0 and judged["rows_rated"] == len(rows) - 1
    assert judged["systems"]["reference"] == {"n": 12, "fitting": 1.0, "unfit": 0.0, "mean": 1.5}
    assert "| shipped | 12 |" in (tmp_path / "judged.md").read_text()
    assert (tmp_path / "scores.png").stat().st_size > 1000 and (tmp_path / "curves.png").stat().st_size > 1000
    bad = subprocess.run([sys.executable, "-m", "chatbot", "eval", "--model", f"x={tiny_model_dir}@wide"], cwd=REPO,
                         capture_output=True, timeout=120)
    assert bad.returncode == 2 and b"BEAM a number or 'notebook'" in bad.stderr


def test_eval_writes_a_blind_sheet_for_messages_outside_the_corpus(tiny_model_dir, tmp_path):
    (tmp_path / "everyday.txt").write_text("오늘 너무 피곤하다\n\n비 와서 우울해\n", encoding="utf-8")
    sheet = tmp_path / "everyday.tsv"
    proc = subprocess.run([sys.executable, "-m", "chatbot", "eval", "--messages", str(tmp_path / "everyday.txt"),
                           "--sheet", str(sheet), "--model", f"bank={tiny_model_dir}@1:1",
                           "--model", f"generated={tiny_model_dir}@1:0"], cwd=REPO, capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    rows = [r.split("\t") for r in sheet.read_text(encoding="utf-8").splitlines()[1:]]
    assert {r[1] for r in rows} == {"오늘 너무 피곤하다", "비 와서 우울해"} and all(r[2] for r in rows)
    key = json.loads((tmp_path / "everyday.tsv.key.json").read_text(encoding="utf-8"))
    assert key["systems"] == ["bank", "generated"] and key["messages"] == 2
    assert sorted(s for row in key["rows"].values() for s in row["systems"]) == ["bank"] * 2 + ["generated"] * 2
    alone = subprocess.run([sys.executable, "-m", "chatbot", "eval", "--messages", str(tmp_path / "everyday.txt")],
                           cwd=REPO, capture_output=True, timeout=120)
    assert alone.returncode == 2 and b"--messages needs --sheet" in alone.stderr
    gone = subprocess.run([sys.executable, "-m", "chatbot", "eval", "--messages", str(tmp_path / "everyday.txt"),
                           "--sheet", str(tmp_path / "other.tsv"), "--model", f"bank={tiny_model_dir}@1:1",
                           "--model", f"old={tmp_path / 'gone'}"], cwd=REPO, capture_output=True, timeout=120)
    assert gone.returncode == 2 and b"no model at old" in gone.stderr and not (tmp_path / "other.tsv").exists()


def test_fluency_rules():
    assert fluent("좋은 하루 보내세요.", True)
    assert not fluent("좋은 하루 보내세요.", False)  # hit the length limit
    assert not fluent("", True)
    assert not fluent("더 더 더 좋아요", True)
    assert not fluent("hello there friend", True)


def test_bench_quick_prints_all_keys(tiny_model_dir):
    out = run(["bench", "--quick", "--model", str(tiny_model_dir)])
    for key in ("seed_eager", "worker_c1", "worker_c8", "worker_c64", "worker_c64_beam4", "worker_c64_daemon"):
        assert set(out[key]) >= {"replies_per_s", "p50_ms", "p99_ms"} and out[key]["replies_per_s"] > 0
    assert out["device"] == "CPU" and out["rss_mb"] > 0 and out["tokens_per_s_c64"] > 0
    assert out["speedup_c64"] > 0 and out["latency_ratio_c1"] > 0


def test_bank_gives_a_model_the_training_side_of_a_corpus(tiny_model_dir, tmp_path):
    import shutil

    from core_model.artifacts import load
    from core_model.data import Pair, dev_split, split, write_pairs
    from core_model.responder import Responder
    from tests.conftest import corpus_pairs

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    pairs = corpus_pairs(300, start=2000)
    write_pairs(tmp_path / "corpus.csv", pairs)
    taught = [Pair("우리 고양이 이름은?", "나비예요."), Pair("우리 고양이 이름은?", "나비예요.")]
    write_pairs(tmp_path / "taught.csv", taught)
    write_pairs(tmp_path / "written.csv", [Pair("비행기 타러 간다", "설레겠어요! 조심히 다녀와요.")])
    proc = subprocess.run([sys.executable, "-m", "chatbot", "bank", "--data", str(tmp_path / "corpus.csv"),
                           "--pairs", str(tmp_path / "taught.csv"), "--model", str(model),
                           "--written", str(tmp_path / "written.csv"), "--selector-members", "1"],
                          cwd=REPO, capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    train, held = split(pairs)
    loaded = load(model)  # the manifest pins the new bank
    expected = {(p.q, p.a) for p in train} | {("우리 고양이 이름은?", "나비예요."),
                                               ("비행기 타러 간다", "설레겠어요! 조심히 다녀와요.")}
    assert str(tmp_path / "written.csv") in [d["path"] for d in loaded.manifest["bank"]["data"]]
    assert set(zip(loaded.bank.questions, loaded.bank.answers)) == expected and held
    assert loaded.manifest["bank"]["pairs"] == len(expected) and "chatbot bank" in loaded.manifest["bank"]["command"]
    assert loaded.selector is not None and loaded.manifest["selector"]["epoch_kept"] >= 1  # retrained on the bank
    assert loaded.manifest["selector"]["pairs"] == len(dev_split(train)[0]) + 2 + 1  # fit + taught + written
    assert len(loaded.selector.members) == loaded.manifest["selector"]["config"]["members"] == 1
    assert Responder(model).reply("우리 고양이 이름은?") == "나비예요."  # taught, and answered without retraining
    missing = subprocess.run([sys.executable, "-m", "chatbot", "bank", "--model", str(tmp_path / "none")],
                             cwd=REPO, capture_output=True, timeout=300)
    assert missing.returncode == 2 and b"not a model directory" in missing.stderr


@pytest.mark.parametrize("script, target", [("train", "--out"), ("bank", "--model")])
def test_a_selector_without_members_is_refused_before_any_work(script, target, tmp_path, capsys):
    """`--selector-members 0` is a usage error (exit 2, one line naming it) for train and bank, not a
    failure deep inside training."""
    import importlib

    with pytest.raises(SystemExit) as stopped:
        importlib.import_module(f"scripts.{script}").main([target, str(tmp_path / "model"), "--selector-members", "0"])
    assert stopped.value.code == 2
    assert "selector" in capsys.readouterr().err and not (tmp_path / "model").exists()


def test_the_written_pairs_go_with_the_shipped_corpus_only(tmp_path):
    """They were written beside ChatbotData (leaving out its held-out questions): another corpus gets none
    unless asked for, and '' turns them off."""
    from bot.paths import BASE_CORPUS, WRITTEN_PAIRS
    from core_model.data import Pair, file_sha256, write_pairs
    from scripts.train import written_pairs

    shipped, record = written_pairs(None, BASE_CORPUS)
    assert record == {"path": "data/written_pairs.csv", "sha256": file_sha256(WRITTEN_PAIRS)} and len(shipped) > 1000
    assert written_pairs(None, tmp_path / "other.csv") == ([], None)
    assert written_pairs("", BASE_CORPUS) == ([], None)
    mine = [Pair("비행기 타러 간다", "설레겠어요!")]
    write_pairs(tmp_path / "w.csv", mine)
    assert written_pairs(str(tmp_path / "w.csv"), tmp_path / "other.csv")[0] == mine
