"""`chatbot serve`: the daemon. Store, worker, health/metrics, and every configured adapter.

With no platform configured it runs the terminal chat when a terminal is attached (what
`make run` does on a fresh machine), and otherwise says what to set and exits 2.
SIGTERM/SIGINT: stop taking messages, drain the worker, let handlers send and log, close the
adapters, flush the store, exit 0. SIGHUP (or an admin's `!reload`) reloads the model, and a newly
promoted `models/current` is picked up by a file watch.
"""
from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import os
import signal
import sys
from pathlib import Path

from bot.metrics import Metrics
from bot.paths import default_model_dir
from bot.pipeline import Pipeline
from bot.ratelimit import RateLimiter
from bot.server import HealthServer
from bot.settings import Settings, SettingsError, load_settings
from bot.store import Store
from bot.worker import InferenceWorker, WorkerConfig, load_engine

log = logging.getLogger("chatbot")
SHUTDOWN_BUDGET_S = 8.0

NOTHING_TO_RUN = """chatbot serve: no chat platform is configured and there is no terminal to chat in.
Set DISCORD_TOKEN for Discord, and/or SLACK_BOT_TOKEN with SLACK_SIGNING_SECRET (HTTP mode) or
SLACK_APP_TOKEN (Socket Mode) for Slack; or run it in a terminal to chat there (see README.md)."""


def model_fingerprint(path: Path) -> tuple[str, float] | None:
    """What changes when a new model is promoted: the resolved directory and its manifest's mtime."""
    try:
        return str(path.resolve()), (path / "manifest.json").stat().st_mtime
    except OSError:
        return None


class Daemon:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.worker = InferenceWorker(self.model_target(), WorkerConfig(
            max_batch=settings.max_batch, batch_window_ms=settings.batch_window_ms,
            queue_size=settings.queue_size, timeout_s=settings.timeout_s),
            engine_factory=functools.partial(load_engine, beam_width=settings.beam_width,
                                             candidates=settings.candidates))
        self.store = Store(settings.db)
        self.pipeline = Pipeline(self.worker, self.store,
                                 RateLimiter(settings.rate_per_minute, settings.rate_burst), self.metrics)
        self.adapters: list = []
        self.phase = "starting"
        self.stopping = asyncio.Event()
        self.exit_code = 0
        self.server = (HealthServer(settings.http_host, settings.http_port, self.metrics, self.health)
                       if settings.http_port else None)

    # -- pieces -----------------------------------------------------------------------------------
    def health(self) -> tuple[bool, dict]:
        return self.phase == "ready" and self.worker.ready, {
            "phase": self.phase, "model_version": self.worker.version, "device": self.worker.device,
            "queue_depth": self.worker.queue_depth(),
            "adapters": {a.name: a.state for a in self.adapters}}

    def build_adapters(self) -> list:
        s, adapters = self.settings, []
        if s.discord_enabled:
            from adapters.discord import DiscordAdapter
            adapters.append(DiscordAdapter(self.pipeline, s.discord_token, allow_guilds=s.allow_guilds,
                                           allow_channels=s.allow_channels, admin_users=s.admin_users,
                                           on_reload=self.reload))
        if s.slack_enabled:
            from adapters.slack import SlackAdapter
            adapters.append(SlackAdapter(self.pipeline, bot_token=s.slack_bot_token,
                                         signing_secret=s.slack_signing_secret, app_token=s.slack_app_token,
                                         http_port=s.slack_http_port, api_url=s.slack_api_url,
                                         allow_channels=s.allow_channels, admin_users=s.admin_users,
                                         on_reload=self.reload))
        return adapters

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
        """Poll for a newly promoted model (the `current` link moving, a manifest rewritten); reload it."""
        if not self.settings.model_watch_s:
            return
        seen = model_fingerprint(self.model_target())
        while not self.stopping.is_set():
            await asyncio.sleep(self.settings.model_watch_s)
            now = model_fingerprint(self.model_target())
            if now and now != seen:
                seen = now
                log.info("new model promoted at %s; reloading", now[0])
                await self.reload()

    async def prune_daily(self) -> None:
        while self.settings.retention_days and not self.stopping.is_set():
            removed = await self.store.prune(self.settings.retention_days)
            log.info("retention: removed %d exchanges older than %g days", removed, self.settings.retention_days)
            await asyncio.sleep(24 * 3600)

    async def supervise(self, adapter) -> None:
        """Run one adapter; a failure is reported and leaves the other platforms running."""
        try:
            await adapter.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not str(adapter.state).startswith("failed"):
                adapter.state = f"failed: {type(exc).__name__}"
            log.error("%s adapter stopped: %s", adapter.name, exc)
            if all(str(a.state).startswith("failed") for a in self.adapters):
                log.error("every chat adapter failed; shutting down")
                self.exit_code = 1
                self.stopping.set()

    # -- run --------------------------------------------------------------------------------------
    async def run(self, terminal: bool) -> int:
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
                              "http_port (CHATBOT_HTTP_PORT) to a free port, or 0 to turn them off", where, exc.strerror)
                    return 2
                log.warning("no /healthz or /metrics: %s is taken (%s); the terminal chat goes on without them",
                            where, exc.strerror)
                self.server = None
        await self.store.open()
        await self.worker.start()
        self.metrics.watch(self.worker)
        self.adapters = self.build_adapters()
        tasks = [asyncio.create_task(self.supervise(a), name=f"adapter-{a.name}") for a in self.adapters]
        tasks += [asyncio.create_task(self.watch_model()), asyncio.create_task(self.prune_daily())]
        if terminal:
            tasks.append(asyncio.create_task(self.run_terminal()))
        self.phase = "ready"
        log.info("ready: model %s on %s; adapters: %s", self.worker.version, self.worker.device,
                 ", ".join(a.name for a in self.adapters) or "terminal")
        await self.stopping.wait()
        await self.shutdown(tasks)
        return self.exit_code

    async def run_terminal(self) -> None:
        from adapters.terminal import run_terminal
        import getpass
        try:
            await run_terminal(self.pipeline, getpass.getuser())
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
        await self.worker.stop()
        for adapter in self.adapters:
            await self._quietly(adapter.name, adapter.close())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.store.close()
        if self.server:
            await self.server.stop()
        self.phase = "stopped"
        log.info("stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chatbot serve", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="TOML file (default: $CHATBOT_CONFIG); see chatbot.example.toml")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
    except SettingsError as exc:
        print(f"chatbot serve: configuration error: {exc}", file=sys.stderr)
        return 2
    from bot.logs import setup_logging
    terminal = not (settings.discord_enabled or settings.slack_enabled)
    if terminal and not (sys.stdin.isatty() and sys.stdout.isatty()):
        print(NOTHING_TO_RUN, file=sys.stderr)
        return 2
    if terminal:  # the chat owns the screen: before logging captures stderr
        from adapters.terminal import prepare_screen
        prepare_screen(settings.db)
    setup_logging(settings.log_level, settings.log_json, settings.secrets())
    if terminal:  # routine logs stay out of the chat
        logging.getLogger().setLevel(max(logging.WARNING, logging.getLogger().level))
    from core_model.tokenizer import start_jvm
    start_jvm()  # on the main thread, before any worker thread touches Okt
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return asyncio.run(Daemon(settings).run(terminal))


if __name__ == "__main__":
    sys.exit(main())
