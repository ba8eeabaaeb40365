"""Could each scenario's runbook run now? Its own preflight, evaluated on live state.

Scenario 1 builds /dr reconcile's runbook for each Kustomization and runs its preflight (refused
when suspended). Scenario 2 runs /dr rebuild-node's preflight (handlers/preflight.check_nodes:
drbot's own nodes, etcd quorum, Longhorn's last healthy replicas) for every node, as if that node
had died now. Scenario 3 runs /dr rebuild-host's (etcd quorum for all the host's servers at once,
drbot's own nodes) for every Proxmox host and names the volumes whose every replica lives there
(rebuild-host goes on, but their data must come from backups). Scenario 4 runs /dr
rebuild-cluster's (drbot must run standalone; every volume needs a restorable backup). Its check
that the host was already replaced cannot apply before a disaster and is left out.

What the runbooks need besides live state comes from the doctor's own checks, run once: the
Proxmox token and privileges, the IaC checkout at its revision, Terraform valid with its state
readable and unlocked, the secret files; the object stores from the backup facts' reads. Not
run here, being slow or meaningless for a dead machine: SSH to each node and the playbooks'
syntax check (/dr doctor runs them daily).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from adapters.errors import AdapterError
from bot.doctor.result import Line, System, fail
from bot.errors import CommandError, ConfigError

if TYPE_CHECKING:
    from bot.config.inventory import Inventory
    from bot.readiness.readonce import ReadingServices
    from bot.watch.facts import Facts

EXPECTED = (CommandError, AdapterError, ConfigError)


@dataclass
class Target:
    """One thing the scenario could strike (a node, a host), and whether the runbook could run."""

    name: str
    refusal: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.refusal


@dataclass
class Verdict:
    scenario: int
    title: str
    command: str
    targets: list[Target] = field(default_factory=list)
    blockers: list[str] = field(default_factory=list)  # apply to every target (credentials...)

    @property
    def runnable(self) -> bool:
        return not self.blockers and bool(self.targets) and all(t.ok for t in self.targets)

    def render(self) -> list[str]:
        bad = [t for t in self.targets if not t.ok]
        if self.runnable:
            head = f"runnable now for all {len(self.targets)}"
        elif not self.targets and not self.blockers:
            head = "nothing to check"
        else:
            head = (f"NOT runnable for {len(bad) if not self.blockers else len(self.targets)} "
                    f"of {len(self.targets)}")
        lines = [f"  runnable now? {head}"]
        lines += [f"    ✗ {b}" for b in self.blockers]
        lines += [f"    ✗ {t.name}: {first_sentence(t.refusal)}" for t in bad]
        lines += [f"    ! {t.name}: {w}" for t in self.targets for w in t.warnings]
        return lines


def first_sentence(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"


def attempt(check: Callable[[], Any]) -> str:
    """'' when the check passes, else its refusal."""
    try:
        check()
    except EXPECTED as exc:
        return str(exc)
    return ""


def doctor_lines(services: ReadingServices, inventory: Inventory) -> list[Line]:
    """The doctor's checks a recovery runbook depends on (bot.doctor), run once."""
    from bot.doctor import iac, proxmox

    lines = proxmox.check(services, inventory)  # type: ignore[arg-type]
    if inventory.iac is not None:
        lines += iac.revision_lines(inventory.iac) + iac.terraform_lines(services)  # type: ignore[arg-type]
        lines += iac.file_lines(inventory.iac)
    else:
        lines.append(fail(System.IAC, "checkout", "no `iac` section in the inventory",
                          "add it (README: the inventory file)"))
    return lines


def reds(lines: list[Line], *systems: System) -> list[str]:
    return [f"{line.system.value} {line.subject}: {line.detail}"
            + (f" (fix: {line.fix})" if line.fix else "") for line in lines
            if line.red and line.system in systems]


