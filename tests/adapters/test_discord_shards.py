"""Discord sharding: the settings reach discord.py's AutoShardedClient, its shards connect and answer, /healthz
lists them. dpytest 0.7 refuses sharded clients, so the daemon's real client runs against a local Discord
(tests/discord_fake.py: REST + gateway) and every message is a real MESSAGE_CREATE on the owning shard."""
import asyncio

import aiohttp
import discord
import pytest
import pytest_asyncio

from adapters.discord import DiscordAdapter
from bot.adapter import AdapterState, details
from bot.daemon import Daemon
from bot.pipeline import Pipeline
from bot.settings import load_settings
from bot.worker import InferenceWorker
from chatbot.serve import build_adapters
from tests.discord_fake import BOT, FakeDiscord, user
from tests.fakes import EngineSwitch, read_exchanges
from tests.test_serve import free_port

GUILDS = [(k << 22) + 7 for k in range(8)]  # Discord routes guild k to shard k % shard_count
ALICE = user(800000000000000001)


def settings_for(tmp_path, **env):
    return load_settings(env={"DISCORD_TOKEN": "fake-token", "CHATBOT_DB": str(tmp_path / "db.sqlite3"),
                              "CHATBOT_HTTP_PORT": str(free_port()), "CHATBOT_MODEL_WATCH_S": "0", **env})


@pytest_asyncio.fixture
async def discord_api(monkeypatch):
    fake = await FakeDiscord(GUILDS).start()
    fake.use(monkeypatch)
    yield fake
    await fake.stop()


@pytest_asyncio.fixture
async def serve(tmp_path, tiny_responder):
    """`chatbot serve`'s daemon and adapters (chatbot.serve.build_adapters) with the tiny model, until stopped."""
    runs = []

    async def start(settings):
        daemon, built = Daemon(settings, engine_factory=EngineSwitch(tiny_responder)), []

        def build(pipeline):
            built.extend(build_adapters(settings, pipeline))
            built[0].client._connection.guild_ready_timeout = 0.1  # the fake sends every GUILD_CREATE at once
            return built
        runs.append((daemon, asyncio.create_task(daemon.run(build))))
        for _ in range(1500):
            if built and built[0].state is AdapterState.RUNNING:
                return daemon, built[0]
            await asyncio.sleep(0.02)
        raise AssertionError(f"the Discord adapter never became ready: {built and built[0].state}")
    yield start
    for daemon, task in runs:
        daemon.stopping.set()
        assert await asyncio.wait_for(task, 15) == 0


async def healthz(settings) -> dict:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{settings.http_port}/healthz") as resp:
            assert resp.status == 200
            return await resp.json()


async def ask(fake, guild_id: int, text: str) -> tuple[int, dict]:
    before = len(fake.sent)
    msg_id = await fake.message(guild_id, ALICE, f"<@{BOT['id']}> {text}")
    sent = await fake.replies(before + 1)
    assert len(sent) == before + 1, "no reply"
    return msg_id, sent[-1]


async def test_settings_make_an_auto_sharded_client_and_no_sharding_a_plain_one(tmp_path):
    pipeline = Pipeline(InferenceWorker("unused"), None)
    (plain,) = build_adapters(settings_for(tmp_path), pipeline)
    assert type(plain.client) is discord.Client and plain.client.shard_count is None
    assert details(plain) is None  # /healthz unchanged without sharding
    (sharded,) = build_adapters(settings_for(tmp_path, CHATBOT_SHARD_COUNT="4", CHATBOT_SHARD_IDS="2,3"), pipeline)
    client = sharded.client
    assert isinstance(client, discord.AutoShardedClient)
    assert client.shard_count == 4 and client.shard_ids == [2, 3]
    assert isinstance(client._connection, discord.state.AutoShardedConnectionState)
    assert client._connection.allowed_mentions.to_dict() == {"parse": []}  # still never pings
    assert details(sharded) == {"shard_count": 4, "shards": [
        {"id": 2, "state": "connecting", "latency_ms": None, "guilds": 0},
        {"id": 3, "state": "connecting", "latency_ms": None, "guilds": 0}]}
    every = DiscordAdapter(pipeline, "t", shard_count=2).client  # no ids: discord.py runs 0..count-1
    assert isinstance(every, discord.AutoShardedClient) and every.shard_count == 2 and every.shard_ids is None
    for adapter in (plain, sharded):
        await adapter.stop()


