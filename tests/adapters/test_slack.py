"""The Slack adapter end to end on 127.0.0.1: signed HTTP requests in, a fake Web API out."""
import asyncio
import contextlib
import json
import sqlite3
import time
from urllib.parse import urlencode

import aiohttp
import pytest_asyncio
from slack_sdk.signature import SignatureVerifier

from adapters.slack import SlackAdapter
from bot.metrics import Metrics
from bot.pipeline import Pipeline
from bot.store import Store
from bot.worker import InferenceWorker, WorkerConfig
from tests.fakes import EngineSwitch, FakeEngine, FakeSlackAPI, read_exchanges, stop_slack

SECRET = "test-signing-secret"


class Env:
    def __init__(self, adapter, api, store, session, engines):
        self.adapter, self.api, self.store, self.session, self.engines = adapter, api, store, session, engines
        self.url = f"http://127.0.0.1:{adapter.http_port}/slack/events"
        self.n = 0

    async def post(self, body: str, content_type="application/json", timestamp=None, signature=None, headers=None):
        ts = str(int(time.time()) if timestamp is None else timestamp)
        sig = signature or SignatureVerifier(SECRET).generate_signature(timestamp=ts, body=body)
        hdrs = {"Content-Type": content_type, "X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sig,
                **(headers or {})}
        async with self.session.post(self.url, data=body.encode(), headers=hdrs) as resp:
            return resp.status

    async def event(self, event: dict, event_id=None, **kw) -> int:
        self.n += 1
        body = {"token": "x", "team_id": "T1", "api_app_id": "A1", "type": "event_callback",
                "event_id": event_id or f"Ev{self.n:04d}", "event_time": int(time.time()), "event": event}
        return await self.post(json.dumps(body, ensure_ascii=False), **kw)

    async def command(self, name: str, text: str, user="U1", channel="C1") -> str:
        """The slash command's immediate (ephemeral) answer."""
        body = urlencode({"command": name, "text": text, "user_id": user, "channel_id": channel, "team_id": "T1",
                          "response_url": "http://127.0.0.1:9/unused", "trigger_id": "t"})
        ts = str(int(time.time()))
        sig = SignatureVerifier(SECRET).generate_signature(timestamp=ts, body=body)
        async with self.session.post(self.url, data=body, headers={
                "Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": ts,
                "X-Slack-Signature": sig}) as resp:
            assert resp.status == 200
            return await resp.text()


def mention(text: str, ts: str, user="U1", channel="C1", **extra) -> dict:
    return {"type": "app_mention", "user": user, "text": f"<@UBOT> {text}", "ts": ts, "channel": channel, **extra}


@contextlib.asynccontextmanager
async def slack_env(tmp_path, engine, api: FakeSlackAPI, metrics: Metrics | None = None):
    """The real bolt app in HTTP mode on 127.0.0.1, posting to `api`, with a store and a worker."""
    engines = EngineSwitch(engine)
    worker = InferenceWorker("unused", WorkerConfig(), engine_factory=engines)
    await worker.start()
    store = await Store(tmp_path / "db.sqlite3").open()
    adapter = SlackAdapter(Pipeline(worker, store, metrics=metrics), bot_token="xoxb-secret-token",
                           signing_secret=SECRET, http_host="127.0.0.1", http_port=0, api_url=api.url)
    await adapter.start()
    try:
        async with aiohttp.ClientSession() as session:
            yield Env(adapter, api, store, session, engines)
    finally:
        await stop_slack(adapter, worker, store, api)


@pytest_asyncio.fixture
async def env(tmp_path, tiny_responder):
    async with slack_env(tmp_path, tiny_responder, await FakeSlackAPI().start()) as env:
        yield env


