"""The terminal adapter, driven like a conversation, and `chatbot chat` as a scripted subprocess."""
import os
import sqlite3
import subprocess
import sys

from adapters.terminal import TerminalSession
from bot.pipeline import Pipeline
from bot.store import Store
from bot.worker import InferenceWorker, WorkerConfig
from tests.conftest import REPO
from tests.fakes import read_exchanges


async def test_conversation_commands_and_logging(tmp_path, tiny_responder, tiny_pairs):
    worker = InferenceWorker("unused", WorkerConfig(), engine_factory=lambda _: tiny_responder)
    await worker.start()
    store = await Store(tmp_path / "db.sqlite3").open()
    me = TerminalSession(Pipeline(worker, store), "me")
    assert "아직" in await me.handle_line("/good")
    assert await me.handle_line(tiny_pairs[0].q) == tiny_pairs[0].a
    assert "고마워요" in await me.handle_line("/good")
    assert "사용법" in await me.handle_line("/teach")
    assert "배웠어요" in await me.handle_line("/teach 정말 좋은 답")
    assert "/teach" in await me.handle_line("/what")
    assert "비어" in await me.handle_line("   ")
    assert await me.handle_line("/quit") is None
    rows = await store.training_rows()
    assert [r[3] for r in rows] == ["good", "teach"] and rows[1][2] == "정말 좋은 답"
    assert "2개" in await me.handle_line("/forget")
    assert read_exchanges(store.path) == []
    await store.close()
    await worker.stop()


def test_chat_subprocess_reads_lines_and_logs(tmp_path, tiny_model_dir, tiny_pairs):
    db = tmp_path / "chat.sqlite3"
    stdin = f"{tiny_pairs[0].q}\n\n{tiny_pairs[1].q}\n/bad\n@everyone 안녕\n".encode()
    proc = subprocess.run([sys.executable, "-m", "chatbot", "chat", "--model", str(tiny_model_dir), "--user", "t"],
                          input=stdin, capture_output=True, cwd=REPO, timeout=300,
                          env={**os.environ, "CHATBOT_DB": str(db)})
    assert proc.returncode == 0, proc.stderr.decode()
    lines = proc.stdout.decode().splitlines()
    assert lines[:3] == [tiny_pairs[0].a, tiny_pairs[1].a, "알려 줘서 고마워요. 더 나아질게요."]
    assert len(lines) == 4 and "@everyone" not in lines[3]
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT platform, user_id, text FROM exchanges ORDER BY id").fetchall()
        assert rows == [("terminal", "t", tiny_pairs[0].q), ("terminal", "t", tiny_pairs[1].q),
                        ("terminal", "t", "@everyone 안녕")]
        assert conn.execute("SELECT kind FROM feedback").fetchall() == [("bad",)]
