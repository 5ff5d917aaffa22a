"""The Discord adapter through discord.py's real objects and code paths (dpytest's fake backend)."""
import asyncio
import sqlite3
import sys
from types import SimpleNamespace

import discord
import discord.ext.test as dpytest
import pytest
import pytest_asyncio

from adapters.discord import DiscordAdapter
from bot.adapter import AdapterState
from bot.outbox import Delivery
from bot.pipeline import Pipeline
from bot.ratelimit import RateLimiter
from bot.store import Exchange, Store
from bot.worker import InferenceWorker, WorkerConfig
from tests.fakes import EngineSwitch, FakeEngine, read_exchanges


@pytest.fixture
def engines(tiny_responder):
    return EngineSwitch(tiny_responder)


@pytest_asyncio.fixture
async def env(tmp_path, engines):
    worker = InferenceWorker("unused", WorkerConfig(), engine_factory=engines)
    await worker.start()
    store = await Store(tmp_path / "db.sqlite3").open()
    adapter = DiscordAdapter(Pipeline(worker, store, RateLimiter(per_minute=1, burst=3)))
    # dpytest builds its guild members through GUILD_MEMBER_ADD, which discord.py only caches with the
    # (privileged) members intent; the bot itself does not need that intent, so only the test caches them.
    state = adapter.client._connection
    state._intents.members = True
    state.member_cache_flags = discord.MemberCacheFlags.from_intents(state._intents)
    await adapter.client._async_setup_hook()  # what login() does: binds the client to this loop
    dpytest.configure(adapter.client, members=2)
    dpytest.backend.get_state().loop = asyncio.get_running_loop()  # dpytest's state replaces the client's
    payloads = []
    http = adapter.client.http
    original = http.send_message

    async def spy(channel_id, *, params):
        payloads.append(params.payload)
        channel = sys._getframe(1).f_locals.get("channel")  # noqa: F841 - dpytest reads it from this frame
        return await original(channel_id, params=params)

    http.send_message = spy
    yield adapter, store, payloads
    await dpytest.empty_queue()
    await worker.stop()
    await store.close()


async def react(member, message, emoji):
    """A real MESSAGE_REACTION_ADD gateway payload through discord.py's own parser.

    (dpytest 0.7's payload lacks the `type` field discord.py 2.7 reads, so the test builds it.)
    """
    data = {"type": 0, "burst": False, "message_id": str(message.id), "channel_id": str(message.channel.id),
            "user_id": str(member.id), "guild_id": str(message.guild.id), "emoji": {"id": None, "name": emoji},
            "member": dpytest.factories.dict_from_member(member)}
    dpytest.backend.get_state().parse_message_reaction_add(data)
    await dpytest.run_all_events()


def cfg():
    c = dpytest.get_config()
    return c.guilds[0], c.channels[0], c.members[0], c.members[1]


async def test_mention_reply_strips_mention_and_never_pings(env, tiny_pairs):
    adapter, store, payloads = env
    _, channel, alice, _ = cfg()
    me = adapter.client.user
    await dpytest.message(f"<@{me.id}> {tiny_pairs[0].q}", channel=channel, member=alice)
    reply = dpytest.get_message()
    assert reply.content == tiny_pairs[0].a
    assert payloads[-1]["allowed_mentions"] == {"parse": [], "replied_user": False}
    assert payloads[-1]["message_reference"]["message_id"]
    await store.close()
    await store.open()
    rows = read_exchanges(store.path)
    assert rows[0]["text"] == tiny_pairs[0].q and rows[0]["platform"] == "discord"
    assert rows[0]["workspace"] == str(channel.guild.id) and rows[0]["reply_message_id"] == str(reply.id)


async def test_unaddressed_and_bot_messages_are_ignored(env):
    adapter, _, payloads = env
    _, channel, alice, _ = cfg()
    await dpytest.message("그냥 혼잣말", channel=channel, member=alice)
    assert dpytest.verify().message().nothing()
    await dpytest.message("내가 나에게", channel=channel, member=channel.guild.me)
    assert dpytest.verify().message().nothing()
    assert payloads == []