async def test_two_of_four_shards_connect_answer_their_guilds_and_show_in_healthz(tmp_path, discord_api, serve,
                                                                                  tiny_pairs):
    settings = settings_for(tmp_path, CHATBOT_SHARD_COUNT="4", CHATBOT_SHARD_IDS="1,3")
    daemon, adapter = await serve(settings)
    assert sorted(discord_api.identified) == [[1, 4], [3, 4]]  # IDENTIFY carried [shard_id, shard_count]
    assert sorted(g.id for g in adapter.client.guilds) == [g for g in GUILDS if (g >> 22) % 4 in (1, 3)]
    health = await healthz(settings)
    assert health["adapters"] == {"discord": "running"}
    shards = health["adapter_details"]["discord"]
    assert shards["shard_count"] == 4
    assert [(s["id"], s["state"], s["guilds"]) for s in shards["shards"]] == [(1, "ready", 2), (3, "ready", 2)]
    assert all(isinstance(s["latency_ms"], float) and s["latency_ms"] >= 0 for s in shards["shards"])
    assert discord_api.command_syncs == 0  # the process running shard 0 registers the slash commands

    guild = GUILDS[3]  # on shard 3
    msg_id, reply = await ask(discord_api, guild, tiny_pairs[0].q)
    assert reply["content"] == tiny_pairs[0].a and reply["channel_id"] == str(discord_api.channel_of(guild))
    assert reply["allowed_mentions"] == {"parse": [], "replied_user": False}
    assert reply["message_reference"]["message_id"] == msg_id
    daemon.stopping.set()
    await asyncio.sleep(0)
    for _ in range(500):
        if daemon.phase == "stopped":
            break
        await asyncio.sleep(0.02)
    rows = read_exchanges(tmp_path / "db.sqlite3")
    assert [(r["text"], r["workspace"], r["platform"]) for r in rows] == [(tiny_pairs[0].q, str(guild), "discord")]


async def test_shard_count_alone_runs_every_shard_in_one_process(tmp_path, discord_api, serve, tiny_pairs):
    settings = settings_for(tmp_path, CHATBOT_SHARD_COUNT="2")
    _, adapter = await serve(settings)
    assert sorted(discord_api.identified) == [[0, 2], [1, 2]]
    for _ in range(500):  # ready comes first; the commands are registered right after it
        if discord_api.command_syncs:
            break
        await asyncio.sleep(0.02)
    assert len(adapter.client.guilds) == len(GUILDS) and discord_api.command_syncs == 1
    shards = (await healthz(settings))["adapter_details"]["discord"]["shards"]
    assert [(s["id"], s["state"], s["guilds"]) for s in shards] == [(0, "ready", 4), (1, "ready", 4)]
    for guild, pair in ((GUILDS[0], tiny_pairs[1]), (GUILDS[1], tiny_pairs[2])):  # one guild on each shard
        _, reply = await ask(discord_api, guild, pair.q)
        assert reply["content"] == pair.a


async def test_an_unsharded_bot_told_to_shard_fails_saying_to_set_shard_count(tmp_path, discord_api):
    """A bot grown past 2,500 guilds: Discord closes its single connection with 4011."""
    discord_api.close_on_identify = 4011
    adapter = DiscordAdapter(Pipeline(InferenceWorker("unused"), None), "fake-token")
    with pytest.raises(RuntimeError, match=r"requires sharding .*set shard_count \(CHATBOT_SHARD_COUNT\)"):
        await asyncio.wait_for(adapter.start(), 15)
    assert discord_api.identified == [None]  # an unsharded IDENTIFY carries no shard field
    assert adapter.state is AdapterState.FAILED
    await adapter.stop()
