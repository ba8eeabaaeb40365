"""``terraform apply -auto-approve`` of whatever Terraform plans at that moment: what tests use
to set state up or to play someone else's run. drbot itself has no such call: its runbooks plan,
check the plan and apply exactly that file (adapters.terraform.apply_plan,
handlers.iac.planned_apply)."""

from __future__ import annotations

from collections.abc import Sequence

from adapters import terraform
from adapters.progress import Hooks
from adapters.terraform import ApplyResult, TerraformConfig


def unchecked_apply(config: TerraformConfig, *, targets: Sequence[str] = (),
                    replace: Sequence[str] = (), destroy: bool = False,
                    hooks: Hooks) -> ApplyResult:
    """``terraform apply -json -auto-approve``: summary, applied addresses, safe outputs."""
    stream = terraform._operation(config, "apply", hooks, targets, replace, destroy)  # noqa: SLF001
    return ApplyResult(summary=stream.summary, resources=stream.applied, outputs=stream.outputs)
