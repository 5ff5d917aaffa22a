"""GET /healthz and GET /metrics on 127.0.0.1 (aiohttp)."""
from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from bot.metrics import Metrics


class HealthServer:
    """`status()` returns (ready, details); /healthz answers 200 when ready, 503 otherwise."""

    def __init__(self, host: str, port: int, metrics: Metrics, status: Callable[[], tuple[bool, dict]]) -> None:
        self.host, self.port = host, port
        self.metrics = metrics
        self.status = status
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:  # an ephemeral port (tests): report the real one
            self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, _request: web.Request) -> web.Response:
        ready, details = self.status()
        return web.json_response({"status": "ok" if ready else "unavailable", **details}, status=200 if ready else 503)

    async def _metrics(self, _request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})
