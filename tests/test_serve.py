"""`chatbot serve` as a real subprocess: terminal chat, health and metrics, SIGTERM drain, config errors."""
import asyncio
import json
import os
import pty
import select
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time

import aiohttp
from slack_sdk.signature import SignatureVerifier

from scripts import retrain
from tests.conftest import REPO
from tests.fakes import FakeSlackAPI

SECRET = "serve-signing-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env(tmp_path, tiny_model_dir, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHATBOT_", "SLACK_", "DISCORD_"))}
    return {**env, "CHATBOT_MODEL_DIR": str(tiny_model_dir), "CHATBOT_DB": str(tmp_path / "serve.sqlite3"),
            "CHATBOT_HTTP_PORT": "0", "TF_CPP_MIN_LOG_LEVEL": "3", **extra}


def test_bad_config_fails_fast_with_key_name(tmp_path, tiny_model_dir):
    cases = [({"CHATBOT_MAX_BATCH": "lots"}, "max_batch"), ({"CHATBOT_LOG_LEVEL": "LOUD"}, "log_level"),
             ({"CHATBOT_NOPE": "1"}, "CHATBOT_NOPE"), ({"CHATBOT_ANSWER_BANK": "maybe"}, "answer_bank"),
             ({"SLACK_BOT_TOKEN": "xoxb-1"}, "slack_signing_secret"), ({"CHATBOT_SHARD_IDS": "0,1"}, "shard_count")]
    for extra, key in cases:
        proc = subprocess.run([sys.executable, "-m", "chatbot", "serve"], cwd=REPO, capture_output=True, timeout=60,
                              env=base_env(tmp_path, tiny_model_dir, **extra), stdin=subprocess.DEVNULL)
        assert proc.returncode == 2 and key in proc.stderr.decode(), (extra, proc.stderr.decode())
    toml = tmp_path / "bad.toml"
    toml.write_text('db = "x.sqlite3"\nmystery = 3\n')
    proc = subprocess.run([sys.executable, "-m", "chatbot", "serve", "--config", str(toml)], cwd=REPO,
                          capture_output=True, timeout=60, env=base_env(tmp_path, tiny_model_dir))
    assert proc.returncode == 2 and "mystery" in proc.stderr.decode()
    proc = subprocess.run([sys.executable, "-m", "chatbot", "serve", "--config", "chatbot.example.toml"], cwd=REPO,
                          capture_output=True, timeout=60, env=base_env(tmp_path, tiny_model_dir),
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 2 and "SLACK_BOT_TOKEN" in proc.stderr.decode()  # valid config, nothing to run


def test_terminal_chat_in_a_pty(tmp_path, tiny_model_dir, tiny_pairs):
    """As `make run` opens it: stdin, stdout and stderr on one terminal, TensorFlow at its chattiest."""
    taken = socket.socket()  # another chatbot holds the health port: the terminal chat goes on without it
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "chatbot", "serve"], cwd=REPO, stdin=slave, stdout=slave,
                            stderr=slave, env=base_env(tmp_path, tiny_model_dir, TF_CPP_MIN_LOG_LEVEL="0",
                                                       CHATBOT_HTTP_PORT=str(taken.getsockname()[1])))
    os.close(slave)
    out = b""

    def read_until(marker: bytes, timeout=120) -> bytes:
        nonlocal out
        deadline = time.monotonic() + timeout
        while marker not in out and time.monotonic() < deadline:
            if select.select([master], [], [], 0.5)[0]:
                out += os.read(master, 4096)
        return out

    assert "나> ".encode() in read_until("나> ".encode())
    os.write(master, (tiny_pairs[0].q + "\n").encode())
    assert tiny_pairs[0].a.encode() in read_until(tiny_pairs[0].a.encode())
    proc.send_signal(signal.SIGINT)  # Ctrl-C while the chat waits for input: a clean exit
    assert proc.wait(timeout=10) == 0
    os.close(master)
    screen = out.decode(errors="replace")
    native_log = tmp_path / "native.log"  # beside the store
    assert str(native_log) in screen and native_log.exists()
    assert "absl::InitializeLog" not in screen and "I0000" not in screen and "E0000" not in screen, screen
    assert f"127.0.0.1:{taken.getsockname()[1]} is taken" in screen
    with sqlite3.connect(tmp_path / "serve.sqlite3") as db:
        assert db.execute("SELECT text FROM exchanges").fetchall() == [(tiny_pairs[0].q,)]
    taken.close()