async def test_mention_reply_in_thread_and_logged(env, tiny_pairs):
    assert await env.event(mention(tiny_pairs[0].q, "111.000")) == 200
    (post,) = await env.api.wait_posts(1)
    assert post["text"] == tiny_pairs[0].a and post["thread_ts"] == "111.000" and post["channel"] == "C1"
    assert post["auth"] == "Bearer xoxb-secret-token"
    assert "auth.test" in env.api.calls
    await asyncio.sleep(0.2)
    rows = read_exchanges(env.store.path)
    assert rows[0]["platform"] == "slack" and rows[0]["text"] == tiny_pairs[0].q and rows[0]["workspace"] == "T1"
    assert rows[0]["thread"] == "111.000" and rows[0]["reply_message_id"] == post["ts"]


async def test_dm_reply_and_ignored_subtypes(env, tiny_pairs):
    base = {"type": "message", "channel": "D1", "channel_type": "im", "user": "U2"}
    assert await env.event({**base, "text": "봇이 보낸 글", "ts": "1.0", "bot_id": "B9"}) == 200
    assert await env.event({**base, "text": "고친 글", "ts": "2.0", "subtype": "message_changed"}) == 200
    assert await env.event({**base, "text": "입장", "ts": "3.0", "subtype": "channel_join"}) == 200
    assert await env.event({**base, "text": "채널 글", "ts": "4.0", "channel_type": "channel"}) == 200
    assert await env.event({**base, "text": tiny_pairs[1].q, "ts": "5.0"}) == 200
    posts = await env.api.wait_posts(1)
    await asyncio.sleep(0.5)
    assert len(env.api.posts) == 1 and posts[0]["text"] == tiny_pairs[1].a and posts[0]["channel"] == "D1"


async def test_bad_signatures_are_refused(env, tiny_pairs):
    body = json.dumps({"type": "event_callback", "event_id": "EvBad", "event": mention("안녕", "9.0")})
    assert await env.post(body, signature="v0=" + "0" * 64) == 401
    assert await env.post(body, timestamp=int(time.time()) - 600) == 401
    async with env.session.post(env.url, data=body, headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == 401
    await asyncio.sleep(0.5)
    assert env.api.posts == []


async def test_retried_and_concurrent_duplicates_reply_once(env, tiny_pairs):
    event = mention(tiny_pairs[2].q, "222.000")
    codes = await asyncio.gather(
        env.event(event, event_id="EvDup"),
        env.event(event, event_id="EvDup", headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}),
        env.event(event, event_id="EvDup"))
    assert codes == [200, 200, 200]
    await env.api.wait_posts(1)
    await asyncio.sleep(0.5)
    assert len(env.api.posts) == 1


async def test_broadcast_text_is_escaped(env):
    hostile = "<!channel> <!here> <!everyone> <@U123> <!subteam^S1> @everyone a<b>c & 끝"
    env.engines.engine = FakeEngine(lambda _: hostile, version="echo")
    assert (await env.adapter.pipeline.worker.reload()).version == "echo"
    await env.event(mention("아무거나", "333.000"))
    (post,) = await env.api.wait_posts(1)
    text = post["text"]
    assert "<" not in text and ">" not in text and "@everyone" not in text
    assert "&lt;" in text and "&amp;" in text and post["link_names"] in ("0", "false", False)


async def test_reactions_and_slash_commands(env, tiny_pairs):
    await env.event(mention(tiny_pairs[3].q, "444.000"))
    (post,) = await env.api.wait_posts(1)
    await env.event({"type": "reaction_added", "user": "U9", "reaction": "+1",
                     "item": {"type": "message", "channel": "C1", "ts": post["ts"]}})  # not U9's exchange
    await env.event({"type": "reaction_added", "user": "U1", "reaction": "+1::skin-tone-2",
                     "item": {"type": "message", "channel": "C1", "ts": post["ts"]}})
    assert "사용법" in await env.command("/teach", "")
    assert "배웠어요" in await env.command("/teach", "이렇게 답해 줘")
    await asyncio.sleep(0.3)
    rows = await env.store.training_rows()
    assert [(r[3], r[2]) for r in rows] == [("good", None), ("teach", "이렇게 답해 줘")]
    assert "확인" in await env.command("/forget", "")
    assert len(read_exchanges(env.store.path)) == 1
    assert "1개" in await env.command("/forget", "확인")
    assert read_exchanges(env.store.path) == []


