"""Where a Longhorn restore stands, read from its Volume (adapters/kubernetes/longhorn/restore.py),
and what counts against Longhorn's per-node restore limit."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.kubernetes.longhorn.restore import RestoreState, restore_state

URL = "s3://bucket@us-east-1/?backup=backup-1&volume=v"


def volume(state: str = "", required: bool = False, initiated: bool = True,
           restore: dict[str, str] | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"state": state, "restoreRequired": required,
                              "restoreInitiated": initiated, "currentNodeID": "n1"}
    if restore is not None:
        status["conditions"] = [{"type": "Restore", **restore}]
    return {"metadata": {"name": "restore-apps-web"}, "spec": {"fromBackup": URL},
            "status": status}


@pytest.mark.parametrize(("obj", "state"), [
    (volume(initiated=False), RestoreState.PENDING),
    (volume("attached", True, restore={"status": "True", "reason": "RestoreInProgress"}),
     RestoreState.RESTORING),
    (volume("attached", False, restore={"status": "False", "reason": ""}), RestoreState.FINISHING),
    (volume("detached", False, restore={"status": "False", "reason": ""}), RestoreState.RESTORED),
    (volume("detached", False, restore={"status": "False", "reason": "RestoreFailure",
                                         "message": "no blocks"}), RestoreState.FAILED),
])
def test_states(obj: dict[str, Any], state: RestoreState) -> None:
    live = restore_state(obj)
    assert live.state is state and live.from_backup == URL and live.node == "n1"


def test_only_pending_and_running_restores_count_against_the_limit() -> None:
    """A volume restored long ago and attached since (an app uses it) is no restore: counting
    it would let old restores use up the limit and the scheduler would never start one."""
    assert [s for s in RestoreState if s.busy] == [RestoreState.PENDING, RestoreState.RESTORING]
    assert not restore_state(volume("attached", restore={"status": "False"})).state.busy
