"""Restoring many Longhorn volumes at once, bounded as Longhorn bounds them.

A rebuilt cluster waits mostly on its data: restoring twenty volumes one after the other takes
twenty restores, while Longhorn runs up to ``concurrent-backup-restore-per-node-limit`` restores
on each node at a time (it holds any beyond that). So the scheduler keeps at most that limit times
the number of Ready nodes restoring (the inventory's ``restores.per_node_limit`` overrides the
cluster's setting), starts the next volume as soon as one finishes, and waits on all of them with
one LIST per poll. Order: the inventory's ``restores.priorities`` first (CNPG volumes, the
volumes other apps depend on), then the largest first, since the largest restore is the critical
path of the whole phase.

Crash consistency without a checkpoint: every restore goes into a Volume named after its target
PVC (``restore-<ns>-<pvc>``), so a retry (after a failure, a cancel or a killed worker) finds what
an earlier run left. A PVC bound to its volume is done and skipped; a Volume still restoring from
the same backup is adopted and waited on, never started again; a Volume whose restore failed, with
no PV yet, holds no data and is deleted and started again.

Cancel stops the waiting only: Longhorn cannot be told to stop a restore cleanly, so the message
names the volumes it still restores (delete a Volume to abandon it; a retry adopts them).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from adapters.errors import AdapterError, Cancelled, NotFound, TimedOut, Unreachable
from adapters.progress import Progress

if TYPE_CHECKING:
    from adapters.kubernetes.client import Kube
    from adapters.kubernetes.longhorn.backups import Backup
    from adapters.kubernetes.longhorn.restore import LiveRestore, PvcShape
    from bot.config.inventory import Inventory
    from bot.runbook import StepContext

GIB = 1024**3
# The poll interval bounds what drbot adds after a restore finishes (at most one interval);
# each poll costs two LIST calls whatever the number of volumes.
POLL = 1.0
_SLICE = 0.25  # longest single sleep, so a cancel is seen at once


class VolumeRestoreState(StrEnum):
    """One volume's state in this run, as the card and the failure report name it."""

    QUEUED = "queued"
    RESTORING = "restoring"
    RESTORED = "restored"
    FAILED = "failed"


@dataclass(frozen=True)
class Wanted:
    """One volume to restore: a completed backup into the PVC ``namespace/pvc``."""

    backup: Backup
    namespace: str
    pvc: str
    replicas: int = 3
    shape: PvcShape | None = None  # the PVC's spec; default: what the backup recorded

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.pvc}"

    @property
    def size(self) -> int:
        raw = self.backup.volume_size or self.backup.size
        return int(raw) if raw.isdigit() else 0


@dataclass(frozen=True)
class Limit:
    """How many restores may run at once: per node, times the Ready nodes."""

    per_node: int
    nodes: int
    source: str

    @property
    def total(self) -> int:
        return self.per_node * max(self.nodes, 1)


@dataclass
class Track:
    """One volume's progress in this run."""

    wanted: Wanted
    volume: str
    shape: PvcShape | None = None
    outcome: VolumeRestoreState = VolumeRestoreState.QUEUED
    message: str = ""
    percent: int = 0
    adopted: bool = False


def order(wanted: Iterable[Wanted], priorities: list[str]) -> list[Wanted]:
    """Inventory priorities first (in their order; ``ns/pvc`` patterns, ``*`` allowed), then the
    largest first: the longest restore started first ends the phase soonest."""
    def rank(w: Wanted) -> int:
        return next((i for i, p in enumerate(priorities) if fnmatchcase(w.ref, p)), len(priorities))
    return sorted(wanted, key=lambda w: (rank(w), -w.size, w.ref))


def limit_for(kube: Kube, inventory: Inventory) -> Limit:
    """The inventory's override, else Longhorn's own setting; over the Ready nodes."""
    from adapters.kubernetes import longhorn, nodes

    ready = max(len([n for n in nodes.list_nodes(kube) if n.ready]), 1)
    override = inventory.restores.per_node_limit
    if override is not None:
        return Limit(override, ready, "inventory restores.per_node_limit")
    per_node, source = longhorn.restore_limit(kube)
    if per_node == 0:
        raise AdapterError("Longhorn's concurrent-backup-restore-per-node-limit is 0: restoring "
                           "from backups is disabled. Raise it in Longhorn's settings, or set "
                           "restores.per_node_limit in the inventory.")
    return Limit(per_node, ready, source)


def human(size: int) -> str:
    return f"{size / GIB:.1f} GiB"