def test_daemon_refuses_a_taken_health_port_with_a_clear_error(tmp_path, tiny_model_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "chatbot", "serve"], cwd=REPO, capture_output=True, timeout=120,
                              env=base_env(tmp_path, tiny_model_dir, CHATBOT_HTTP_PORT=str(port),
                                           SLACK_BOT_TOKEN="xoxb-secret-token", SLACK_SIGNING_SECRET=SECRET))
    err = proc.stderr.decode()
    assert proc.returncode == 2 and f"127.0.0.1:{port}" in err and "CHATBOT_HTTP_PORT" in err, err
    assert "Traceback" not in err and "xoxb-secret-token" not in err


def promote_copy(tiny_model_dir, models, version: str):
    """A copy of the tiny model under a new version, promoted by moving the `current` link."""
    target = models / version
    shutil.copytree(tiny_model_dir, target)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["version"] = version
    (target / "manifest.json").write_text(json.dumps(manifest))
    retrain.promote(models, target)


async def health_of(session, port):
    try:
        async with session.get(f"http://127.0.0.1:{port}/healthz") as resp:
            return resp.status, await resp.json()
    except aiohttp.ClientError:
        return None, {}


async def wait_health(session, port, ok, tries=600):
    for _ in range(tries):
        status, body = await health_of(session, port)
        if ok(status, body):
            return status, body
        await asyncio.sleep(0.2)
    return await health_of(session, port)


async def test_slack_beside_failing_discord_health_metrics_reload_and_sigterm_drain(
        tmp_path, tiny_model_dir, tiny_pairs):
    api = await FakeSlackAPI().start()
    http_port, slack_port = free_port(), free_port()
    models = tmp_path / "models"
    models.mkdir()
    promote_copy(tiny_model_dir, models, "v-one")
    env = base_env(tmp_path, tiny_model_dir, CHATBOT_HTTP_PORT=str(http_port), SLACK_BOT_TOKEN="xoxb-very-secret",
                   CHATBOT_MODEL_DIR=str(models / "current"), CHATBOT_MODEL_WATCH_S="0.2",
                   SLACK_SIGNING_SECRET=SECRET, SLACK_HTTP_PORT=str(slack_port), SLACK_API_URL=api.url,
                   DISCORD_TOKEN="discord-very-secret", CHATBOT_RATE_PER_MINUTE="0")
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "chatbot", "serve", cwd=REPO, env=env,
                                                stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
    async with aiohttp.ClientSession() as session:
        health = await wait_health(session, http_port, lambda status, body: status == 200 and body.get(
            "adapters", {}).get("discord", "").startswith("failed"))
        assert health[0] == 200, health
        assert health[1]["model_version"] == "v-one" and health[1]["adapters"]["slack"] == "running"

        promote_copy(tiny_model_dir, models, "v-two")  # what `chatbot retrain` does: the daemon follows
        health = await wait_health(session, http_port, lambda s, b: b.get("model_version") == "v-two", 300)
        assert health[1]["model_version"] == "v-two"
        proc.send_signal(signal.SIGHUP)  # reload on demand: same directory, still serving
        await asyncio.sleep(1)
        assert (await health_of(session, http_port))[1]["model_version"] == "v-two"

        questions = [p.q for p in tiny_pairs[:12]]
        for i, q in enumerate(questions):
            body = json.dumps({"type": "event_callback", "team_id": "T1", "event_id": f"EvS{i}",
                               "event": {"type": "app_mention", "user": "U1", "text": f"<@UBOT> {q}",
                                         "ts": f"{i}.0", "channel": "C1"}}, ensure_ascii=False)
            ts = str(int(time.time()))
            sig = SignatureVerifier(SECRET).generate_signature(timestamp=ts, body=body)
            async with session.post(f"http://127.0.0.1:{slack_port}/slack/events", data=body.encode(), headers={
                    "Content-Type": "application/json", "X-Slack-Request-Timestamp": ts,
                    "X-Slack-Signature": sig}) as resp:
                assert resp.status == 200
        async with session.get(f"http://127.0.0.1:{http_port}/metrics") as resp:
            metrics = await resp.text()
        assert "chatbot_messages_received_total" in metrics and "chatbot_queue_depth" in metrics
        assert "chatbot_batch_size_bucket" in metrics and "chatbot_model_info" in metrics
        for _ in range(600):  # the events were acknowledged at once; wait for the replies
            if 'chatbot_replies_by_source_total{source="bank"} 12.0' in metrics:
                break
            await asyncio.sleep(0.1)
            async with session.get(f"http://127.0.0.1:{http_port}/metrics") as resp:
                metrics = await resp.text()
        # Its own training questions, which its answer bank holds as they are.
        assert 'chatbot_replies_by_source_total{source="bank"} 12.0' in metrics
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 10)
        logs = (await proc.stderr.read()).decode()
    await api.stop()
    assert code == 0, logs
    assert sorted(p["text"] for p in api.posts) == sorted(p.a for p in tiny_pairs[:12])
    with sqlite3.connect(tmp_path / "serve.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM exchanges WHERE platform = 'slack'").fetchone()[0] == 12
    assert "discord adapter stopped" in logs and "model reloaded" in logs
    assert "very-secret" not in logs


