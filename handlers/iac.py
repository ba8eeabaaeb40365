"""Step helpers shared by the runbooks that rebuild machines: Terraform, Ansible and SSH.

Everything a subprocess gets comes from the inventory (addresses, playbooks, extravars, hosts);
chat text only ever chose which inventory entries to use. The helpers are idempotent, report
progress that names the step, its target and the elapsed time, and return small dicts that the
runner checkpoints in the job record.

The SSH helpers keep a per-job known_hosts (``<ansible dir>/artifacts/drbot-<job>/known_hosts``,
the same file the job's Ansible runs use): a rebuilt machine's old host key is removed from it and
the new one is accepted on first contact, as ``StrictHostKeyChecking=accept-new`` would.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from adapters.errors import AdapterError, Cancelled, Refused, TimedOut
from adapters.pacing import pause_after
from adapters.progress import Hooks, Progress, one_line
from adapters.subprocesses import minimal_env
from bot.errors import CommandError, ConfigError

if TYPE_CHECKING:
    from adapters.terraform import ChangeSummary
    from adapters.terraform_plan import Action
    from bot.config.inventory import Iac, Inventory, Node
    from bot.runbook import Services, StepContext

SSH_POLL = 0.5  # the longest pause between two tries; the first ones are shorter (pacing.py)
KEYSCAN_TIMEOUT = 5


# -- inventory ----------------------------------------------------------------------------------


def inventory_node(inventory: Inventory, name: str) -> Node:
    """The inventory entry of ``name``, or a refusal listing the nodes that exist."""
    node = inventory.nodes.get(name)
    if node is None:
        known = ", ".join(sorted(inventory.nodes)) or "none (the inventory lists no nodes)"
        raise CommandError(f"{name} is not a node of the inventory; known nodes: {known}")
    return node


def require_iac(inventory: Inventory) -> Iac:
    if inventory.iac is None:
        raise CommandError("the inventory has no `iac` section (Terraform and Ansible projects); "
                           "this command needs it: add it, see the README's inventory example")
    return inventory.iac


def job_dir(inventory: Inventory, job_id: str) -> str:
    return require_iac(inventory).job_dir(job_id)


def known_hosts_file(inventory: Inventory, job_id: str) -> str:
    return os.path.join(job_dir(inventory, job_id), "known_hosts")


# -- revision -----------------------------------------------------------------------------------


def revision(services: Services) -> str:
    """The IaC revision approvals bind to; refuses a dirty or different checkout (adapter errors).

    Terraform and Ansible may live in one repository or two; both are checked.
    """
    from adapters.terraform import TerraformConfig, check_revision

    iac = require_iac(services.inventory)
    try:
        terraform = services.terraform
    except ConfigError as exc:
        raise CommandError(str(exc)) from None
    parts = [f"terraform@{check_revision(terraform) or 'not-a-checkout'}"]
    ansible = TerraformConfig(iac.ansible.dir, revision=iac.ansible.revision)
    parts.append(f"ansible@{check_revision(ansible) or 'not-a-checkout'}")
    return " ".join(parts)


# -- progress -----------------------------------------------------------------------------------


def timed(step: StepContext, target: str = "") -> Hooks:
    """The step's hooks, with every progress line naming the step, target and elapsed time."""
    start = time.monotonic()

    def report(p: Progress) -> None:
        elapsed = int(time.monotonic() - start)
        where = p.target or target
        head = f"{step.step}" + (f" [{where}]" if where else "") + f" +{elapsed}s"
        step.hooks.report(replace(p, message=f"{head}: {p.message}", target=where))
    return Hooks(report=report, cancelled=step.hooks.cancelled, spawned=step.hooks.spawned)


def say(step: StepContext, message: str, target: str = "", status: str = "") -> None:
    step.hooks.report(Progress(message, target=target, status=status))


# -- Terraform ----------------------------------------------------------------------------------


def terraform_apply(step: StepContext, addresses: Sequence[str], wanted: Action | None = None,
                    what: str | None = None) -> dict[str, Any]:
    """Create the inventory's ``addresses`` with Terraform (or, with ``wanted`` DELETE, destroy
    them); a no-op once that is done.

    Planned first and applied only as checked (``planned_apply``): that action on these
    addresses and nothing else. Never ``-replace``: the runbooks destroy what must go before
    they create, so a retry after a successful step finds nothing to do instead of replacing a
    fresh machine. ``what`` names the machines in progress lines (else the addresses).
    """
    from adapters import terraform
    from adapters.terraform_plan import Action

    terraform.check_backend(step.services.terraform)
    # Recorded before the first effect: a retry acts on the same addresses, finds the machines
    # an earlier attempt created and adds nothing; the result must still say this job did it.
    targets = step.intent("apply", lambda: {"targets": list(addresses)})["targets"]
    earlier = step.resumed("apply")
    s, resources = planned_apply(step, list(targets), wanted or Action.CREATE,
                                 timed(step, what or ", ".join(targets)))
    return {"added": s.add, "changed": s.change, "destroyed": s.remove, "imported": s.imported,
            "resources": resources, "earlier_attempt": earlier}