class RestoreScheduler:
    """Starts, adopts and waits on the restores of one step; ``run`` returns its result."""

    def __init__(self, step: StepContext, wanted: list[Wanted], *, timeout: float,
                 poll: float = POLL, target: str = "Longhorn volumes") -> None:
        from adapters.kubernetes import longhorn

        self.step, self.kube, self.timeout, self.poll, self.target = (
            step, step.services.kube, timeout, poll, target)
        priorities = step.inventory.restores.priorities
        self.tracks = [Track(w, longhorn.restored_volume_name(w.namespace, w.pvc))
                       for w in order(wanted, priorities)]
        self.limit = limit_for(self.kube, step.inventory)
        self.last_card = ""
        self.started: list[str] = []

    # -- the loop -----------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        self.say(f"{len(self.tracks)} volume(s) to restore, at most {self.limit.per_node} per "
                 f"node on {self.limit.nodes} node(s) at once ({self.limit.source}); order: "
                 + ", ".join(t.wanted.ref for t in self.tracks))
        self.resume()
        deadline = time.monotonic() + self.timeout
        while True:
            live = self.observe()
            self.start_next(live)
            self.card()
            if not self.waiting():
                break
            if self.step.hooks.cancelled():
                raise Cancelled(self.cancel_message())
            if time.monotonic() >= deadline:
                raise TimedOut(self.failure_text(f"still restoring after {self.timeout:.0f}s"))
            self.pause()
        failed = [t for t in self.tracks if t.outcome is VolumeRestoreState.FAILED]
        if failed:
            raise AdapterError(self.failure_text(""))
        return self.result()

    def waiting(self) -> list[Track]:
        return [t for t in self.tracks
                if t.outcome in (VolumeRestoreState.QUEUED, VolumeRestoreState.RESTORING)]

    def pause(self) -> None:
        end = time.monotonic() + self.poll
        while (left := end - time.monotonic()) > 0 and not self.step.hooks.cancelled():
            time.sleep(min(_SLICE, left))

    # -- what an earlier run left -------------------------------------------------------------

    def resume(self) -> None:
        """Skip PVCs already restored, adopt restores Longhorn already runs, and clear failed
        restore volumes of an earlier run so they start afresh."""
        from adapters.kubernetes import longhorn

        live = self.live_restores()
        for t in self.tracks:
            w = t.wanted
            if longhorn.pvc_bound_to(self.kube, w.pvc, w.namespace, t.volume):
                t.outcome, t.adopted, t.percent = VolumeRestoreState.RESTORED, True, 100
                continue
            found = live.get(t.volume)
            if found is None:
                continue
            if found.from_backup != w.backup.url:
                self.fail(t, f"Longhorn volume {t.volume} exists, restored from another backup; "
                          "delete it or restore into another PVC")
            elif longhorn.discard_failed_restore(self.kube, t.volume):
                self.say(f"{w.ref}: the earlier restore had failed ({found.message}); its "
                         f"volume {t.volume} was deleted and is restored again", w.ref)
            else:
                t.outcome, t.adopted = VolumeRestoreState.RESTORING, True
        adopted = [t.wanted.ref for t in self.tracks
                   if t.adopted and t.outcome is VolumeRestoreState.RESTORING]
        done = [t.wanted.ref for t in self.tracks if t.adopted and t.outcome is VolumeRestoreState.RESTORED]
        if adopted:
            self.say("adopted restores Longhorn was already running: " + ", ".join(adopted))
        if done:
            self.say("already restored by an earlier run: " + ", ".join(done))

    # -- one poll -----------------------------------------------------------------------------

    def live_restores(self) -> dict[str, LiveRestore]:
        from adapters.kubernetes import longhorn

        return longhorn.list_restores(self.kube)

    def observe(self) -> dict[str, LiveRestore]:
        """One LIST of volumes (and of engines for progress); finish what Longhorn finished."""
        from adapters.kubernetes import longhorn
        from adapters.kubernetes.longhorn.restore import RestoreState

        try:
            live = self.live_restores()
            progress = longhorn.restore_progress(self.kube) if self.running() else {}
        except Unreachable:
            return {}  # the API blinked: the next poll sees it, the deadline bounds it
        for t in self.running():
            found = live.get(t.volume)
            if found is None:
                continue
            t.percent = progress.get(t.volume, t.percent)
            if found.state is RestoreState.FAILED:
                self.fail(t, f"Longhorn failed to restore it: {found.message}")
            elif found.state is RestoreState.RESTORED:
                self.finish(t)
        return live

    def running(self) -> list[Track]:
        return [t for t in self.tracks if t.outcome is VolumeRestoreState.RESTORING]

    def busy(self, live: dict[str, LiveRestore]) -> int:
        """Restores Longhorn runs now (ours and anyone's): what counts against its limit. A
        volume restored long ago and attached since is not one."""
        return len([r for r in live.values() if r.state.busy])

    def start_next(self, live: dict[str, LiveRestore]) -> None:
        from adapters.kubernetes import longhorn

        free = self.limit.total - self.busy(live)
        for t in [t for t in self.tracks if t.outcome is VolumeRestoreState.QUEUED]:
            if free <= 0:
                return
            w = t.wanted
            try:
                t.shape = w.shape or t.shape or longhorn.recorded_shape(self.kube, w.backup)
                longhorn.start_restore(self.kube, w.backup, w.pvc, w.namespace, t.shape,
                                       volume_name=t.volume, replicas=w.replicas)
            except Unreachable:
                return  # tried again at the next poll
            except AdapterError as exc:
                self.fail(t, str(exc))
                continue
            t.outcome = VolumeRestoreState.RESTORING
            self.started.append(w.ref)
            free -= 1

    def finish(self, t: Track) -> None:
        """The PV and PVC of a restored volume; a namespace the new cluster lacks yet (its app
        is suspended) is created."""
        from adapters.kubernetes import longhorn, namespaces

        w = t.wanted
        for attempt in (1, 2):
            try:
                t.shape = w.shape or t.shape or longhorn.recorded_shape(self.kube, w.backup)
                longhorn.finish_restore(self.kube, t.volume, w.backup, w.pvc, w.namespace,
                                        t.shape, replicas=w.replicas)
                break
            except Unreachable:
                return  # still RESTORING: the next poll finishes it
            except NotFound as exc:
                if attempt == 2 or "namespace" not in str(exc).lower():
                    self.fail(t, str(exc))
                    return
                namespaces.ensure_namespace(self.kube, w.namespace)
                self.say(f"namespace {w.namespace} created", w.ref)
            except AdapterError as exc:
                self.fail(t, str(exc))
                return
        t.outcome, t.percent = VolumeRestoreState.RESTORED, 100

    def fail(self, t: Track, message: str) -> None:
        t.outcome, t.message = VolumeRestoreState.FAILED, message

    # -- what the thread shows ----------------------------------------------------------------

    def say(self, message: str, target: str = "") -> None:
        self.step.hooks.report(Progress(message, target=target or self.target))

    def card(self) -> None:
        """One progress line, sent only when it changed: done/total, bytes, what runs."""
        total = len(self.tracks)
        done = [t for t in self.tracks if t.outcome is VolumeRestoreState.RESTORED]
        size = sum(t.wanted.size for t in self.tracks)
        restored = sum(t.wanted.size * t.percent // 100 for t in self.tracks)
        running = self.running()
        failed = [t for t in self.tracks if t.outcome is VolumeRestoreState.FAILED]
        line = (f"{len(done)}/{total} volumes restored ({human(restored)} of {human(size)})"
                + (f"; restoring {len(running)}: " + ", ".join(t.wanted.ref for t in running[:5])
                   + (" ..." if len(running) > 5 else "") if running else "")
                + (f"; {len(failed)} failed" if failed else ""))
        if line != self.last_card:
            self.last_card = line
            self.step.hooks.report(Progress(line, target=self.target, task="restore",
                                            status="restoring" if self.waiting() else "done"))

    def states(self) -> str:
        return "; ".join(f"{t.wanted.ref}: {t.outcome.value}"
                         + (f" ({t.message})" if t.message else "") for t in self.tracks)

    def failure_text(self, why: str) -> str:
        failed = [t for t in self.tracks if t.outcome is VolumeRestoreState.FAILED]
        done = [t for t in self.tracks if t.outcome is VolumeRestoreState.RESTORED]
        head = (f"{len(failed)} of {len(self.tracks)} volume(s) not restored ({len(done)} done"
                + (f", {why}" if why else "") + ")")
        return (f"{head}. Every volume: {self.states()}. Fix the failed ones, then /dr retry "
                f"{self.step.job_id}: restored PVCs are kept, restores Longhorn still runs are "
                "adopted, only the others start again")

    def cancel_message(self) -> str:
        running = [f"{t.wanted.ref} ({t.volume})" for t in self.running()]
        queued = [t.wanted.ref for t in self.tracks if t.outcome is VolumeRestoreState.QUEUED]
        text = "stopped waiting for the restores"
        if running:
            text += ("; Longhorn still restores " + ", ".join(running) + " (a restore cannot be "
                     "stopped cleanly: delete a volume to abandon it; /dr retry adopts the rest)")
        if queued:
            text += f"; not started: {', '.join(queued)}"
        return text

    def result(self) -> dict[str, Any]:
        return {"restored": [{"pvc": t.wanted.ref, "backup": t.wanted.backup.name,
                              "volume": t.volume, "taken": t.wanted.backup.created}
                             for t in self.tracks],
                "started": self.started,
                "adopted": [t.wanted.ref for t in self.tracks if t.adopted],
                "limit": {"per_node": self.limit.per_node, "nodes": self.limit.nodes,
                          "source": self.limit.source}}


def restore_all(step: StepContext, wanted: list[Wanted], timeout: float,
                poll: float | None = None) -> dict[str, Any]:
    """Restore every wanted volume, bounded and in order; see the module's docstring."""
    if not wanted:
        return {"restored": [], "started": [], "adopted": []}
    every = poll if poll is not None else step.inventory.restores.poll_seconds
    return RestoreScheduler(step, wanted, timeout=timeout, poll=every).run()

