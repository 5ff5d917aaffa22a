"""Slack Socket Mode with two replicas on one PostgreSQL: Slack may deliver an event over any of an app's
connections and sends an unacknowledged one again, maybe over another. Two SlackAdapters in this process
(the real bolt app and slack_sdk's Socket Mode client each, their own pipeline, store and replica id)
connect to a local fake Socket Mode server; every event goes down both connections: each envelope is
acknowledged, each event answered once. (Two adapters in one process rather than two `chatbot serve`
processes: the same code path from the WebSocket to the shared database, without two model loads.)"""
import asyncio
import time

import asyncpg

from adapters.slack import SlackAdapter
from bot.pipeline import Pipeline
from bot.store import make_store
from bot.worker import InferenceWorker, WorkerConfig
from tests.adapters.test_slack import mention
from tests.fakes import FakeEngine, FakeSlackAPI, FakeSocketMode

EVENTS = 30


def envelope(i: int, attempt: int = 0) -> dict:
    """Slack's `events_api` envelope of mention `i`; `attempt` > 0: the same event sent again."""
    body = {"token": "x", "team_id": "T1", "api_app_id": "A1", "type": "event_callback", "event_id": f"Ev{i:04d}",
            "event_time": int(time.time()), "event": mention(f"질문 {i}", f"{i}.0", channel=f"C{i % 3}")}
    return {"envelope_id": f"env-{i}-{attempt}", "type": "events_api", "accepts_response_payload": False,
            "retry_attempt": attempt, "retry_reason": "timeout" if attempt else "", "payload": body}


class Replica:
    def __init__(self, name: str) -> None:
        self.name = name

    async def start(self, db: str, api: FakeSlackAPI) -> None:
        self.worker = InferenceWorker("unused", WorkerConfig(), engine_factory=lambda _: FakeEngine(lambda t: f"{t}?"))
        await self.worker.start()
        self.store = await make_store(db, replica_id=self.name).open()
        await self.store.replica_heartbeat(60)
        self.adapter = SlackAdapter(Pipeline(self.worker, self.store), bot_token=f"xoxb-{self.name}",
                                    app_token=f"xapp-{self.name}", api_url=api.url)
        await self.adapter.start()

    async def stop(self) -> None:
        await self.adapter.stop()
        await self.adapter.pipeline.outbox.close()
        await self.worker.stop()
        await self.store.close()


async def test_socket_mode_replicas_acknowledge_every_envelope_and_answer_each_event_once(postgres_url):
    api, socket = await FakeSlackAPI().start(), await FakeSocketMode().start()
    api.socket_url = socket.url
    replicas = [Replica("a"), Replica("b")]
    try:
        for n, replica in enumerate(replicas, 1):  # connection 0 is a's, 1 is b's
            await replica.start(postgres_url, api)
            await socket.wait(lambda n=n: len(socket.connections) == n)
        assert all(r.adapter.mode == "socket" for r in replicas)
        for i in range(EVENTS):  # each event down both connections at once: first delivery and its redelivery
            await asyncio.gather(socket.send(0, envelope(i)), socket.send(1, envelope(i, 1)))
        await socket.wait(lambda: len(socket.acks) == 2 * EVENTS)
        await api.wait_posts(EVENTS, timeout=20)
        for i in range(5):  # sent again once answered (an acknowledgement Slack did not get): dropped
            await socket.send(i % 2, envelope(i, 2))
        await socket.wait(lambda: len(socket.acks) == 2 * EVENTS + 5)
        await asyncio.sleep(0.5)  # room for a second answer, were one coming
    finally:
        for replica in replicas:
            await replica.stop()
        await socket.stop()
        await api.stop()
    acked = sorted(socket.acks)
    assert acked == sorted([(0, f"env-{i}-0") for i in range(EVENTS)] + [(1, f"env-{i}-1") for i in range(EVENTS)]
                           + [(i % 2, f"env-{i}-2") for i in range(5)])  # every envelope, on its connection
    threads = sorted(p["thread_ts"] for p in api.posts)
    assert threads == sorted(f"{i}.0" for i in range(EVENTS))  # each event answered once
    by = {p["thread_ts"]: p["auth"].rsplit("-", 1)[-1] for p in api.posts}
    con = await asyncpg.connect(postgres_url)
    try:
        rows = await con.fetch("SELECT thread, owner, status FROM outbox")
        events = await con.fetchval("SELECT count(*) FROM processed_events")
    finally:
        await con.close()
    assert events == EVENTS and len(rows) == EVENTS
    assert all(r["status"] == "sent" and r["owner"] == by[r["thread"]] for r in rows)  # sent by the replica owning it
