"""Two `chatbot serve` replicas on one PostgreSQL, measured end to end; one JSON object on stdout.

Both replicas run as subprocesses (the shipped model unless --model) in Slack HTTP mode against a local
stand-in for Slack's Web API (tests/fakes.py FakeSlackAPI, no limits or faults: this measures the
daemons, not Slack's pacing), each with its own bot token so the fake tells their posts apart. Three
rounds of `--mentions` signed mentions, each sent at once: to replica a alone, to replica b alone, then
every mention delivered to both, half first to a and half first to b, the second delivery once the first
was acknowledged (a load balancer's choice, then Slack's redelivery to the other replica). Replies per second =
replies / (last reply - first mention sent). Target: every mention of the last round answered exactly
once, and its replies/s at least 0.8x the sum of the two single rounds (on a machine whose cores the
replicas share, a single replica already uses them all; the point is that replicas do not wait for
each other). `--pin` gives each replica a core of its own in every round, as two machines would, so the
sum of the single rounds is what the two replicas can do together at most.

Run from the repository root: `python -m scripts.replica_bench [--db postgresql://...]` (without --db a
throwaway PostgreSQL is started as the tests do, from Debian's server binaries).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import tempfile
import time
from pathlib import Path

from scripts.delivery_bench import SECRET, Daemon, free_port, questions

REPO = Path(__file__).resolve().parents[1]


def signed(n: int, channel: str, user: str, text: str) -> tuple[str, bytes, dict]:
    from slack_sdk.signature import SignatureVerifier

    thread = f"{1700000000 + n}.000100"
    body = json.dumps({"type": "event_callback", "team_id": "T1", "event_id": f"EvRep{n}",
                       "event": {"type": "app_mention", "user": user, "text": f"<@UBOT> {text}",
                                 "ts": thread, "channel": channel}}, ensure_ascii=False)
    ts = str(int(time.time()))
    return thread, body.encode(), {
        "Content-Type": "application/json", "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": SignatureVerifier(SECRET).generate_signature(timestamp=ts, body=body)}


async def round_(session, api, ports: list[int], first: int, n: int, channels: int, texts: list[str],
                 deadline: float) -> dict:
    """`n` mentions numbered from `first`, each posted to every port in `ports` (with two: alternately to a then
    b and to b then a, each delivery after the previous one was acknowledged, as a load balancer and then
    Slack's redelivery would; the mentions at once); waits for the replies."""
    threads: set[str] = set()
    statuses: list[int] = []

    async def mention(i: int) -> None:
        thread, body, headers = signed(first + i, f"C{i % channels:02d}", f"U{i % 97:03d}", texts[i])
        threads.add(thread)
        for port in (ports if i % 2 == 0 else ports[::-1]):
            statuses.append(await post(session, port, body, headers))

    start = time.time()
    await asyncio.gather(*(mention(i) for i in range(n)))
    acked = time.time()
    stop_at = time.monotonic() + deadline
    while time.monotonic() < stop_at and not threads <= {p["thread_ts"] for p in api.posts}:
        await asyncio.sleep(0.2)
    await asyncio.sleep(2)  # a second answer, were one coming, shows now
    mine = [p for p in api.posts if p["thread_ts"] in threads]
    per_thread: dict[str, int] = {}
    for p in mine:
        per_thread[p["thread_ts"]] = per_thread.get(p["thread_ts"], 0) + 1
    last = max((p["at"] for p in mine), default=start)
    answered = len(per_thread)
    return {"mentions": n, "deliveries_per_mention": len(ports), "acknowledged_200": statuses.count(200),
            "answered": answered, "answered_twice": sum(c > 1 for c in per_thread.values()),
            "by_replica": {name: sum(p["auth"].endswith(name) for p in mine) for name in ("-a", "-b")},
            "busy_replies": sum("바빠요" in p["text"] for p in mine),
            "ack_all_s": round(acked - start, 2), "last_reply_s": round(last - start, 2),
            "replies_per_s": round(answered / max(last - start, 1e-9), 2)}


async def post(session, port: int, body: bytes, headers: dict) -> int:
    try:
        async with session.post(f"http://127.0.0.1:{port}/slack/events", data=body, headers=headers) as r:
            return r.status
    except Exception:
        return 0


async def run(args, db_url: str) -> dict:
    import aiohttp

    from tests.fakes import FakeSlackAPI

    api = await FakeSlackAPI().start()
    work = Path(tempfile.mkdtemp(prefix="replica-bench-"))
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CHATBOT_", "SLACK_", "DISCORD_"))}
    base.update(CHATBOT_DB=db_url, CHATBOT_MODEL_WATCH_S="0", CHATBOT_RATE_PER_MINUTE="0",
                CHATBOT_QUEUE_SIZE=str(max(256, 2 * args.mentions)), SLACK_SIGNING_SECRET=SECRET,
                SLACK_API_URL=api.url, TF_CPP_MIN_LOG_LEVEL="3")
    if args.model:
        base["CHATBOT_MODEL_DIR"] = args.model
    replicas = {}
    cores = sorted(os.sched_getaffinity(0))
    for k, name in enumerate(("a", "b")):
        http_port, slack_port = free_port(), free_port()
        env = {**base, "CHATBOT_HTTP_PORT": str(http_port), "SLACK_HTTP_PORT": str(slack_port),
               "SLACK_BOT_TOKEN": f"xoxb-replica-{name}"}
        cpus = {cores[k % len(cores)]} if args.pin else None
        replicas[name] = (Daemon(env, work / f"replica-{name}.log", cpus), http_port, slack_port)
    texts = questions(args.mentions)
    result: dict = {"mentions_per_round": args.mentions, "channels": args.channels, "cpus": os.cpu_count(),
                    "pinned": {name: sorted(d.cpus) for name, (d, _, _) in replicas.items()} if args.pin else None}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        started = time.monotonic()
        for daemon, _, _ in replicas.values():
            daemon.start()
        for daemon, http_port, _ in replicas.values():
            await daemon.ready(session, http_port)
        result["start_both_s"] = round(time.monotonic() - started, 1)
        a_port, b_port = replicas["a"][2], replicas["b"][2]
        result["a_alone"] = await round_(session, api, [a_port], 0, args.mentions, args.channels, texts,
                                         args.deadline)
        result["b_alone"] = await round_(session, api, [b_port], args.mentions, args.mentions, args.channels, texts,
                                         args.deadline)
        result["both"] = await round_(session, api, [a_port, b_port], 2 * args.mentions, args.mentions,
                                      args.channels, texts, args.deadline)
    for daemon, _, _ in replicas.values():
        daemon.proc.send_signal(signal.SIGTERM)
    result["exit_codes"] = [daemon.proc.wait(30) for daemon, _, _ in replicas.values()]
    await api.stop()
    single_sum = result["a_alone"]["replies_per_s"] + result["b_alone"]["replies_per_s"]
    result["both_vs_sum_of_singles"] = round(result["both"]["replies_per_s"] / single_sum, 2) if single_sum else None
    result["both_vs_best_single"] = round(result["both"]["replies_per_s"] / max(
        result["a_alone"]["replies_per_s"], result["b_alone"]["replies_per_s"]), 2) if single_sum else None
    result["logs"] = str(work)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.replica_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="", help="postgresql:// URL (default: a throwaway server)")
    parser.add_argument("--mentions", type=int, default=500)
    parser.add_argument("--channels", type=int, default=10)
    parser.add_argument("--deadline", type=float, default=600.0, help="give up waiting for a round's replies")
    parser.add_argument("--model", default="", help="model directory (default: the daemon's)")
    parser.add_argument("--pin", action="store_true",
                        help="run each replica on a core of its own (a on the first, b on the second), as on two "
                             "machines: a single round then measures one core's worth, and the joint round shows "
                             "whether the replicas wait for each other rather than that they share the cores")
    args = parser.parse_args(argv)
    server = None
    db_url = args.db
    if not db_url:
        from tests.postgres import Postgres

        server = Postgres()
        why = server.why_unavailable()
        if why:
            parser.error(f"no --db and no throwaway PostgreSQL: {why}")
        db_url = asyncio.run(_fresh(server))
    try:
        print(json.dumps(asyncio.run(run(args, db_url)), ensure_ascii=False, indent=1))
    finally:
        if server is not None:
            server.stop()
    return 0


async def _fresh(server) -> str:
    server.start()
    return await server.database()


if __name__ == "__main__":
    raise SystemExit(main())
