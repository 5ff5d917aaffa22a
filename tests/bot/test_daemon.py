"""The daemon with in-process adapters (the Adapter protocol) and a model-less engine: no platform, no model."""
import asyncio

from adapters.inprocess import InProcessAdapter
from bot.adapter import AdapterState
from bot.daemon import Daemon
from bot.settings import Secret, Settings
from tests.fakes import FakeEngine, read_exchanges


class Broken:
    """An adapter whose platform refuses it (a revoked token, say)."""
    name = "broken"

    def __init__(self, why: str = "the platform refused the token") -> None:
        self.state, self.why = AdapterState.CREATED, why

    async def start(self) -> None:
        self.state = AdapterState.CONNECTING
        raise RuntimeError(self.why)

    async def stop_intake(self) -> None:
        pass

    async def stop(self) -> None:
        self.state = AdapterState.STOPPED


def daemon(tmp_path, **options) -> Daemon:
    settings = Settings(db=str(tmp_path / "db.sqlite3"), http_port=0, model_watch_s=0, rate_per_minute=0, **options)
    return Daemon(settings, engine_factory=lambda _: FakeEngine(lambda text: f"{text}? 좋아요", version="fake-7"))


async def until(condition, timeout=10.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


async def test_one_failing_adapter_leaves_the_other_serving_and_shows_in_health(tmp_path):
    d, chats = daemon(tmp_path), []

    def build(pipeline):
        chats.append(InProcessAdapter(pipeline))
        return [chats[0], Broken()]

    run = asyncio.create_task(d.run(build))
    await until(lambda: d.phase == "ready" and "broken" in d.failures)
    ready, health = d.health()
    assert ready and health["model_version"] == "fake-7"
    assert health["adapters"] == {"inprocess": "running", "broken": "failed: the platform refused the token"}
    await chats[0].push_message("산책 갈까")
    assert await chats[0].pop_message() == "산책 갈까? 좋아요"
    d.stopping.set()
    assert await asyncio.wait_for(run, 10) == 0
    assert d.phase == "stopped" and chats[0].state is AdapterState.STOPPED
    assert [r["text"] for r in read_exchanges(tmp_path / "db.sqlite3")] == ["산책 갈까"]  # flushed at shutdown
    assert d.metrics.value("chatbot_messages_received_total", platform="inprocess") == 1


async def test_every_adapter_failing_stops_the_daemon_with_exit_1_and_health_shows_no_secret(tmp_path):
    d = daemon(tmp_path, discord_token=Secret("tok-very-secret"))
    assert await asyncio.wait_for(d.run(lambda pipeline: [Broken("bad token tok-very-secret")]), 10) == 1
    assert d.failures == {"broken": "bad token ***"}  # what /healthz shows beside "failed"


async def test_an_unreachable_database_stops_start_up_with_exit_2(tmp_path, caplog):
    d = Daemon(Settings(db="postgresql://bot:pw@127.0.0.1:1/chatbot", http_port=0, model_watch_s=0),
               engine_factory=lambda _: FakeEngine())
    assert await d.run(lambda pipeline: [InProcessAdapter(pipeline)]) == 2
    assert "cannot open the conversation store" in caplog.text
