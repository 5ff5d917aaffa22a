"""The inference worker with a real tiny model: batching, backpressure, deadlines, drain, hot reload."""
import asyncio
import json
import shutil
import threading

from bot.messages import Outcome
from bot.metrics import Metrics
from bot.worker import InferenceWorker, WorkerConfig, load_engine


class Gated:
    """The real engine behind a gate, so a test decides when decoding may proceed."""

    def __init__(self, engine):
        self.engine = engine
        self.version = engine.version
        self.device = engine.device
        self.gate = threading.Event()
        self.batches: list[int] = []

    def prepare(self, text):
        return self.engine.prepare(text)

    def set_extra_pairs(self, pairs):
        self.engine.set_extra_pairs(pairs)

    def reply_prepared(self, batch):
        self.gate.wait(30)
        self.batches.append(len(batch))
        return self.engine.reply_prepared(batch)


async def started(engine, metrics: Metrics | None = None, **cfg) -> InferenceWorker:
    worker = InferenceWorker("unused", WorkerConfig(**cfg), engine_factory=lambda _: engine)
    await worker.start()
    if metrics is not None:
        metrics.watch(worker)
    return worker


async def test_concurrent_requests_get_their_own_replies_in_batches(tiny_responder, tiny_pairs):
    gated, metrics = Gated(tiny_responder), Metrics()
    worker = await started(gated, metrics, max_batch=16, batch_window_ms=20)
    tasks = [asyncio.create_task(worker.reply(p.q)) for p in tiny_pairs * 2]
    await asyncio.sleep(0.05)
    gated.gate.set()
    results = await asyncio.gather(*tasks)
    await worker.stop()
    alone = [tiny_responder.reply(p.q) for p in tiny_pairs]
    assert [r.text for r in results] == alone * 2
    assert all(r.outcome is Outcome.REPLIED for r in results)
    assert max(gated.batches) == 16 and sum(gated.batches) == 100
    assert metrics.value("chatbot_batch_size_sum") == 100
    assert metrics.value("chatbot_batch_size_count") == len(gated.batches)


async def test_full_queue_answers_overloaded_at_once(tiny_responder):
    gated = Gated(tiny_responder)
    worker = await started(gated, max_batch=1, queue_size=3, batch_window_ms=0)
    tasks = [asyncio.create_task(worker.reply(f"안녕 {i}")) for i in range(20)]
    done, _ = await asyncio.wait(tasks, timeout=2)
    overloaded = [t.result() for t in done]
    admitted_at_most = 3 + 2 * 1 + 1  # queue_size + 2 * max_batch + the one the prepare thread holds
    assert len(overloaded) >= 20 - admitted_at_most
    assert all(r.outcome is Outcome.OVERLOADED for r in overloaded)
    gated.gate.set()
    results = await asyncio.gather(*tasks)
    await worker.stop()
    assert len(results) == 20  # every request got exactly one outcome
    assert sum(r.outcome is Outcome.REPLIED for r in results) == 20 - len(overloaded)
    assert sum(r.outcome is Outcome.OVERLOADED for r in results) == len(overloaded)


async def test_timeouts_and_empty_input(tiny_responder):
    gated = Gated(tiny_responder)
    worker = await started(gated, max_batch=1, timeout_s=0.2)
    first, second = await asyncio.gather(worker.reply("하나"), worker.reply("둘"))
    assert first.outcome is Outcome.TIMEOUT and second.outcome is Outcome.TIMEOUT
    assert "오래" in first.text
    gated.gate.set()
    empty = await worker.reply("  ")  # normalized text (the pipeline normalizes; see test_pipeline)
    assert empty.outcome is Outcome.EMPTY
    ok = await worker.reply("안녕", timeout_s=30)
    assert ok.outcome is Outcome.REPLIED
    await worker.stop()


async def test_shutdown_drains_queue(tiny_responder):
    gated = Gated(tiny_responder)
    worker = await started(gated, max_batch=4, queue_size=100)
    tasks = [asyncio.create_task(worker.reply(f"질문 {i}")) for i in range(30)]
    await asyncio.sleep(0.05)
    stopping = asyncio.create_task(worker.stop())
    await asyncio.sleep(0.05)
    late = await worker.reply("늦은 질문")
    assert late.outcome is Outcome.OVERLOADED  # no new work once stopping
    gated.gate.set()
    await stopping
    results = await asyncio.wait_for(asyncio.gather(*tasks), 5)  # answered by the draining threads
    assert all(r.outcome is Outcome.REPLIED for r in results)


async def test_hot_reload_swaps_between_batches_and_refuses_corrupt(tiny_model_dir, tmp_path, tiny_pairs):
    v2 = tmp_path / "v2"
    shutil.copytree(tiny_model_dir, v2)
    manifest = json.loads((v2 / "manifest.json").read_text())
    manifest["version"] = "v2-test"
    (v2 / "manifest.json").write_text(json.dumps(manifest))

    made = []  # every engine the factory built: the worker's own seam, not its internals

    def factory(path):
        made.append(Gated(load_engine(path)))
        return made[-1]

    worker = InferenceWorker(tiny_model_dir, WorkerConfig(max_batch=64), engine_factory=factory)
    metrics = Metrics()
    await worker.start()
    metrics.watch(worker)
    old_engine = made[0]
    old_version = worker.version
    in_flight = [asyncio.create_task(worker.reply(p.q)) for p in tiny_pairs[:10]]
    await asyncio.sleep(0.1)  # the batch is now decoding (held at the gate)
    reload = asyncio.create_task(worker.reload(v2))
    await asyncio.sleep(0.5)
    old_engine.gate.set()
    result = await reload
    assert result.ok and result.version == "v2-test"
    first = await asyncio.gather(*in_flight)
    assert {r.model_version for r in first} == {old_version}
    assert len(made) == 2
    made[-1].gate.set()
    after = await worker.reply(tiny_pairs[0].q)
    assert after.model_version == "v2-test" and after.text == tiny_pairs[0].a

    broken = tmp_path / "broken"
    shutil.copytree(v2, broken)
    (broken / "vocab.json").write_text('{"tokens": ["<pad>", "<sos>", "<eos>", "<unk>", "x"]}')
    failed = await worker.reload(broken)
    assert not failed.ok and "sha256" in failed.error
    missing = await worker.reload(tmp_path / "nowhere")
    assert not missing.ok and "not a model directory" in missing.error
    still = await worker.reply(tiny_pairs[1].q)
    assert still.model_version == "v2-test" and still.outcome is Outcome.REPLIED
    assert metrics.value("chatbot_model_reloads_total", result="failed") == 2
    assert metrics.value("chatbot_model_reloads_total", result="ok") == 1
    await worker.stop()
