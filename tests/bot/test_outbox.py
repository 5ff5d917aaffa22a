"""The outbox: pending before the post, sent after, retried until sent, refused or too old; one post in
flight per channel; what a stopped daemon owed is sent by the next start on the same database."""
import asyncio
import sqlite3
import time

from bot.adapter import AdapterState
from bot.daemon import Daemon
from bot.messages import Incoming
from bot.metrics import Metrics
from bot.outbox import Delivery, DeliveryError, Outbox
from bot.pipeline import Pipeline
from bot.settings import Settings
from bot.store import Store
from bot.worker import InferenceWorker, WorkerConfig
from tests.fakes import FakeEngine, read_exchanges


def outbox_rows(path) -> list[dict]:
    with sqlite3.connect(path) as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT * FROM outbox ORDER BY id")]


class Platform:
    """A chat platform stand-in with a durable delivery: it can fail the next posts on demand."""
    name = "fake"

    def __init__(self, pipeline: Pipeline, failures: list[DeliveryError] | None = None, delay: float = 0.0) -> None:
        self.pipeline, self.failures, self.delay = pipeline, list(failures or []), delay
        self.state = AdapterState.CREATED
        self.posts: list[Delivery] = []
        self.attempts = 0
        self.in_flight: dict[str, int] = {}
        self.most_in_flight: dict[str, int] = {}
        pipeline.outbox.register(self.name, self.deliver)

    async def start(self) -> None:
        self.state = AdapterState.RUNNING

    async def stop_intake(self) -> None:
        pass

    async def stop(self) -> None:
        self.state = AdapterState.STOPPED

    async def deliver(self, d: Delivery) -> str:
        self.attempts += 1
        channel = d.channel or ""
        self.in_flight[channel] = self.in_flight.get(channel, 0) + 1
        self.most_in_flight[channel] = max(self.most_in_flight.get(channel, 0), self.in_flight[channel])
        try:
            await asyncio.sleep(self.delay)
            if self.failures:
                raise self.failures.pop(0)
            self.posts.append(d)
            return f"m{len(self.posts)}"
        finally:
            self.in_flight[channel] -= 1

    async def say(self, text: str, channel: str = "c1", user: str = "u1", message_id: str | None = None) -> None:
        await self.pipeline.handle(Incoming(self.name, user, text, channel=channel, thread=message_id,
                                            message_id=message_id), self._unused)

    @staticmethod
    async def _unused(text: str) -> str:
        raise AssertionError("durable replies go through the outbox")


async def pipeline_with(tmp_path, worker_config: WorkerConfig | None = None, **outbox_options):
    worker = InferenceWorker("unused", worker_config, engine_factory=lambda _: FakeEngine(lambda t: f"{t}!"))
    await worker.start()
    store = await Store(tmp_path / "db.sqlite3").open()
    metrics = Metrics()
    outbox = Outbox(store, metrics, **{"backoff_s": (0.01,), **outbox_options})
    return Pipeline(worker, store, metrics=metrics, outbox=outbox), worker, store, metrics


async def test_reply_is_pending_before_the_post_and_sent_after_with_its_id(tmp_path):
    pipeline, worker, store, _ = await pipeline_with(tmp_path)
    platform = Platform(pipeline)
    seen = []

    async def deliver(d):  # what the store holds while the post is being made
        seen.append([(r["status"], r["reply"]) for r in outbox_rows(store.path)])
        return await Platform.deliver(platform, d)

    pipeline.outbox.register("fake", deliver)
    await platform.say("안녕", message_id="u-1")
    await worker.stop()
    await store.close()
    assert seen == [[("pending", "안녕!")]]
    (row,) = outbox_rows(store.path)
    assert row["status"] == "sent" and row["message_id"] == "m1" and row["reply_to"] == "u-1"
    (exchange,) = read_exchanges(store.path)
    assert exchange["reply"] == "안녕!" and exchange["reply_message_id"] == "m1"  # reactions find it
    assert pipeline.outbox.depth == 0


