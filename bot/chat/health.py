"""Health and metrics over HTTP (aiohttp): /healthz, /readyz and /metrics for every drbot process.

- ``/healthz``: the process is alive and its event loop answers (liveness).
- ``/readyz``: Redis answers a PING, and every chat frontend of the bot process is connected
  (readiness); 503 with the failing checks otherwise.
- ``/metrics``: Prometheus text. The bot process computes the queue depth and the approvals
  pending from Redis on each scrape. The worker runs jobs in forked work horses, so it collects
  its metrics in prometheus_client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, set by
  `drbot worker` before anything imports prometheus_client).

The bot serves this on its own event loop (`start`); the worker and the scheduler, whose main
thread belongs to rq or the scheduler loop, serve it from a thread (`Background`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

from bot.chat.frontends.base import Frontend
from bot.config.settings import Settings
from bot.errors import ConfigError
from bot.metrics import APPROVALS_PENDING, QUEUE_DEPTH
from bot.records.jobs import JobStatus, JobStore
from bot.redact import REDACT
from bot.runtime import Runtime

log = logging.getLogger("drbot.health")
ON_SCRAPE = {"drbot_queue_depth", "drbot_approvals_pending"}  # the bot's alone: computed from Redis


class WithoutScrapeGauges:
    """The worker's multiprocess metrics, minus the gauges only the bot computes (else stale 0s)."""

    def __init__(self, path: str) -> None:
        self.inner = MultiProcessCollector(None, path)

    def collect(self) -> Iterable[Metric]:
        return [m for m in self.inner.collect() if m.name not in ON_SCRAPE]


def worker_registry() -> CollectorRegistry:
    """Metrics summed over the worker and all its work horses, dead or alive."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path:
        return REGISTRY
    registry = CollectorRegistry()
    registry.register(WithoutScrapeGauges(path))
    return registry


def approvals_pending(store: JobStore) -> int:
    """Jobs awaiting approval, among the active ones (a record that fails its signature is skipped)."""
    count = 0
    for job_id in store.active():
        try:
            count += store.get(job_id).status == JobStatus.AWAITING_APPROVAL
        except Exception:  # noqa: BLE001, S112  (gone or forged meanwhile: not pending)
            continue
    return count


class Health:
    """What the three endpoints check. Uses its own impatient Redis client, so that a probe fails
    within its timeout instead of riding out an outage like the worker's client does."""

    def __init__(self, settings: Settings, frontends: Mapping[str, Frontend] | None = None, *,
                 scrape_queue: bool = False, registry: CollectorRegistry = REGISTRY) -> None:
        self.rt = Runtime.from_settings(settings, patient=False)
        self.frontends = frontends or {}
        self.scrape_queue = scrape_queue
        self.registry = registry

    def redis_ok(self) -> str | None:
        """None when Redis answers; else why not."""
        try:
            self.rt.client.ping()
        except Exception as exc:  # noqa: BLE001  (any failure means not ready)
            return f"unreachable ({type(exc).__name__})"
        return None

    async def checks(self) -> dict[str, str]:
        results = {"redis": await asyncio.to_thread(self.redis_ok) or "ok"}
        for name, frontend in self.frontends.items():
            results[f"frontend:{name}"] = "connected" if frontend.connected else "disconnected"
        return results

    def refresh(self) -> None:
        """Set the gauges computed from Redis; on an outage they become NaN (unknown), not stale."""
        from bot.records.queue import queue

        try:
            QUEUE_DEPTH.set(queue(self.rt.client, self.rt.settings.queue).count)
            APPROVALS_PENDING.set(approvals_pending(self.rt.store))
        except Exception as exc:  # noqa: BLE001
            log.warning("metrics: cannot read Redis (%s)", type(exc).__name__)
            QUEUE_DEPTH.set(float("nan"))
            APPROVALS_PENDING.set(float("nan"))

    # -- handlers -------------------------------------------------------------------------------
    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"alive": True})

    async def readyz(self, request: web.Request) -> web.Response:
        results = await self.checks()
        ready = all(v in ("ok", "connected") for v in results.values())
        body = {"ready": ready, "checks": {k: REDACT(v) for k, v in results.items()}}
        return web.json_response(body, status=200 if ready else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        if self.scrape_queue:
            await asyncio.to_thread(self.refresh)
        body = await asyncio.to_thread(generate_latest, self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    def application(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics)
        return app


async def start(health: Health, host: str, port: int) -> web.AppRunner:
    """Serve on the running loop; `await runner.cleanup()` to stop."""
    runner = web.AppRunner(health.application(), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(f"DRBOT_HTTP_HOST={host} DRBOT_HTTP_PORT={port}: cannot listen there "
                          f"({exc.strerror}); choose a free port or another address") from None
    log.info("health and metrics on http://%s:%s", host, bound_port(runner))
    return runner


def bound_port(runner: web.AppRunner) -> int:
    address: Any = runner.addresses[0]
    return int(address[1])


class Background:
    """The endpoints on their own thread and loop (worker, scheduler)."""

    def __init__(self, health: Health, host: str, port: int) -> None:
        self.health, self.host, self.port = health, host, port
        self.loop = asyncio.new_event_loop()
        self.runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="health", daemon=True)

    def start(self) -> Background:
        self._thread.start()
        self._ready.wait(10)
        if self._error:
            raise self._error
        assert self.runner is not None
        self.port = bound_port(self.runner)
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.runner = self.loop.run_until_complete(start(self.health, self.host, self.port))
        except BaseException as exc:  # noqa: BLE001  (reported to start())
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()

    def stop(self) -> None:
        if self.runner and self.loop.is_running():
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
