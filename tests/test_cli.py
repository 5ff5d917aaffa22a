"""The `chatbot` command as users run it: a subprocess, hostile input, one answer per line."""
import json
import os
import subprocess
import sys

from tests.conftest import REPO


def run(args, tiny_model_dir, stdin=b"", env_extra=None):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "chatbot", *args], input=stdin, capture_output=True,
                          cwd=REPO, env=env, timeout=300)


def test_reply_jsonl_answers_every_line(tiny_model_dir, tiny_pairs):
    lines = [
        json.dumps({"text": tiny_pairs[0].q}, ensure_ascii=False),
        json.dumps({"text": ""}),
        json.dumps({"text": "가" * 100_000}),
        json.dumps({"text": "😀😀😀"}),
        json.dumps({"text": "\x00\x07\x1b\u200b"}),
        '{"text": "\\ud800 외톨이"}',
        "not json at all",
        json.dumps({"nope": 1}),
        json.dumps({"text": "@everyone <!channel> 다 모여"}),
    ]
    stdin = ("\n".join(lines) + "\n").encode() + b"\xff\xfe broken utf-8\n"
    proc = run(["reply", "--jsonl", "--model", str(tiny_model_dir)], tiny_model_dir, stdin)
    assert proc.returncode == 0, proc.stderr.decode()
    out = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert len(out) == len(lines) + 1
    assert out[0] == {"reply": tiny_pairs[0].a}
    assert "error" in out[1] and "empty" in out[1]["error"]
    assert "reply" in out[2] and "reply" in out[3] and "reply" in out[5]
    assert "error" in out[4]  # only control characters: empty after normalization
    assert "error" in out[6] and "error" in out[7] and "error" in out[9]
    assert "@everyone" not in out[8].get("reply", "") and "<!" not in out[8].get("reply", "")


def test_reply_one_text(tiny_model_dir, tiny_pairs):
    proc = run(["reply", "--model", str(tiny_model_dir), tiny_pairs[1].q], tiny_model_dir)
    assert proc.returncode == 0
    assert proc.stdout.decode().strip() == tiny_pairs[1].a


def test_bad_model_dir_and_unknown_command(tmp_path, tiny_model_dir):
    proc = run(["reply", "--model", str(tmp_path), "안녕"], tiny_model_dir)
    assert proc.returncode == 1 and "not a model directory" in proc.stderr.decode()
    proc = run(["frobnicate"], tiny_model_dir)
    assert proc.returncode == 2 and "unknown command" in proc.stderr.decode()


def test_train_rejects_bad_data(tmp_path, tiny_model_dir):
    bad = tmp_path / "bad.csv"
    bad.write_text("x,y\n1,2\n")
    proc = run(["train", "--data", str(bad), "--out", str(tmp_path / "m")], tiny_model_dir)
    assert proc.returncode == 2
    assert proc.stderr.decode().strip().splitlines()[-1].startswith("chatbot train:")