def planned_apply(step: StepContext, targets: list[str], wanted: Action, hooks: Hooks
                  ) -> tuple[ChangeSummary, list[str]]:
    """``terraform plan -out`` into the job's folder, refuse anything but ``wanted`` on
    ``targets``, then ``terraform apply`` of exactly that plan file.

    Every attempt plans anew (a retry never trusts an earlier attempt's file: the machines may
    have changed since) and the file is removed afterwards (a plan file holds the
    configuration's variable values). A plan with nothing to do is not applied.
    """
    from adapters import terraform
    from adapters.terraform import ChangeSummary
    from adapters.terraform_plan import Action, describe, effective, unexpected

    config = step.services.terraform
    directory = job_dir(step.inventory, step.job_id)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    plan_file = os.path.join(directory, step.step.replace(" ", "-") + ".tfplan")
    destroy = wanted == Action.DELETE
    try:
        planned = terraform.plan(config, targets=targets, destroy=destroy, out=plan_file,
                                 hooks=hooks)
        refused = unexpected(planned.changes, wanted, targets)
        if refused:
            only = "deletions" if destroy else "creations"
            raise Refused(
                f"terraform would {describe(refused)}; drbot applies only {only} of the "
                f"inventory's addresses here, so nothing was applied. Run `terraform plan` "
                f"yourself, fix the drift, then /dr retry {step.job_id}")
        if not effective(planned.changes):
            say(step, "terraform plan: nothing to do", ", ".join(targets), "done")
            return ChangeSummary(), []
        result = terraform.apply_plan(config, plan_file, hooks=hooks)
        return result.summary, list(result.resources)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(plan_file)


def counted(result: dict[str, Any], key: str) -> str:
    """A Terraform step's count (``added``, ``destroyed``) for a summary, across attempts: a
    retry after an apply that went through finds nothing left to do."""
    if result.get("earlier_attempt") and not result.get(key):
        return f"{key} by an earlier attempt of this job"
    return f"{result.get(key, 0)} {key}"


# -- Ansible ------------------------------------------------------------------------------------


def join_extravars(inventory: Inventory, survivor: str | None) -> dict[str, Any]:
    """What a joining node needs to know, from the inventory only.

    A server joins the surviving server ``survivor`` and is never the cluster-init one again
    (``k3s_cluster_init: false`` outranks the host's inventory variable, extravars win in
    Ansible). The playbook reads ``k3s_join_server`` (an Ansible inventory host) and
    ``k3s_join_address`` (its SSH address from drbot's inventory) to build the server URL.
    """
    values: dict[str, Any] = {"k3s_cluster_init": False}
    if survivor is not None:
        entry = inventory.nodes[survivor]
        values["k3s_join_server"] = entry.ansible_host
        values["k3s_join_address"] = entry.ssh_address or entry.ansible_host
    return values


def run_playbook(step: StepContext, playbook: str, hosts: Sequence[str],
                 extravars: dict[str, Any], reset: Sequence[str] = ()) -> dict[str, Any]:
    """Run an inventory playbook limited to ``hosts`` with the job's own known_hosts."""
    from dataclasses import replace as with_fields

    from adapters import ansible

    config = step.services.ansible
    config = with_fields(config, extravars={**config.extravars, **extravars})
    directory = job_dir(step.inventory, step.job_id)
    ident = f"{step.step.replace(' ', '-')}-{int(time.time() * 1000)}"
    result = ansible.run_playbook(
        config, playbook, limit=":".join(hosts), known_hosts_reset=list(reset),
        hooks=timed(step, ",".join(hosts)), artifact_dir=directory, ident=ident,
        known_hosts=known_hosts_file(step.inventory, step.job_id))
    changed = result.stats.get("changed", {})
    return {"playbook": playbook, "hosts": list(hosts), "status": result.status,
            "changed": {h: int(changed.get(h, 0)) for h in hosts}}


# -- SSH ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SshEndpoint:
    node: str
    address: str
    port: int

    @property
    def known_name(self) -> str:
        """How ssh files this endpoint in known_hosts."""
        return self.address if self.port == 22 else f"[{self.address}]:{self.port}"


def ssh_endpoint(inventory: Inventory, name: str) -> SshEndpoint:
    return node_endpoint(name, inventory.nodes[name])


def node_endpoint(name: str, node: Node) -> SshEndpoint:
    return SshEndpoint(name, node.ssh_address or node.ansible_host, node.ssh_port)


