"""Two `chatbot serve` replicas on one PostgreSQL in Slack HTTP mode: every event delivered to both (as
Slack's redelivery to another replica behind a load balancer would) is answered exactly once; one replica
killed with kill -9 mid-burst leaves the other answering what it receives and the database intact."""
import asyncio
import subprocess
import sys

import aiohttp
import asyncpg
import pytest

from tests.conftest import REPO
from tests.fakes import FakeSlackAPI
from tests.test_serve import SECRET, base_env, free_port, signed_mention, wait_health

pytestmark = pytest.mark.slow
CHANNELS = 4


class Replica:
    def __init__(self, name: str, env: dict, logs) -> None:
        self.logs = logs / f"replica-{name}.log"
        self.name, self.http_port, self.slack_port = name, free_port(), free_port()
        self.env = {**env, "CHATBOT_HTTP_PORT": str(self.http_port), "SLACK_HTTP_PORT": str(self.slack_port),
                    "SLACK_BOT_TOKEN": f"xoxb-replica-{name}"}  # the fake Web API tells the replicas apart
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "chatbot", "serve", cwd=REPO,
                                                         env=self.env, stdin=subprocess.DEVNULL,
                                                         stderr=self.logs.open("ab"))

    async def deliver(self, session: aiohttp.ClientSession, body: bytes, headers: dict) -> int | None:
        """Slack's POST of one event; None when the replica is gone (a connection refused)."""
        try:
            async with session.post(f"http://127.0.0.1:{self.slack_port}/slack/events", data=body,
                                    headers=headers) as resp:
                return resp.status
        except aiohttp.ClientError:
            return None


def answered_by(posts: list[dict]) -> dict[str, list[str]]:
    """thread ts -> which replica posted each reply in it."""
    out: dict[str, list[str]] = {}
    for p in posts:
        out.setdefault(p["thread_ts"], []).append(p["auth"].rsplit("-", 1)[-1])
    return out


async def deliver_to_both(session, replicas, i, text) -> list[int | None]:
    body, headers = signed_mention(i, f"C{i % CHANNELS}", text)
    return list(await asyncio.gather(*(r.deliver(session, body, headers) for r in replicas)))


async def test_two_replicas_answer_each_event_once_and_survive_a_kill_9(
        tmp_path, tiny_model_dir, tiny_pairs, postgres_url):
    api = await FakeSlackAPI().start()
    env = base_env(tmp_path, tiny_model_dir, CHATBOT_DB=postgres_url, SLACK_SIGNING_SECRET=SECRET,
                   SLACK_API_URL=api.url, CHATBOT_RATE_PER_MINUTE="0", CHATBOT_MODEL_WATCH_S="0")
    a, b = Replica("a", env, tmp_path), Replica("b", env, tmp_path)
    questions = [p.q for p in tiny_pairs]
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(a.start(), b.start())  # both migrate the empty database at once
        for r in (a, b):
            assert (await wait_health(session, r.http_port, lambda s, body: s == 200))[0] == 200, r.name

        # 1. Every event to both replicas at the same moment: one answer each, by whichever owned it.
        first = 40
        for i in range(first):
            assert await deliver_to_both(session, (a, b), i, questions[i % len(questions)]) == [200, 200]
        await api.wait_posts(first, timeout=120)
        await asyncio.sleep(1)  # room for a second answer, were one coming
        by_thread = answered_by(api.posts)
        assert sorted(by_thread) == sorted(f"{i}.0" for i in range(first))
        assert all(len(who) == 1 for who in by_thread.values()), by_thread
        shares = {name: sum(who == [name] for who in by_thread.values()) for name in "ab"}
        assert shares["a"] + shares["b"] == first

        # 2. A burst; replica a is killed with kill -9 in the middle of it. Events still reach both.
        burst, kill_at = 60, 20
        acked_by_b = set()
        for i in range(first, first + burst):
            if i == first + kill_at:
                a.proc.kill()
                await a.proc.wait()
            statuses = await deliver_to_both(session, (a, b), i, questions[i % len(questions)])
            assert statuses[1] == 200 and (statuses[0] == 200 if i < first + kill_at else statuses[0] is None)
            acked_by_b.add(f"{i}.0")
        after_kill = {f"{i}.0" for i in range(first + kill_at, first + burst)}
        await wait_health(session, b.http_port, lambda s, body: s == 200 and body["outbox_pending"] == 0, 600)
        by_thread = answered_by(api.posts)
        assert after_kill <= set(by_thread)  # b answers everything it received once a was gone
        assert all(who == ["b"] for t, who in by_thread.items() if t in after_kill)
        assert all(len(who) == 1 for who in by_thread.values()), by_thread  # nothing answered twice

        # The database is intact: one processed event and one outbox row per event, each sent or still
        # owed by the killed replica (pending), every sent row with its exchange and the platform's id.
        con = await asyncpg.connect(postgres_url)
        try:
            events = await con.fetchval("SELECT count(*) FROM processed_events")
            rows = await con.fetch("SELECT thread, status, message_id, exchange_id FROM outbox")
            exchanges = await con.fetchval("SELECT count(*) FROM exchanges WHERE reply_message_id IS NOT NULL")
        finally:
            await con.close()
        total = first + burst
        assert events == total and len(rows) == total and len({r["thread"] for r in rows}) == total
        assert {r["status"] for r in rows} <= {"sent", "pending"}
        sent = [r for r in rows if r["status"] == "sent"]
        assert all(r["message_id"] and r["exchange_id"] for r in sent) and exchanges == len(sent)
        owed = {r["thread"] for r in rows if r["status"] == "pending"}
        assert owed.isdisjoint(after_kill) and owed | set(by_thread) == {r["thread"] for r in rows}

        # 3. The killed replica starts again on the same database and sends what it owed.
        await a.start()
        await wait_health(session, a.http_port, lambda s, body: s == 200 and body["outbox_pending"] == 0, 600)
        for r in (a, b):
            r.proc.terminate()
        codes = await asyncio.gather(*(asyncio.wait_for(r.proc.wait(), 15) for r in (a, b)))
    await api.stop()
    assert codes == [0, 0]
    by_thread = answered_by(api.posts)
    assert sorted(by_thread) == sorted(f"{i}.0" for i in range(total))  # every mention answered
    twice = [t for t, who in by_thread.items() if len(who) > 1]
    assert len(twice) <= CHANNELS, twice  # at most a post in flight per channel at the kill
