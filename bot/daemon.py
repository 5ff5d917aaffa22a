"""The daemon: store, worker, pipeline, health/metrics, and the adapters it is given.

Which adapters run is decided by the caller (chatbot/serve.py), so bot/ never imports a platform.
The daemon supervises them through the `Adapter` protocol: one failing leaves the others running.
SIGTERM/SIGINT: stop taking messages, drain the worker, let handlers send and log, close the
adapters, flush the store, exit 0; replies the outbox could not send by then stay pending in the store,
and the next start sends those younger than `delivery_max_age_s` (bot/outbox.py).
SIGHUP (or an admin's `!reload`) reloads the model, and a newly promoted `models/current` is picked up
by a file watch.
Several daemons (replicas) may share one PostgreSQL: each renews a lease in the store every third of
`replica_lease_s` and takes over the owed replies of replicas whose lease ran out; the scheduled retrain
runs under a lease of its own, on one replica at a time (the others reload the promoted model by the watch).
"""
from __future__ import annotations

import asyncio
import functools
import logging
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

from bot.adapter import Adapter, AdapterState, describe, details
from bot.commands import Commands
from bot.metrics import Metrics
from bot.outbox import Outbox
from bot.paths import db_work_dir, default_model_dir
from bot.pipeline import Pipeline
from bot.ratelimit import RateLimiter
from bot.retrainer import Retrainer, child_env, default_commands, parse_duration
from bot.server import HealthServer
from bot.settings import Settings
from bot.steps import AllowList
from bot.store import make_store
from bot.worker import Engine, InferenceWorker, WorkerConfig, load_engine

log = logging.getLogger("chatbot")
SHUTDOWN_BUDGET_S = 8.0
RETRAIN_LEASE = "retrain"

# The adapters to run, made once the pipeline exists; and a foreground task (the terminal chat) whose end stops all.
AdapterFactory = Callable[[Pipeline], list[Adapter]]
Foreground = Callable[[Pipeline], Awaitable[object]]


def model_fingerprint(path: Path) -> tuple[str, float] | None:
    """What changes when a new model is promoted: the resolved directory and its manifest's mtime."""
    try:
        return str(path.resolve()), (path / "manifest.json").stat().st_mtime
    except OSError:
        return None