def scenario_1(services: ReadingServices, inventory: Inventory) -> Verdict:
    from adapters.kubernetes import flux
    from bot.runbook import PlanContext
    from handlers import reconcile

    verdict = Verdict(1, "reconcile (Flux re-applies from Git)", "/dr reconcile")
    try:
        found = flux.list_kustomizations(services.kube)  # type: ignore[arg-type]
    except AdapterError as exc:
        verdict.blockers.append(f"the Kustomizations cannot be listed: {exc}")
        return verdict
    for ks in found:
        ref = f"{ks.namespace}/{ks.name}"
        target = Target(f"Kustomization {ref}")

        def check(ref: str = ref) -> None:
            ctx = PlanContext({"kustomization": ref}, inventory, services)  # type: ignore[arg-type]
            built = reconcile.reconcile(ctx)
            if built.preflight:
                built.preflight()

        target.refusal = attempt(check)
        verdict.targets.append(target)
    return verdict


def scenario_2(services: ReadingServices, inventory: Inventory, lines: list[Line]) -> Verdict:
    from handlers import preflight

    verdict = Verdict(2, "a node (rebuild one K3s node)", "/dr rebuild-node")
    verdict.blockers = reds(lines, System.PROXMOX, System.IAC)
    kube = services.kube
    for name in inventory.nodes:
        verdict.targets.append(Target(f"node {name}", attempt(
            lambda name=name: preflight.check_nodes(kube, inventory, [name]))))  # type: ignore[arg-type]
    return verdict


def scenario_3(services: ReadingServices, inventory: Inventory, lines: list[Line]
               ) -> tuple[Verdict, dict[str, list[str]]]:
    """The verdict, and per host the volumes (PVC or name) whose data it would take along."""
    from handlers import preflight, rebuild_host

    verdict = Verdict(3, "a host (rebuild every VM of a Proxmox host)", "/dr rebuild-host")
    verdict.blockers = reds(lines, System.PROXMOX, System.IAC)
    kube = services.kube
    lost: dict[str, list[str]] = {}
    for host in sorted({n.host for n in inventory.nodes.values()}):
        names = rebuild_host.host_nodes(inventory, host)

        def check(names: list[str] = names) -> None:
            preflight.check_etcd(kube, inventory, names)  # type: ignore[arg-type]
            rebuild_host.check_drbot_running(kube, inventory, names)  # type: ignore[arg-type]

        target = Target(f"host {host} ({', '.join(names)})", attempt(check))
        try:
            gone = rebuild_host.lost_volumes(kube, names)  # type: ignore[arg-type]
        except AdapterError as exc:
            target.warnings.append(f"the volumes it would take along are unknown: {exc}")
            gone = []
        lost[host] = [v["pvc"] or v["volume"] for v in gone]
        if gone:
            target.warnings.append(f"{len(gone)} volume(s) have every replica there and would "
                                   "come from backups: " + ", ".join(lost[host][:8])
                                   + (" …" if len(gone) > 8 else ""))
        verdict.targets.append(target)
    return verdict, lost


def scenario_4(services: ReadingServices, inventory: Inventory, lines: list[Line],
               facts: Facts) -> Verdict:
    from handlers import rebuild_cluster

    verdict = Verdict(4, "the whole cluster (rebuild from Terraform, Ansible, Flux, backups)",
                      "/dr rebuild-cluster")
    verdict.blockers = reds(lines, System.PROXMOX, System.IAC)
    verdict.blockers += [f"{s.what} cannot be read: {s.error}" for side, s in facts.sights.items()
                         if side.startswith("store:") and s.configured and s.error]
    if inventory.iac is not None and not inventory.iac.flux_bootstrap:
        verdict.blockers.append("iac.flux_bootstrap is not set: phase 2 cannot bootstrap Flux")

    verdict.targets.append(Target("the cluster", attempt(
        lambda: rebuild_cluster.check_cluster(services.kube, inventory))))  # type: ignore[arg-type]
    return verdict
