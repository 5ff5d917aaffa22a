"""The inference worker: its threads own the model, Okt and TensorFlow; asyncio callers await replies.

Requests go into a bounded queue (`put_nowait`: a full queue answers "overloaded" at once).
A prepare thread tokenizes each request (Okt) while the decode thread runs the model, so the two
overlap. The decode thread takes the first prepared request, gathers more for up to
`batch_window_ms` or until `max_batch`, and decodes them in one compiled call. Requests whose deadline passed before
decoding are answered "timeout" without spending model time. `reload()` builds a new model off
the worker thread and swaps it in between batches; `stop()` refuses new work, drains, and returns.
"""
from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from bot.messages import USER_TEXT, Outcome, WorkerResult
from bot.settings import Settings

log = logging.getLogger(__name__)


class Engine(Protocol):
    """Everything the worker uses of a model (core_model.responder.Responder provides it).

    `prepare` gets text already normalized (the pipeline does it once, at intake) and runs on the
    prepare thread (tokenizing with Okt), overlapping the decode of the previous batch on the decode
    thread; `reply_prepared` answers a whole batch at once, each reply with its source ("model": the
    model's own words, "bank": an answer from its bank) for the metrics.
    """
    version: str
    device: str

    def prepare(self, text: str) -> object: ...

    def reply_prepared(self, batch: list[object]) -> list[tuple[str, str]]: ...

    def set_extra_pairs(self, pairs: list[tuple[str, str]]) -> None:
        """Answer from these (question, answer) pairs too (approved taught answers), replacing earlier ones."""


@dataclass
class WorkerConfig:
    """Sizes and deadlines; the defaults are the daemon's settings (bot.settings owns them)."""
    max_batch: int = Settings.max_batch
    batch_window_ms: float = Settings.batch_window_ms
    queue_size: int = Settings.queue_size
    timeout_s: float = Settings.timeout_s


@dataclass
class ReloadResult:
    ok: bool
    version: str | None
    error: str | None = None


@dataclass(eq=False)
class _Request:
    text: str
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    deadline: float
    enqueued: float = field(default_factory=time.monotonic)
    cancelled: bool = False
    prepared: object = None
    prepared_by: object = None  # the engine that prepared it (a reload in between means: again)

    def resolve(self, result: WorkerResult) -> None:
        def _set() -> None:
            if not self.future.done():
                self.future.set_result(result)
        try:
            self.loop.call_soon_threadsafe(_set)
        except RuntimeError:  # the loop is closed: the caller is gone
            pass


_STOP = object()


def load_engine(model_dir: str | Path, beam_width: int = Settings.beam_width,
                answer_bank: bool = Settings.answer_bank) -> Engine:
    """Default engine factory: the real model (imports TensorFlow only here)."""
    from core_model.responder import Responder
    engine = Responder(model_dir, beam_width=beam_width, answer_bank=answer_bank)
    engine.warm_up()
    return engine