async def test_dm_reply(env, tiny_pairs):
    _, _, alice, _ = cfg()
    dm = await alice.create_dm()
    await dpytest.message(tiny_pairs[2].q, channel=dm, member=alice)
    assert dpytest.get_message().content == tiny_pairs[2].a


async def test_everyone_in_output_does_not_ping_and_long_reply_is_split(env, engines):
    adapter, _, payloads = env
    # An engine that echoes hostile or long text back (the tiny model is used elsewhere), put in by a reload.
    echo = engines.engine = FakeEngine(lambda text: text.removeprefix("echo "), version="echo-1")
    assert (await adapter.pipeline.worker.reload()).version == "echo-1"
    _, channel, alice, _ = cfg()
    me = adapter.client.user
    await dpytest.message(f"<@{me.id}> echo @everyone <@&123456789012345678> 모여", channel=channel, member=alice)
    msg = dpytest.get_message()
    assert "@everyone" not in msg.content and "<@&" not in msg.content
    assert payloads[-1]["allowed_mentions"]["parse"] == []
    await dpytest.message(f"<@{me.id}> echo " + "가나다 " * 130, channel=channel, member=alice)
    # normalization caps input at 500 characters; the echo engine doubles nothing, so force a long reply:
    echo.reply = lambda text: "긴답 " * 900
    await dpytest.message(f"<@{me.id}> 길게", channel=channel, member=alice)
    pieces = [dpytest.get_message() for _ in range(2)]
    while not dpytest.sent_queue.empty():
        pieces.append(dpytest.get_message())
    long_pieces = [p.content for p in pieces if p.content.startswith("긴답")]
    assert len(long_pieces) >= 2 and all(len(p) <= 2000 for p in long_pieces)


async def test_rate_limit(env, tiny_pairs):
    _, channel, alice, _ = cfg()
    dm = await alice.create_dm()
    for _ in range(3):
        await dpytest.message(tiny_pairs[0].q, channel=dm, member=alice)
        assert dpytest.get_message().content == tiny_pairs[0].a
    await dpytest.message(tiny_pairs[0].q, channel=dm, member=alice)
    assert "너무 빨라요" in dpytest.get_message().content


async def test_reaction_feedback_teach_and_forget(env, tiny_pairs):
    adapter, store, _ = env
    _, channel, alice, bob = cfg()
    me = adapter.client.user
    await dpytest.message(f"<@{me.id}> {tiny_pairs[3].q}", channel=channel, member=alice)
    reply = dpytest.get_message()
    await react(bob, reply, "👍")  # not bob's exchange: ignored
    await react(alice, reply, "👎")
    await dpytest.message(f"<@{me.id}> !teach 이렇게 답해 줘", channel=channel, member=alice)
    assert "배웠어요" in dpytest.get_message().content
    rows = await store.training_rows()
    assert [(r[3], r[2]) for r in rows] == [("bad", None), ("teach", "이렇게 답해 줘")]
    await dpytest.message(f"<@{me.id}> !forget", channel=channel, member=alice)
    assert "확인" in dpytest.get_message().content
    assert len(read_exchanges(store.path)) == 1  # nothing deleted before confirmation
    await dpytest.message(f"<@{me.id}> !forget 확인", channel=channel, member=alice)
    assert "1개" in dpytest.get_message().content
    assert read_exchanges(store.path) == [] and await store.training_rows() == []


async def test_overloaded_worker_gets_polite_message(env):
    adapter, _, _ = env
    await adapter.pipeline.worker.stop()
    _, channel, alice, _ = cfg()
    await dpytest.message(f"<@{adapter.client.user.id}> 안녕", channel=channel, member=alice)
    assert "바빠요" in dpytest.get_message().content


