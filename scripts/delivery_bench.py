"""Delivery under Slack's limits and faults, measured end to end; one JSON object on stdout.

`chatbot serve` runs as a subprocess (the shipped model unless --model) in Slack HTTP mode against a
local stand-in for Slack's Web API (tests/fakes.py FakeSlackAPI) that lets `--rate` posts per second
per channel through with bursts of `--burst` (beyond that HTTP 429 + Retry-After), answers 503 to
every `--fail-every`-th post request and closes the connection without an answer on every
`--drop-every`-th. `--mentions` signed app_mention events over `--channels` channels from `--users`
users are sent at once; the run waits until every acknowledged mention has a reply in its thread.
With `--kill-after S` the daemon is killed (SIGKILL) S seconds after the last acknowledgement and
started again on the same database.

Run from the repository root: `python -m scripts.delivery_bench [--kill-after 15]`.
"""
from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import re
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SECRET = "bench-signing-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def questions(n: int) -> list[str]:
    with open(REPO / "data" / "ChatbotData.csv", encoding="utf-8") as f:
        out = list(dict.fromkeys(row["Q"] for row in csv.DictReader(f)))
    return (out * (n // len(out) + 1))[:n]


def signed(i: int, channel: str, user: str, text: str) -> tuple[bytes, dict]:
    from slack_sdk.signature import SignatureVerifier

    body = json.dumps({"type": "event_callback", "team_id": "T1", "event_id": f"EvBench{i}",
                       "event": {"type": "app_mention", "user": user, "text": f"<@UBOT> {text}",
                                 "ts": f"{1700000000 + i}.000100", "channel": channel}}, ensure_ascii=False)
    ts = str(int(time.time()))
    return body.encode(), {"Content-Type": "application/json", "X-Slack-Request-Timestamp": ts,
                           "X-Slack-Signature": SignatureVerifier(SECRET).generate_signature(timestamp=ts, body=body)}


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return round(values[min(len(values) - 1, int(len(values) * q))], 3) if values else 0.0


class Daemon:
    def __init__(self, env: dict, log_path: Path, cpus: set[int] | None = None) -> None:
        self.env, self.log_path, self.proc, self.cpus = env, log_path, None, cpus

    def start(self) -> None:
        log = open(self.log_path, "ab")
        cpus = self.cpus
        self.proc = subprocess.Popen([sys.executable, "-m", "chatbot", "serve"], cwd=REPO, env=self.env,
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                     preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
        log.close()

    async def ready(self, session, port: int, timeout: float = 300) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                async with session.get(f"http://127.0.0.1:{port}/healthz") as resp:
                    if resp.status == 200:
                        return await resp.json()
            except Exception:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"chatbot serve exited {self.proc.returncode}; see {self.log_path}")
            await asyncio.sleep(0.2)
        raise RuntimeError("chatbot serve did not become ready")


def retries_by_reason(metrics_text: str) -> dict:
    out = {}
    for name in ("chatbot_delivery_retries_total", "chatbot_delivery_failures_total"):
        for reason, value in re.findall(name + r'\{platform="slack",reason="([^"]+)"\} ([0-9.e+]+)', metrics_text):
            out.setdefault(name.removeprefix("chatbot_delivery_").removesuffix("_total"), {})[reason] = int(
                float(value))
    return out


async def run(args) -> dict:
    import aiohttp

    from tests.fakes import FakeSlackAPI

    api = await FakeSlackAPI(rate=args.rate, burst=args.burst, fail_every=args.fail_every,
                             drop_every=args.drop_every).start()
    work = Path(tempfile.mkdtemp(prefix="delivery-bench-"))
    http_port, slack_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHATBOT_", "SLACK_", "DISCORD_"))}
    env.update(CHATBOT_DB=str(work / "bench.sqlite3"), CHATBOT_HTTP_PORT=str(http_port), CHATBOT_MODEL_WATCH_S="0",
               SLACK_BOT_TOKEN="xoxb-bench", SLACK_SIGNING_SECRET=SECRET, SLACK_HTTP_PORT=str(slack_port),
               SLACK_API_URL=api.url, TF_CPP_MIN_LOG_LEVEL="3")
    if args.model:
        env["CHATBOT_MODEL_DIR"] = args.model
    daemon = Daemon(env, work / "serve.log")
    texts = questions(args.mentions)
    threads: dict[str, tuple[str, float]] = {}  # thread ts -> (channel, when sent)
    acks: list[float] = []
    result: dict = {"mentions": args.mentions, "channels": args.channels, "users": args.users,
                    "fake_slack": {"rate_per_s_per_channel": args.rate, "burst": args.burst,
                                   "fail_every": args.fail_every, "drop_every": args.drop_every}}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        daemon.start()
        started = time.monotonic()
        await daemon.ready(session, http_port)
        result["start_s"] = round(time.monotonic() - started, 1)

        async def mention(i: int) -> None:
            channel, user = f"C{i % args.channels:02d}", f"U{i % args.users:03d}"
            body, headers = signed(i, channel, user, texts[i])
            sent = time.time()
            async with session.post(f"http://127.0.0.1:{slack_port}/slack/events", data=body, headers=headers) as r:
                acks.append(time.time() - sent)
                if r.status == 200:
                    threads[f"{1700000000 + i}.000100"] = (channel, sent)

        await asyncio.gather(*(mention(i) for i in range(args.mentions)))
        result["acknowledged"] = len(threads)
        if args.kill_after:
            await asyncio.sleep(args.kill_after)
            daemon.proc.send_signal(signal.SIGKILL)
            daemon.proc.wait()
            await asyncio.sleep(2)  # requests the daemon had sent before it died still reach the fake API
            posted_before = {p["thread_ts"] for p in api.posts}
            with sqlite3.connect(work / "bench.sqlite3") as db:
                owed = {t for (t,) in db.execute("SELECT thread FROM outbox WHERE status = 'pending'")}
                unanswered = db.execute("SELECT count(*) FROM outbox WHERE status = 'pending' AND reply IS NULL")
                unanswered = unanswered.fetchone()[0]
            result["kill"] = {"after_last_ack_s": args.kill_after, "posts_before_kill": len(api.posts),
                              "owed_at_kill": len(owed), "owed_without_a_reply_yet": unanswered,
                              "in_flight_at_kill": len(owed & posted_before)}  # posted, not marked sent
            daemon.start()
            restarted = time.monotonic()
            await daemon.ready(session, http_port)
            result["kill"]["restart_s"] = round(time.monotonic() - restarted, 1)
        deadline = time.monotonic() + args.deadline
        while time.monotonic() < deadline and len({p["thread_ts"] for p in api.posts} & threads.keys()) < len(threads):
            await asyncio.sleep(0.5)
        await asyncio.sleep(2)  # anything sent twice shows now
        async with session.get(f"http://127.0.0.1:{http_port}/metrics") as resp:
            metrics = await resp.text()
        async with session.get(f"http://127.0.0.1:{http_port}/healthz") as resp:
            result["outbox_pending_at_end"] = (await resp.json()).get("outbox_pending")
    daemon.proc.send_signal(signal.SIGTERM)
    result["exit_code"] = daemon.proc.wait(30)
    await api.stop()
    (work / "posts.json").write_text(json.dumps(api.posts, ensure_ascii=False))

    first_post: dict[str, float] = {}
    counts: dict[str, int] = {}
    wrong_place = 0
    for p in api.posts:
        counts[p["thread_ts"]] = counts.get(p["thread_ts"], 0) + 1
        first_post.setdefault(p["thread_ts"], p["at"])
        wrong_place += p["thread_ts"] in threads and threads[p["thread_ts"]][0] != p["channel"]
    latencies = [first_post[t] - sent for t, (_, sent) in threads.items() if t in first_post]
    logs = (work / "serve.log").read_text(errors="replace")
    result.update({
        "answered": sum(1 for t in threads if t in first_post),
        "answered_twice": sum(1 for t in threads if counts.get(t, 0) > 1),
        "posts": len(api.posts), "posts_in_wrong_channel": wrong_place,
        "busy_replies": sum("바빠요" in p["text"] for p in api.posts),
        "answer_s": {"p50": pct(latencies, 0.5), "p99": pct(latencies, 0.99), "max": pct(latencies, 1.0),
                     "mean": round(statistics.fmean(latencies), 3) if latencies else 0.0},
        "ack_ms": {"p50": round(pct(acks, 0.5) * 1000, 1), "p99": round(pct(acks, 0.99) * 1000, 1),
                   "max": round(pct(acks, 1.0) * 1000, 1)},
        "slack_answers": {"post_requests": api.requests, "429": api.limited, "503": api.failed,
                          "dropped": api.dropped},
        "daemon_metrics": retries_by_reason(metrics),
        "log_lines_could_not_post": logs.count("could not post"),
        "log_lines_empty_reason": len(re.findall(r"could not post in \S+: *$", logs, re.M)),
        "log": str(work / "serve.log"),
    })
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.delivery_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--mentions", type=int, default=300)
    parser.add_argument("--channels", type=int, default=10)
    parser.add_argument("--users", type=int, default=60)
    parser.add_argument("--rate", type=float, default=1.0, help="posts per second per channel Slack allows")
    parser.add_argument("--burst", type=int, default=3)
    parser.add_argument("--fail-every", type=int, default=25, help="503 on every Nth post request (0: never)")
    parser.add_argument("--drop-every", type=int, default=40, help="close the connection on every Nth (0: never)")
    parser.add_argument("--kill-after", type=float, default=0.0,
                        help="SIGKILL the daemon this many seconds after the last acknowledgement, then restart it")
    parser.add_argument("--deadline", type=float, default=400.0, help="give up waiting for replies after this")
    parser.add_argument("--model", default="", help="model directory (default: the daemon's)")
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(run(args)), ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