def ssh_banner(endpoint: SshEndpoint, timeout: float = 2.0) -> bool:
    """True when an SSH server answers there (its first line starts with SSH-2.0-)."""
    try:
        with socket.create_connection((endpoint.address, endpoint.port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return sock.recv(64).startswith(b"SSH-2.0-")
    except OSError:
        return False


def scan_host_keys(endpoint: SshEndpoint) -> list[str]:
    """The host key lines the endpoint serves now (``ssh-keyscan``), [] when it does not answer."""
    try:
        found = subprocess.run(  # noqa: S603 - an argument list from the inventory
            ["ssh-keyscan", "-T", str(KEYSCAN_TIMEOUT), "-p", str(endpoint.port),
             endpoint.address], capture_output=True, text=True, env=minimal_env(),
            timeout=KEYSCAN_TIMEOUT + 5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return sorted(line.strip() for line in found.stdout.splitlines()
                  if line.strip() and not line.startswith("#"))


def fingerprints(lines: Sequence[str]) -> list[str]:
    """SHA256 fingerprints of known_hosts lines (``ssh-keygen -lf -``)."""
    if not lines:
        return []
    found = subprocess.run(["ssh-keygen", "-lf", "-"], input="\n".join(lines) + "\n",  # noqa: S607
                           capture_output=True, text=True, timeout=30, check=False,
                           env=minimal_env())
    return sorted({part for line in found.stdout.splitlines() for part in line.split()
                   if part.startswith("SHA256:")})


def _forget(known_hosts: str, endpoint: SshEndpoint) -> None:
    if not os.path.exists(known_hosts):
        return
    done = subprocess.run(["ssh-keygen", "-R", endpoint.known_name, "-f", known_hosts],  # noqa: S607
                          capture_output=True, text=True, timeout=30, check=False,
                          env=minimal_env())
    if done.returncode != 0:
        raise AdapterError(f"could not remove the old SSH key of {endpoint.node} from "
                           f"{known_hosts}: {one_line(done.stderr, 200)}")
    old = known_hosts + ".old"
    if os.path.exists(old):
        os.remove(old)


def _remember(known_hosts: str, lines: Sequence[str]) -> None:
    os.makedirs(os.path.dirname(known_hosts), mode=0o700, exist_ok=True)
    fd = os.open(known_hosts, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as out:
        out.writelines(line + "\n" for line in lines)


def pin_host_key(step: StepContext, endpoint: SshEndpoint) -> list[str]:
    """Record the key a machine serves before it is rebuilt; its fingerprints ([] if down)."""
    lines = scan_host_keys(endpoint) if ssh_banner(endpoint) else []
    if lines:
        known_hosts = known_hosts_file(step.inventory, step.job_id)
        _forget(known_hosts, endpoint)
        _remember(known_hosts, lines)
    return fingerprints(lines)


def wait_for_ssh(step: StepContext, endpoints: Sequence[SshEndpoint], timeout: float
                 ) -> dict[str, list[str]]:
    """Wait until every endpoint answers SSH, then accept its (new) host key for this job.

    Returns the fingerprints now trusted per node. The old key of each endpoint is dropped
    first: these machines were just rebuilt, so a different key is expected. The machines are
    waited on at once (each in a thread: a VM that boots late does not hold up reading the keys
    of the others); the known_hosts file is edited by this thread alone, in inventory order.
    """
    hooks = timed(step)
    deadline = time.monotonic() + timeout
    known_hosts = known_hosts_file(step.inventory, step.job_id)
    trusted: dict[str, list[str]] = {}
    for endpoint in endpoints:
        hooks.report(Progress(f"waiting for SSH on {endpoint.node} "
                              f"({endpoint.address}:{endpoint.port})",
                              target=endpoint.node, status="waiting"))
    abandon = threading.Event()
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(endpoints))),
                            thread_name_prefix="ssh-wait") as pool:
        waits = [pool.submit(_host_keys, step, e, deadline, timeout, abandon) for e in endpoints]
        try:
            for endpoint, waiting in zip(endpoints, waits, strict=True):
                lines = waiting.result()
                _forget(known_hosts, endpoint)
                _remember(known_hosts, lines)
                trusted[endpoint.node] = fingerprints(lines)
                hooks.report(Progress(f"{endpoint.node} answers SSH; host key "
                                      f"{', '.join(trusted[endpoint.node])} accepted for this job",
                                      target=endpoint.node, status="ready"))
        finally:
            abandon.set()  # one failed or was cancelled: the others stop waiting too
    return trusted


def _host_keys(step: StepContext, endpoint: SshEndpoint, deadline: float, timeout: float,
               abandon: threading.Event) -> list[str]:
    """Poll one endpoint until it answers SSH; its host key lines."""
    where = f"{endpoint.address}:{endpoint.port}"
    started = time.monotonic()
    while True:
        if step.cancelled() or abandon.is_set():
            raise Cancelled(f"stopped waiting for SSH on {endpoint.node}; the VM is left "
                            "running as Terraform created it")
        lines = scan_host_keys(endpoint) if ssh_banner(endpoint) else []
        if lines:
            return lines
        if time.monotonic() >= deadline:
            raise TimedOut(f"{endpoint.node} did not answer SSH on {where} within "
                           f"{timeout:.0f}s after Terraform created its VM. Check the "
                           "VM's console in Proxmox (boot, network, cloud-init)")
        now = time.monotonic()
        time.sleep(min(pause_after(now - started, SSH_POLL), deadline - now))