def signed_mention(i: int, channel: str, text: str) -> tuple[bytes, dict]:
    body = json.dumps({"type": "event_callback", "team_id": "T1", "event_id": f"EvK{i}",
                       "event": {"type": "app_mention", "user": f"U{i}", "text": f"<@UBOT> {text}",
                                 "ts": f"{i}.0", "channel": channel}}, ensure_ascii=False)
    ts = str(int(time.time()))
    return body.encode(), {"Content-Type": "application/json", "X-Slack-Request-Timestamp": ts,
                           "X-Slack-Signature": SignatureVerifier(SECRET).generate_signature(timestamp=ts, body=body)}


async def test_kill_9_with_replies_owed_then_restart_answers_them_once_unless_too_old(
        tmp_path, tiny_model_dir, tiny_pairs):
    """Slack lets 2 posts per second per channel through: a burst of mentions leaves a backlog owed in the
    outbox. kill -9, then a start on the same database answers every acknowledged mention (a duplicate
    only for a post in flight at the kill), except one aged past the limit meanwhile: that one expires."""
    api = await FakeSlackAPI(rate=2, burst=1, retry_after=0).start()
    http_port, slack_port = free_port(), free_port()
    env = base_env(tmp_path, tiny_model_dir, CHATBOT_HTTP_PORT=str(http_port), SLACK_BOT_TOKEN="xoxb-kill",
                   SLACK_SIGNING_SECRET=SECRET, SLACK_HTTP_PORT=str(slack_port), SLACK_API_URL=api.url,
                   CHATBOT_RATE_PER_MINUTE="0", CHATBOT_MODEL_WATCH_S="0")
    serve = [sys.executable, "-m", "chatbot", "serve"]
    questions = {f"{i}.0": (f"C{i % 2}", tiny_pairs[i].q) for i in range(10)}
    async with aiohttp.ClientSession() as session:
        proc = await asyncio.create_subprocess_exec(*serve, cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                                                    stderr=subprocess.DEVNULL)
        assert (await wait_health(session, http_port, lambda status, body: status == 200))[0] == 200
        for i, (channel, q) in enumerate(questions.values()):
            body, headers = signed_mention(i, channel, q)
            async with session.post(f"http://127.0.0.1:{slack_port}/slack/events", data=body, headers=headers) as r:
                assert r.status == 200  # acknowledged: from here on the reply is owed
        await api.wait_posts(2, timeout=30)
        proc.kill()  # kill -9 in the middle of the backlog
        await proc.wait()
        posted_before = {p["thread_ts"] for p in api.posts}
        db_path = tmp_path / "serve.sqlite3"
        with sqlite3.connect(db_path) as db:
            owed = [t for (t,) in db.execute("SELECT thread FROM outbox WHERE status = 'pending' ORDER BY id")]
            stale = next(t for t in reversed(owed) if t not in posted_before)
            db.execute("UPDATE outbox SET created_at = created_at - 3600 WHERE thread = ?", (stale,))
        assert len(posted_before) < len(questions) and len(owed) >= 3

        proc = await asyncio.create_subprocess_exec(*serve, cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                                                    stderr=subprocess.PIPE)
        await wait_health(session, http_port, lambda status, body: status == 200 and body["outbox_pending"] == 0)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 15) == 0
        logs = (await proc.stderr.read()).decode()
    await api.stop()
    threads = [p["thread_ts"] for p in api.posts]
    assert set(threads) == set(questions) - {stale}, logs  # every acknowledged mention but the stale one
    duplicates = len(threads) - len(set(threads))
    assert duplicates <= 2  # at most one post in flight per channel at the kill
    for post in api.posts:
        assert post["text"] in {p.a for p in tiny_pairs[:10]} and post["channel"] == questions[post["thread_ts"]][0]
    with sqlite3.connect(db_path) as db:
        statuses = dict(db.execute("SELECT thread, status FROM outbox"))
    assert statuses.pop(stale) == "expired" and set(statuses.values()) == {"sent"}
    assert "expired unsent" in logs and "being sent" in logs
