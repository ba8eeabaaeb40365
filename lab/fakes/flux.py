"""The lab's Flux controllers run alone against the tests' Kubernetes emulator.

``StandaloneFlux(server)`` runs ``lab.controllers.flux.FluxController`` (source, kustomize and
helm controllers, as the lab runs them) on the emulator's loop, every ``interval`` seconds, with
no delay before a reconcile and without the lab's world: no fleet repository to apply, and the
seeded objects' revision (``lab.fakes.kube.REVISION``). A test sets ``outcomes`` to make a
reconcile fail and reads ``handled`` (what was reconciled, in order) and ``forced`` (the
HelmReleases force-upgraded).

    with StandaloneFlux(kube_emulator) as flux:
        flux.outcomes[("Kustomization", "flux-system", "apps")] = (False, "BuildFailed", "...")
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from lab import world
from lab.controllers.base import Timings
from lab.controllers.flux import FluxController
from lab.fakes.kube import REVISION, StandaloneKube


class AloneFlux(FluxController):
    """Flux without the lab's world: what Git holds is what the test seeded."""

    fleet = False
    revision = REVISION


class StandaloneFlux:
    """Runs the lab's Flux controllers on a StandaloneKube until the ``with`` block ends; an
    error in a pass is raised there."""

    def __init__(self, server: StandaloneKube, interval: float = 0.05) -> None:
        self.server = server
        self.interval = interval
        self.controller = AloneFlux(server.emulator, None, world.WorldState(),
                                    Timings().scaled(0), {}, Path())
        self.outcomes = self.controller.outcomes
        self.outcomes.clear()  # none of the lab's failing releases
        self.handled = self.controller.handled
        self.forced = self.controller.forced
        self._task: asyncio.Task[None] | None = None

    async def _passes(self) -> None:
        while True:
            await self.controller.flux()
            await asyncio.sleep(self.interval)

    async def _start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._passes(), name="lab-flux")

    async def _stop(self) -> None:
        """Cancel the passes and wait until the last one ended (raising the error that ended
        them, if one did)."""
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    def _on_loop(self, coro: Any) -> Any:
        assert self.server.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.server.loop).result(10)

    def __enter__(self) -> StandaloneFlux:
        self._on_loop(self._start())
        return self

    def __exit__(self, *exc: object) -> None:
        self._on_loop(self._stop())
