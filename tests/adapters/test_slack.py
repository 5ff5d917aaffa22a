"""The Slack adapter end to end on 127.0.0.1: signed HTTP requests in, a fake Web API out."""
import asyncio
import json
import time
from urllib.parse import urlencode

import aiohttp
import pytest_asyncio
from slack_sdk.signature import SignatureVerifier

from adapters.slack import SlackAdapter
from bot.pipeline import Pipeline
from bot.store import Store
from bot.worker import InferenceWorker, WorkerConfig
from tests.fakes import EngineSwitch, FakeEngine, FakeSlackAPI, read_exchanges

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


@pytest_asyncio.fixture
async def env(tmp_path, tiny_responder):
    api = await FakeSlackAPI().start()
    engines = EngineSwitch(tiny_responder)
    worker = InferenceWorker("unused", WorkerConfig(), engine_factory=engines)
    await worker.start()
    store = await Store(tmp_path / "db.sqlite3").open()
    adapter = SlackAdapter(Pipeline(worker, store), bot_token="xoxb-secret-token", signing_secret=SECRET,
                           http_host="127.0.0.1", http_port=0, api_url=api.url)
    await adapter.start()
    async with aiohttp.ClientSession() as session:
        yield Env(adapter, api, store, session, engines)
    await adapter.stop()
    await worker.stop()
    await store.close()
    await api.stop()


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