async def test_failed_posts_are_retried_until_sent_and_counted_by_reason(tmp_path, caplog):
    pipeline, worker, store, metrics = await pipeline_with(tmp_path)
    platform = Platform(pipeline, [DeliveryError("service_unavailable"), DeliveryError("TimeoutError"),
                                   DeliveryError("ratelimited", retry_after=0.02)])
    await platform.say("하나")
    await worker.stop()
    await store.close()
    assert [d.text for d in platform.posts] == ["하나!"] and platform.attempts == 4
    for reason in ("service_unavailable", "TimeoutError", "ratelimited"):
        assert metrics.value("chatbot_delivery_failures_total", platform="fake", reason=reason) == 1
        assert metrics.value("chatbot_delivery_retries_total", platform="fake", reason=reason) == 1
        assert reason in caplog.text
    (row,) = outbox_rows(store.path)
    assert row["status"] == "sent" and row["attempts"] == 4 and "ratelimited" in row["last_error"]


async def test_permanent_errors_and_too_old_replies_are_given_up(tmp_path):
    pipeline, worker, store, metrics = await pipeline_with(tmp_path, max_age_s=0.05, backoff_s=(0.03,))
    platform = Platform(pipeline, [DeliveryError("channel_not_found", permanent=True)])
    await platform.say("없는 채널")
    platform.failures = [DeliveryError("service_unavailable")] * 10
    await platform.say("너무 늦은 답")
    await worker.stop()
    await store.close()
    assert platform.posts == []
    assert [r["status"] for r in outbox_rows(store.path)] == ["failed", "expired"]
    assert platform.attempts <= 4 and pipeline.outbox.depth == 0


async def test_one_post_in_flight_per_channel_and_channels_in_parallel(tmp_path):
    pipeline, worker, store, _ = await pipeline_with(tmp_path)
    platform = Platform(pipeline, delay=0.05)
    started = time.monotonic()
    await asyncio.gather(*(platform.say(f"{c}-{i}", channel=c, user=f"{c}{i}") for c in "abcd" for i in range(4)))
    elapsed = time.monotonic() - started
    await worker.stop()
    await store.close()
    assert len(platform.posts) == 16 and platform.most_in_flight == {c: 1 for c in "abcd"}
    assert elapsed < 16 * 0.05  # the four channels' lanes ran side by side
    for c in "abcd":  # each channel's replies in the order the messages came
        assert [d.text for d in platform.posts if d.channel == c] == [f"{c}-{i}!" for i in range(4)]


def daemon(tmp_path, **options) -> Daemon:
    settings = Settings(db=str(tmp_path / "db.sqlite3"), http_port=0, model_watch_s=0, rate_per_minute=0, **options)
    return Daemon(settings, engine_factory=lambda _: FakeEngine(lambda text: f"{text}? 좋아요", version="fake-7"))


async def test_a_restart_sends_what_was_owed_unless_too_old(tmp_path):
    async with Store(tmp_path / "db.sqlite3") as store:  # what a killed daemon left behind
        common = dict(platform="fake", user_id="u1", raw=None, workspace=None, thread=None)
        answered = await store.outbox_accept(text="답은 있었는데", channel="c1", reply_to="m-1", **common)
        await store.outbox_reply(answered, read_exchange("답은 있었는데", "미리 만든 답"))
        await store.outbox_accept(text="답하기 전에 죽음", channel="c2", reply_to="m-2", **common)
        old = await store.outbox_accept(text="오래된 질문", channel="c1", reply_to="m-3", **common)
        sent = await store.outbox_accept(text="이미 보낸 답", channel="c1", reply_to="m-4", **common)
        await store.outbox_sent(sent, "m-sent")
    with sqlite3.connect(tmp_path / "db.sqlite3") as db:
        db.execute("UPDATE outbox SET created_at = ? WHERE id = ?", (time.time() - 700, old))
    d, platforms = daemon(tmp_path, delivery_max_age_s=600), []
    run = asyncio.create_task(d.run(lambda pipeline: platforms.append(Platform(pipeline)) or platforms))
    for _ in range(500):
        if platforms and len(platforms[0].posts) >= 2 and d.outbox.depth == 0:
            break
        await asyncio.sleep(0.01)
    assert d.health()[1]["outbox_pending"] == 0
    d.stopping.set()
    assert await asyncio.wait_for(run, 10) == 0
    posts = {(p.channel, p.reply_to, p.text) for p in platforms[0].posts}
    assert posts == {("c1", "m-1", "미리 만든 답"), ("c2", "m-2", "답하기 전에 죽음? 좋아요")}
    assert [r["status"] for r in outbox_rows(tmp_path / "db.sqlite3")] == ["sent", "sent", "expired", "sent"]
    assert d.metrics.value("chatbot_delivery_failures_total", platform="fake", reason="expired") == 1
    assert sorted(r["reply"] for r in read_exchanges(tmp_path / "db.sqlite3")) == [
        "답하기 전에 죽음? 좋아요", "미리 만든 답"]