async def test_overloaded_worker_answers_politely(env):
    await env.adapter.pipeline.worker.stop()
    await env.event(mention("안녕", "555.000"))
    (post,) = await env.api.wait_posts(1)
    assert "바빠요" in post["text"] and post["thread_ts"] == "555.000"


async def test_every_mention_answered_once_in_its_thread_under_429_503_and_dropped_connections(tmp_path, caplog):
    """Slack at its worst, small: 1 post per 0.25 s per channel with bursts of 2 (then 429 with Retry-After),
    a 503 on every 5th post request, the connection closed without an answer on every 7th."""
    caplog.set_level("INFO")
    api = await FakeSlackAPI(rate=4, burst=2, fail_every=5, drop_every=7, retry_after=0).start()
    metrics = Metrics()
    async with slack_env(tmp_path, FakeEngine(lambda text: f"답: {text}"), api, metrics) as env:
        events = [mention(f"질문 {i}", f"{i}.000", user=f"U{i}", channel=f"C{i % 3}") for i in range(15)]
        assert await asyncio.gather(*(env.event(e) for e in events)) == [200] * 15
        await api.wait_posts(15, timeout=60)
        await asyncio.sleep(0.5)  # nothing more comes
        assert env.adapter.pipeline.outbox.depth == 0
    by_thread = {}
    for post in api.posts:
        by_thread.setdefault(post["thread_ts"], []).append((post["channel"], post["text"]))
    assert by_thread == {f"{i}.000": [(f"C{i % 3}", f"답: 질문 {i}")] for i in range(15)}  # once each, in its thread
    assert api.limited and api.failed and api.dropped
    for reason in ("ratelimited", "service_unavailable", "ServerDisconnectedError"):
        assert metrics.value("chatbot_delivery_retries_total", platform="slack", reason=reason) > 0, reason
        assert reason in caplog.text
    with sqlite3.connect(tmp_path / "db.sqlite3") as db:
        assert db.execute("SELECT status, count(*) FROM outbox GROUP BY status").fetchall() == [("sent", 15)]
    rows = read_exchanges(tmp_path / "db.sqlite3")
    assert sorted(r["reply_message_id"] for r in rows) == sorted(p["ts"] for p in api.posts)


async def test_a_post_that_keeps_failing_is_retried_by_the_outbox_and_errors_are_named(tmp_path, caplog):
    api = await FakeSlackAPI(fail_every=1, missing=("C404",)).start()  # every post 503, beyond slack_sdk's retries
    metrics = Metrics()
    async with slack_env(tmp_path, FakeEngine(lambda text: "답"), api, metrics) as env:
        env.adapter.pipeline.outbox.backoff_s = (0.05,)
        await env.event(mention("안녕", "7.000"))
        for _ in range(400):
            if metrics.value("chatbot_delivery_failures_total", platform="slack", reason="service_unavailable"):
                break
            await asyncio.sleep(0.05)
        api.fail_every = 0  # Slack is back
        (post,) = await api.wait_posts(1)
        assert post["thread_ts"] == "7.000"
        await env.event(mention("없는 채널", "8.000", channel="C404"))  # refused for good: not retried
        for _ in range(100):
            if metrics.value("chatbot_delivery_failures_total", platform="slack", reason="channel_not_found"):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
    assert metrics.value("chatbot_delivery_failures_total", platform="slack", reason="channel_not_found") == 1
    with sqlite3.connect(tmp_path / "db.sqlite3") as db:
        assert db.execute("SELECT channel, status FROM outbox ORDER BY id").fetchall() == [
            ("C1", "sent"), ("C404", "failed")]
    assert "could not post in C1: service_unavailable" in caplog.text
    assert "could not post in C404: channel_not_found; gave up (failed)" in caplog.text
    assert not any(r.getMessage().rstrip().endswith(":") for r in caplog.records)  # never an empty reason