class Daemon:
    def __init__(self, settings: Settings, engine_factory: Callable[[str | Path], Engine] | None = None) -> None:
        """`engine_factory`: how a model directory becomes an engine (default: the real model, as configured)."""
        self.settings = settings
        self.metrics = Metrics()
        self.worker = InferenceWorker(self.model_target(), WorkerConfig(
            max_batch=settings.max_batch, batch_window_ms=settings.batch_window_ms,
            queue_size=settings.queue_size, timeout_s=settings.timeout_s),
            engine_factory=engine_factory or functools.partial(load_engine, beam_width=settings.beam_width,
                                                               answer_bank=settings.answer_bank))
        self.store = make_store(settings.db, settings.replica_id or None)
        self.outbox = Outbox(self.store, self.metrics, max_age_s=settings.delivery_max_age_s)
        self.retrainer = Retrainer(parse_duration(settings.retrain_every),
                                   default_commands(settings.db, db_work_dir(settings.db)), self.reload,
                                   env=child_env(settings.db),
                                   claim=lambda ttl_s: self.store.lease(RETRAIN_LEASE, ttl_s))
        self.pipeline = Pipeline(self.worker, self.store,
                                 RateLimiter(settings.rate_per_minute, settings.rate_burst), self.metrics,
                                 allow=AllowList(settings.allow_guilds, settings.allow_channels),
                                 commands=Commands(settings.admin_users, self.reload), outbox=self.outbox,
                                 teach_quorum=settings.teach_quorum if settings.teach_auto_approve else 0)
        self.adapters: list[Adapter] = []
        self.failures: dict[str, str] = {}  # adapter name -> why it failed
        self.phase = "starting"
        self.stopping = asyncio.Event()
        self.exit_code = 0
        self.server = (HealthServer(settings.http_host, settings.http_port, self.metrics, self.health)
                       if settings.http_port else None)

    # -- pieces -----------------------------------------------------------------------------------
    def health(self) -> tuple[bool, dict]:
        more = {a.name: d for a in self.adapters if (d := details(a))}  # e.g. {"discord": {"shards": [...]}}
        return self.phase == "ready" and self.worker.ready, {
            "phase": self.phase, "replica": self.store.replica_id, "model_version": self.worker.version,
            "device": self.worker.device,
            "queue_depth": self.worker.queue_depth(), "outbox_pending": self.outbox.depth,
            "adapters": {a.name: describe(a, self.failures.get(a.name)) for a in self.adapters},
            **({"adapter_details": more} if more else {}),
            **({"retrain": self.retrainer.status.describe()} if self.retrainer.every_s else {})}

    def model_target(self) -> Path:
        """The configured model directory, else the promoted `current` (or the shipped default)."""
        return Path(self.settings.model_dir) if self.settings.model_dir else default_model_dir()

    async def reload(self) -> str:
        """Reload the configured (or newly promoted) model; the answer is shown to admins."""
        result = await self.worker.reload(self.model_target())
        if result.ok:
            self.metrics.set_model(result.version or "none")
            return f"모델을 {result.version} 버전으로 바꿨어요."
        return f"모델을 바꾸지 못했어요 (지금 {result.version} 유지): {result.error}"

    async def watch_model(self) -> None:
        """Poll for a newly promoted model (the `current` link moving, a manifest rewritten) and reload
        it; and for taught answers reviewed from the command line."""
        if not self.settings.model_watch_s:
            return
        seen = model_fingerprint(self.model_target())
        while not self.stopping.is_set():
            await asyncio.sleep(self.settings.model_watch_s)
            await self.pipeline.refresh_taught()  # reviews made with `chatbot teach` from another process
            now = model_fingerprint(self.model_target())
            if now and now != seen:
                seen = now
                log.info("new model promoted at %s; reloading", now[0])
                await self.reload()

    async def renew_lease(self, first: bool = False) -> None:
        """Renew this replica's lease (other replicas leave its owed replies alone while it holds)."""
        left = await self.store.replica_heartbeat(self.settings.replica_lease_s)
        if first and left is not None and left > 0:
            log.warning("replica id %s was alive %.0fs ago: a restart right after a kill, or another live daemon with "
                        "the same id (give each its own replica_id)", self.store.replica_id,
                        self.settings.replica_lease_s - left)
        elif not first and left is not None and left < 0 and self.outbox.depth:
            log.error("replica %s: lease lapsed %.1fs ago; other replicas may have taken over (and may send again) "
                      "replies it owed", self.store.replica_id, -left)

    async def keep_lease(self) -> None:
        """Every third of the lease: renew it, and take over what replicas whose lease ran out still owed."""
        while not self.stopping.is_set():
            await asyncio.sleep(self.settings.replica_lease_s / 3)
            try:
                await self.renew_lease()
                await self.pipeline.take_over()
            except Exception as exc:  # the database briefly away: next time
                log.warning("replica lease: %s: %s", type(exc).__name__, exc)

    async def prune_daily(self) -> None:
        while self.settings.retention_days and not self.stopping.is_set():
            removed = await self.store.prune(self.settings.retention_days)
            log.info("retention: removed %d exchanges older than %g days", removed, self.settings.retention_days)
            await asyncio.sleep(24 * 3600)

    async def supervise(self, adapter: Adapter) -> None:
        """Run one adapter; a failure is reported and leaves the other platforms running."""
        try:
            await adapter.start()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            adapter.state = AdapterState.FAILED
            self.failures[adapter.name] = self._masked(str(exc) or type(exc).__name__)
            log.error("%s adapter stopped: %s", adapter.name, exc)
            if all(a.state is AdapterState.FAILED for a in self.adapters):
                log.error("every chat adapter failed; shutting down")
                self.exit_code = 1
                self.stopping.set()

    def _masked(self, text: str) -> str:
        """/healthz is not a log line (those are masked by bot.logs): mask secrets here too."""
        for secret in self.settings.secrets():
            text = text.replace(secret, "***")
        return text

    # -- run --------------------------------------------------------------------------------------
    async def run(self, build_adapters: AdapterFactory, foreground: Foreground | None = None) -> int:
        """Serve until SIGTERM/SIGINT (or the foreground task ends); the exit code."""
        terminal = foreground is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload()))
        if self.server:
            try:
                await self.server.start()
                log.info("health and metrics on http://%s:%d/healthz and /metrics", self.server.host, self.server.port)
            except OSError as exc:  # the port is taken, most often by another chatbot
                where = f"{self.server.host}:{self.server.port}"
                if not terminal:
                    log.error("cannot serve /healthz and /metrics on %s: %s. Is another chatbot running? Set "
                              "http_port (CHATBOT_HTTP_PORT) to a free port, or 0 to turn them off",
                              where, exc.strerror)
                    return 2
                log.warning("no /healthz or /metrics: %s is taken (%s); the terminal chat goes on without them",
                            where, exc.strerror)
                self.server = None
        try:
            await self.store.open()
        except Exception as exc:  # a database server down or refusing us, a file we cannot write
            log.error("cannot open the conversation store (db / CHATBOT_DB): %s: %s", type(exc).__name__, exc)
            if self.server:
                await self.server.stop()
            return 2
        await self.renew_lease(first=True)
        await self.worker.start()
        self.metrics.watch(self.worker)
        self.metrics.outbox_pending.set_function(lambda: self.outbox.depth)
        await self.pipeline.load_taught()  # taught answers are live again, approved ones in the bank
        self.adapters = build_adapters(self.pipeline)  # each registers its platform's delivery with the outbox
        await self.renew_lease()  # the model load may have outlasted the lease: held again before rows are owned
        tasks = [asyncio.create_task(self.supervise(a), name=f"adapter-{a.name}") for a in self.adapters]
        await self.pipeline.resume()  # what a previous run still owed, unless too old
        tasks += [asyncio.create_task(self.watch_model()), asyncio.create_task(self.prune_daily()),
                  asyncio.create_task(self.keep_lease()),
                  asyncio.create_task(self.retrainer.run_forever(self.stopping))]
        if foreground is not None:
            tasks.append(asyncio.create_task(self.run_foreground(foreground)))
        self.phase = "ready"
        log.info("ready: model %s on %s; adapters: %s", self.worker.version, self.worker.device,
                 ", ".join(a.name for a in self.adapters) or "terminal")
        await self.stopping.wait()
        await self.shutdown(tasks)
        return self.exit_code

    async def run_foreground(self, foreground: Foreground) -> None:
        try:
            await foreground(self.pipeline)
        finally:
            self.stopping.set()

    @staticmethod
    async def _quietly(name: str, step) -> None:
        try:
            await asyncio.wait_for(step, 2)
        except Exception as exc:
            log.warning("%s adapter did not stop cleanly: %s", name, exc)

    async def shutdown(self, tasks: list[asyncio.Task]) -> None:
        """Stop intake, let accepted messages be answered and logged, drain, flush, close."""
        self.phase = "draining"
        log.info("shutting down: %d requests queued", self.worker.queue_depth())
        for adapter in self.adapters:  # no new messages from here on
            await self._quietly(adapter.name, adapter.stop_intake())
        await asyncio.sleep(0.05)  # let just-acknowledged events reach the pipeline
        if not await self.pipeline.wait_idle(SHUTDOWN_BUDGET_S - 2):
            log.warning("some replies were still being sent at shutdown")
        self.pipeline.accepting = False
        await self.outbox.close()  # replies not yet sent stay pending in the store for the next start
        await self.worker.stop()
        for adapter in self.adapters:
            await self._quietly(adapter.name, adapter.stop())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:  # what is still owed goes to the live replicas now, not after the lease runs out
            await self.store.replica_release()
        except Exception as exc:
            log.warning("replica lease not released: %s: %s", type(exc).__name__, exc)
        await self.store.close()
        if self.server:
            await self.server.stop()
        self.phase = "stopped"
        log.info("stopped")