async def test_allow_list_keeps_bot_silent_elsewhere(env):
    adapter, _, _ = env
    adapter.pipeline.allow.channels = ("1",)  # the pipeline's allow-list step
    _, channel, alice, _ = cfg()
    await dpytest.message(f"<@{adapter.client.user.id}> 안녕", channel=channel, member=alice)
    assert dpytest.verify().message().nothing()


async def test_invalid_token_fails_clearly(tmp_path):
    adapter = DiscordAdapter(Pipeline(InferenceWorker("unused"), None), token="not-a-token")

    async def refuse(token):
        raise discord.LoginFailure("Improper token has been passed.")

    adapter.client.login = refuse
    with pytest.raises(RuntimeError, match="refused the token") as info:
        await adapter.start()
    assert "not-a-token" not in str(info.value)
    assert adapter.state is AdapterState.FAILED
    await adapter.stop()


class InteractionResponses:
    """Stands in for discord.py's webhook adapter (its own seam, a ContextVar): records responses."""

    def __init__(self):
        self.sent = []

    async def create_interaction_response(self, interaction_id, token, *, session, proxy=None, proxy_auth=None,
                                          params):
        self.sent.append(params.payload)
        return {"interaction": {"id": str(interaction_id), "type": 2, "response_message_id": None,
                                "response_message_loading": False, "response_message_ephemeral": True}}


async def slash(adapter, member, channel, name, options):
    """A real APPLICATION_COMMAND interaction payload dispatched through the CommandTree."""
    from discord.webhook.async_ import async_context

    responses = InteractionResponses()
    token = async_context.set(responses)
    data = {"id": "1100000000000000001", "application_id": str(adapter.client.user.id), "type": 2,
            "token": "interaction-token", "version": 1, "channel_id": str(channel.id),
            "channel": {"id": str(channel.id), "type": 0, "guild_id": str(channel.guild.id)},
            "guild_id": str(channel.guild.id), "locale": "ko", "guild_locale": "ko", "app_permissions": "0",
            "entitlements": [], "authorizing_integration_owners": {}, "context": 0, "attachment_size_limit": 8388608,
            "member": dpytest.factories.dict_from_member(member),
            "data": {"id": "1200000000000000001", "name": name, "type": 1, "options": options}}
    interaction = discord.Interaction(data=data, state=dpytest.backend.get_state())
    try:
        await adapter.tree._call(interaction)
    finally:
        async_context.reset(token)
    return responses.sent


async def test_slash_commands_teach_and_forget(env, tiny_pairs):
    adapter, store, _ = env
    _, channel, alice, _ = cfg()
    await dpytest.message(f"<@{adapter.client.user.id}> {tiny_pairs[4].q}", channel=channel, member=alice)
    dpytest.get_message()
    (resp,) = await slash(adapter, alice, channel, "teach", [{"name": "answer", "type": 3, "value": "슬래시 답"}])
    assert "배웠어요" in resp["data"]["content"] and resp["data"]["flags"] == 64  # ephemeral
    assert resp["data"]["allowed_mentions"]["parse"] == []
    assert (await store.training_rows())[-1][2:] == ("슬래시 답", "teach")
    (resp,) = await slash(adapter, alice, channel, "forget", [])
    assert "confirm" in resp["data"]["content"] and len(read_exchanges(store.path)) == 1
    (resp,) = await slash(adapter, alice, channel, "forget", [{"name": "confirm", "type": 5, "value": True}])
    assert "1개" in resp["data"]["content"] and read_exchanges(store.path) == []


async def test_admin_reload_command(env):
    adapter, _, _ = env
    _, channel, alice, bob = cfg()
    calls = []

    async def reload():
        calls.append(1)
        return "모델을 v2 버전으로 바꿨어요."

    adapter.pipeline.commands.on_reload, adapter.pipeline.commands.admins = reload, (str(alice.id),)
    me = adapter.client.user
    await dpytest.message(f"<@{me.id}> !reload", channel=channel, member=alice)
    assert dpytest.get_message().content == "모델을 v2 버전으로 바꿨어요."
    await dpytest.message(f"<@{me.id}> !reload", channel=channel, member=bob)  # not an admin: a normal message
    assert "v2" not in dpytest.get_message().content and calls == [1]