class InferenceWorker:
    def __init__(self, model_dir: str | Path, config: WorkerConfig | None = None,
                 engine_factory: Callable[[str | Path], Engine] = load_engine) -> None:
        self.model_dir = Path(model_dir)
        self.config = config or WorkerConfig()
        self._factory = engine_factory
        self._engine: Engine | None = None
        self._extra_pairs: list[tuple[str, str]] = []  # approved taught answers, kept across reloads
        self._swap_lock = threading.Lock()  # held while a batch decodes; a reload swaps between batches
        self._queue: queue.Queue = queue.Queue(maxsize=self.config.queue_size)
        # Prepared requests wait here for the decoder. Bounded too, so that under overload the prepare
        # thread blocks, `_queue` fills and callers hear "overloaded": at most queue_size + 2 * max_batch + 1
        # requests are ever admitted and unanswered.
        self._ready: queue.Queue = queue.Queue(maxsize=self.config.max_batch)
        self._threads: list[threading.Thread] = []
        self._accepting = False
        # Metrics hooks: (batch size, seconds, where each reply came from), and whether a reload worked.
        self.on_batch: list[Callable[[int, float, list[str]], None]] = []
        self.on_reload: list[Callable[[bool], None]] = []

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Load the model (off the event loop) and start the worker thread."""
        loop = asyncio.get_running_loop()
        self._engine = await loop.run_in_executor(None, self._factory, self.model_dir)
        self._threads = [threading.Thread(target=self._prepare_loop, name="inference-prepare", daemon=True),
                         threading.Thread(target=self._run, name="inference-decode", daemon=True)]
        for thread in self._threads:
            thread.start()
        self._accepting = True
        log.info("worker ready: model %s on %s", self.version, self.device)

    async def stop(self) -> None:
        """Refuse new requests, answer every queued one, then stop the thread."""
        self._accepting = False
        if not self._threads:
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._queue.put, _STOP)  # flows through both threads, in order
        for thread in self._threads:
            await loop.run_in_executor(None, thread.join)
        self._threads = []

    @property
    def ready(self) -> bool:
        return self._accepting

    @property
    def version(self) -> str | None:
        return self._engine.version if self._engine else None

    @property
    def device(self) -> str | None:
        return self._engine.device if self._engine else None

    def queue_depth(self) -> int:
        return self._queue.qsize() + self._ready.qsize()

    # -- requests -------------------------------------------------------------------------------
    async def reply(self, text: str, timeout_s: float | None = None) -> WorkerResult:
        """Exactly one outcome per call: replied, empty, overloaded, timeout or error.

        `text` is normalized already (the pipeline does it once, at intake); the engine may rely on it.
        """
        started = time.monotonic()
        if not text.strip():
            return WorkerResult(Outcome.EMPTY, USER_TEXT[Outcome.EMPTY], self.version)
        if not self._accepting:
            return WorkerResult(Outcome.OVERLOADED, USER_TEXT[Outcome.OVERLOADED], self.version,
                                error="worker is not accepting requests")
        loop = asyncio.get_running_loop()
        timeout = self.config.timeout_s if timeout_s is None else timeout_s
        req = _Request(text, loop.create_future(), loop, started + timeout)
        try:
            self._queue.put_nowait(req)
        except queue.Full:
            return WorkerResult(Outcome.OVERLOADED, USER_TEXT[Outcome.OVERLOADED], self.version,
                                error="queue full")
        try:
            return await asyncio.wait_for(asyncio.shield(req.future), timeout)
        except asyncio.TimeoutError:
            req.cancelled = True
            return WorkerResult(Outcome.TIMEOUT, USER_TEXT[Outcome.TIMEOUT], self.version,
                                (time.monotonic() - started) * 1000, error=f"no reply within {timeout:g}s")

    async def reload(self, model_dir: str | Path | None = None) -> ReloadResult:
        """Load `model_dir` beside the serving model and swap it in between batches.

        On failure the old model keeps serving and the result says why.
        """
        target = Path(model_dir) if model_dir else self.model_dir
        loop = asyncio.get_running_loop()
        try:
            engine = await loop.run_in_executor(None, self._factory, target)
        except Exception as exc:
            log.error("model reload from %s failed, still serving %s: %s", target, self.version, exc)
            self._reloaded(False)
            return ReloadResult(False, self.version, str(exc))
        if self._extra_pairs:  # a new engine starts with its own bank only
            await loop.run_in_executor(None, engine.set_extra_pairs, self._extra_pairs)
        await loop.run_in_executor(None, self._swap, engine)
        self.model_dir = target
        self._reloaded(True)
        log.info("model reloaded: now serving %s from %s", engine.version, target)
        return ReloadResult(True, engine.version)

    async def set_extra_pairs(self, pairs: list[tuple[str, str]]) -> None:
        """Approved taught answers join the bank live: the engine builds its new index off the decode
        thread and swaps it in; a model reloaded later gets them too."""
        self._extra_pairs = list(pairs)
        if self._engine is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._engine.set_extra_pairs, self._extra_pairs)

    def _reloaded(self, ok: bool) -> None:
        for hook in self.on_reload:
            hook(ok)

    def _swap(self, engine: Engine) -> None:
        with self._swap_lock:
            self._engine = engine

    # -- the worker threads -----------------------------------------------------------------------
    def _prepare_loop(self) -> None:
        """Tokenize requests ahead of the decoder; hands everything on in arrival order."""
        while True:
            item = self._queue.get()
            if item is not _STOP and not item.cancelled:
                engine = self._engine
                assert engine is not None
                try:
                    item.prepared, item.prepared_by = engine.prepare(item.text), engine
                except Exception as exc:
                    log.exception("preparing a request failed")
                    item.resolve(WorkerResult(Outcome.ERROR, USER_TEXT[Outcome.ERROR], self.version,
                                              error=f"{type(exc).__name__}: {exc}"))
                    continue
            self._ready.put(item)
            if item is _STOP:
                return

    def _collect(self, first: _Request) -> tuple[list[_Request], bool]:
        batch, stop = [first], False
        window_end = time.monotonic() + self.config.batch_window_ms / 1000
        while len(batch) < self.config.max_batch:
            remaining = window_end - time.monotonic()
            try:
                item = self._ready.get(timeout=remaining) if remaining > 0 else self._ready.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                stop = True
                break
            batch.append(item)
        return batch, stop

    def _run(self) -> None:
        stop = False
        while not stop:
            item = self._ready.get()
            if item is _STOP:
                break
            batch, stop = self._collect(item)
            now = time.monotonic()
            live = []
            for req in batch:
                if req.cancelled or now > req.deadline:
                    req.resolve(WorkerResult(Outcome.TIMEOUT, USER_TEXT[Outcome.TIMEOUT], self.version,
                                             (now - req.enqueued) * 1000, error="deadline passed in queue"))
                else:
                    live.append(req)
            if live:
                self._decode(live)

    @staticmethod
    def _generate(engine: Engine, batch: list[_Request]) -> tuple[list[str], list[str]]:
        """-> (reply texts, their sources). A request prepared by an engine since swapped out is prepared again."""
        prepared = [r.prepared if r.prepared_by is engine else engine.prepare(r.text) for r in batch]
        pairs = engine.reply_prepared(prepared)
        return [text for text, _ in pairs], [source for _, source in pairs]

    def _decode(self, batch: list[_Request]) -> None:
        with self._swap_lock:
            engine = self._engine
            assert engine is not None
            t0 = time.monotonic()
            try:
                replies, sources = self._generate(engine, batch)
            except Exception as exc:  # one bad batch must not kill the worker
                log.exception("decode failed for a batch of %d", len(batch))
                for req in batch:
                    req.resolve(WorkerResult(Outcome.ERROR, USER_TEXT[Outcome.ERROR], engine.version,
                                             error=f"{type(exc).__name__}: {exc}"))
                return
            seconds = time.monotonic() - t0
        done = time.monotonic()
        for hook in self.on_batch:
            hook(len(batch), seconds, sources)
        for req, text in zip(batch, replies):
            req.resolve(WorkerResult(Outcome.REPLIED, text, engine.version, (done - req.enqueued) * 1000))