def read_exchange(text, reply):
    from bot.store import Exchange
    return Exchange(platform="fake", user_id="u1", text=text, raw=text, reply=reply, outcome="replied", channel="c1")


async def test_shutdown_leaves_unsent_replies_pending_and_health_shows_the_depth(tmp_path):
    d, platforms = daemon(tmp_path), []

    def build(pipeline):
        platforms.append(Platform(pipeline, [DeliveryError("service_unavailable")] * 1000))
        return platforms

    run = asyncio.create_task(d.run(build))
    for _ in range(500):
        if d.phase == "ready":
            break
        await asyncio.sleep(0.01)
    asyncio.create_task(platforms[0].say("안 나가는 답"))
    for _ in range(500):
        if platforms[0].attempts:
            break
        await asyncio.sleep(0.01)
    assert d.health()[1]["outbox_pending"] == 1
    assert d.metrics.value("chatbot_outbox_pending") == 1
    d.stopping.set()
    assert await asyncio.wait_for(run, 15) == 0
    assert [r["status"] for r in outbox_rows(tmp_path / "db.sqlite3")] == ["pending"]


async def test_a_message_admitted_while_shutting_down_is_answered_by_the_next_start(tmp_path):
    pipeline, worker, store, _ = await pipeline_with(tmp_path)
    platform = Platform(pipeline)
    pipeline.accepting = False  # the daemon is draining
    await platform.say("막 도착한 질문", message_id="late-1")
    assert platform.posts == []  # no "busy" reply now, nor one sent late after the restart
    await worker.stop()
    await store.close()
    (row,) = outbox_rows(store.path)
    assert row["status"] == "pending" and row["reply"] is None
    pipeline, worker, store, _ = await pipeline_with(tmp_path)  # the next start, same database
    platform = Platform(pipeline)
    assert await pipeline.resume() == 1
    for _ in range(200):
        if platform.posts:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    await worker.stop()
    await store.close()
    assert [(d.reply_to, d.text) for d in platform.posts] == [("late-1", "막 도착한 질문!")]
    assert [r["status"] for r in outbox_rows(store.path)] == ["sent"]


async def test_a_restart_owing_more_than_the_model_queue_holds_answers_them_all_without_busy_excuses(tmp_path):
    async with Store(tmp_path / "db.sqlite3") as store:
        for i in range(40):
            await store.outbox_accept(platform="fake", user_id=f"u{i}", text=f"질문 {i}", raw=None, workspace=None,
                                      channel=f"c{i % 4}", thread=None, reply_to=f"m{i}")
    pipeline, worker, store, _ = await pipeline_with(tmp_path, WorkerConfig(queue_size=8, max_batch=4))
    platform = Platform(pipeline)
    assert await pipeline.resume() == 40
    for _ in range(500):
        if len(platform.posts) == 40:
            break
        await asyncio.sleep(0.01)
    await worker.stop()
    await store.close()
    assert sorted(d.text for d in platform.posts) == sorted(f"질문 {i}!" for i in range(40))


async def test_a_start_does_not_send_again_what_adapters_admitted_since(tmp_path):
    """Adapters start before the owed rows are read: a message admitted in between is answered once."""
    pipeline, worker, store, _ = await pipeline_with(tmp_path)
    platform = Platform(pipeline)
    admission = await pipeline.admit(Incoming("fake", "u1", "막 들어온 질문", channel="c1", message_id="m-1"))
    assert await pipeline.resume() == 0  # its row is pending, but its answer is being made here
    await pipeline.answer(admission, platform._unused)
    await asyncio.sleep(0.05)
    await worker.stop()
    await store.close()
    assert [(d.reply_to, d.text) for d in platform.posts] == [("m-1", "막 들어온 질문!")]