async def test_a_failed_send_is_retried_not_lost(env, engines):
    """A 503 after discord.py's own retries, then a timeout: the reply still goes out, once."""
    adapter, store, payloads = env
    adapter.pipeline.outbox.backoff_s = (0.01,)
    http, failures = adapter.client.http, [
        discord.DiscordServerError(SimpleNamespace(status=503, reason="Service Unavailable"), "upstream"),
        asyncio.TimeoutError()]
    spy = http.send_message

    async def flaky(channel_id, *, params):
        if failures:
            raise failures.pop(0)
        channel = sys._getframe(1).f_locals.get("channel")  # noqa: F841 - dpytest reads it from this frame
        return await spy(channel_id, params=params)

    http.send_message = flaky
    engines.engine = FakeEngine(lambda text: f"답: {text}", version="echo-2")
    await adapter.pipeline.worker.reload()
    _, channel, alice, _ = cfg()
    await dpytest.message(f"<@{adapter.client.user.id}> 살아 있니", channel=channel, member=alice)
    reply = dpytest.get_message()
    assert reply.content == "답: 살아 있니" and dpytest.verify().message().nothing()
    assert failures == [] and len(payloads) == 1
    await store.close()
    await store.open()
    with sqlite3.connect(store.path) as db:
        assert db.execute("SELECT status, message_id, attempts, last_error FROM outbox").fetchall() == [
            ("sent", str(reply.id), 3, "TimeoutError")]
    assert read_exchanges(store.path)[0]["reply_message_id"] == str(reply.id)


async def test_delivery_after_a_restart_replies_to_the_message_by_id(env):
    """Nothing of the original message is in memory after a restart: the channel and message ids suffice."""
    adapter, _, payloads = env
    _, channel, alice, _ = cfg()
    original = await channel.send("예전 질문")
    await dpytest.empty_queue()
    sent_id = await adapter.deliver(Delivery("discord", str(channel.id), None, str(original.id), "늦었지만 답"))
    reply = dpytest.get_message()
    assert reply.content == "늦었지만 답" and sent_id == str(reply.id)
    assert payloads[-1]["message_reference"]["message_id"] == original.id
    assert payloads[-1]["allowed_mentions"]["parse"] == []


async def test_replies_owed_from_before_a_restart_are_sent_by_the_next_start(env, engines):
    """A row the last run left pending (its reply written, or not even answered yet) goes out on start."""
    adapter, store, payloads = env
    engines.engine = FakeEngine(lambda text: f"답: {text}", version="echo-3")
    await adapter.pipeline.worker.reload()
    _, channel, alice, _ = cfg()
    asked, unanswered = await channel.send("예전 질문"), await channel.send("답 못 받은 질문")
    await dpytest.empty_queue()
    common = dict(platform="discord", user_id=str(alice.id), raw=None, workspace=str(channel.guild.id),
                  channel=str(channel.id), thread=None)
    owed = await store.outbox_accept(text="예전 질문", reply_to=str(asked.id), **common)
    await store.outbox_reply(owed, Exchange(platform="discord", user_id=str(alice.id), text="예전 질문",
                                            raw="예전 질문", reply="미리 만든 답", outcome="replied"))
    await store.outbox_accept(text=unanswered.content, reply_to=str(unanswered.id), **common)
    assert await adapter.pipeline.resume() == 2
    for _ in range(200):
        if adapter.pipeline.outbox.depth == 0:
            break
        await asyncio.sleep(0.02)
    replies = {dpytest.get_message().content for _ in range(2)}
    assert dpytest.verify().message().nothing()
    assert replies == {"미리 만든 답", "답: 답 못 받은 질문"}
    assert {p["message_reference"]["message_id"] for p in payloads[-2:]} == {asked.id, unanswered.id}
    assert adapter.pipeline.outbox.depth == 0
