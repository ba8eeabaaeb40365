"""Prompt, bounded shutdown of `drbot worker` (SIGTERM from systemd, Kubernetes or a test).

Idle: rq 3.0 reads its worker's command channel on a redis-py ``PubSubWorkerThread`` that blocks
for up to 60 s per read (rq ``worker/base.py`` ``subscribe``: ``run_in_thread(sleep_time=60)``),
and at teardown it sends UNSUBSCRIBE and then stops that thread, which since redis-py 5 joins it
without a limit (redis-py ``client.py`` ``PubSubWorkerThread.stop``). The UNSUBSCRIBE reply can
wake the reader before its stop flag is cleared; it then sleeps the full 60 s again and the worker
with it (measured: 1 in 4 idle stops took 60.0 s). Here the reader reads in short slices and is
stopped before anything else, so an idle worker exits at once.

Busy: a rebuild can take an hour, longer than any stop timeout, so waiting for the job (rq's warm
shutdown) ends in a SIGKILL with the job's state unknown. Instead the worker passes SIGTERM to its
work horse, whose heartbeat stops the running step the way a cancel does (the step's subprocesses
get SIGINT, then firmer signals after the grace); the runner records the step as interrupted and
the job as failed, so `/dr retry` resumes it. The worker waits for its horse at most
``stop_seconds`` (``2 × cancel grace + 10``: the heartbeat's own last resort plus a margin), then
kills it and exits. Deployments give it that long (chart ``worker.terminationGracePeriodSeconds``,
systemd ``TimeoutStopSec``, compose ``stop_grace_period``; see docs/deploy.md).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType
from typing import Any

from bot.worker import heartbeat

log = logging.getLogger("drbot.worker")
PUBSUB_SLICE = 0.5  # seconds one read of the command channel may block
MARGIN = 10.0  # beyond the heartbeat's own hard stop (2 × grace + 5 s)


def stop_seconds(cancel_grace: float) -> float:
    """The longest a busy worker takes to stop after SIGTERM."""
    return 2 * cancel_grace + MARGIN


class PromptStop:
    """Mixed into drbot's rq Worker (before ``rq.Worker`` in the bases)."""

    stop_grace: float = stop_seconds(10.0)
    connection: Any
    pubsub: Any
    pubsub_thread: Any
    pubsub_channel_name: str
    horse_pid: int

    def subscribe(self) -> None:
        """rq's subscription, read in short slices so that stopping the reader is prompt."""
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})  # type: ignore[attr-defined]
        self.pubsub_thread = self.pubsub.run_in_thread(
            sleep_time=PUBSUB_SLICE, daemon=True,
            exception_handler=self._pubsub_exception_handler)  # type: ignore[attr-defined]

    def unsubscribe(self) -> None:
        """Stop the reader first (it closes its connection, which ends the subscription on the
        server); never wait for it longer than a few slices."""
        thread, self.pubsub_thread = self.pubsub_thread, None
        if thread is None:
            return
        # stop() clears the reader's flag, then (redis-py 5+) joins it without a limit: let it
        # do that on a helper thread and wait here a bounded time.
        threading.Thread(target=thread.stop, name="pubsub-stop", daemon=True).start()
        thread.join(4 * PUBSUB_SLICE)
        if thread.is_alive():
            log.warning("the command channel reader did not stop; leaving it (a daemon thread)")
        else:
            self.pubsub.close()

    def setup_work_horse_signals(self) -> None:
        """In the work horse: SIGINT is for its subprocesses (a cancel), SIGTERM asks the running
        job to checkpoint (the heartbeat stops its step)."""
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, _interrupt_job)

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        """rq's warm shutdown (raises StopRequested when idle); when busy, the job is told to
        checkpoint and the horse gets ``stop_grace`` seconds to end."""
        super().request_stop(signum, frame)  # type: ignore[misc]
        pid = self.horse_pid
        if not pid:
            return
        log.warning("stopping: asking the running job to checkpoint (at most %.0fs)",
                    self.stop_grace)
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        timer = threading.Timer(self.stop_grace, self._cut_off, args=(pid,))
        timer.daemon = True
        timer.start()

    def _cut_off(self, pid: int) -> None:
        if self.horse_pid != pid:
            return
        log.error("the running job did not checkpoint within %.0fs; killing its work horse",
                  self.stop_grace)
        self.kill_horse(signal.SIGKILL)  # type: ignore[attr-defined]


def _interrupt_job(signum: int, frame: FrameType | None) -> None:
    heartbeat.STOPPING.set()
