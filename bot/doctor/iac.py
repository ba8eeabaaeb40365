"""The IaC checkout: at the configured revision and clean, `terraform validate` passes with the
configured binary, the state is readable and not locked, each playbook drbot runs passes
`ansible-playbook --syntax-check`, and the secret files the runbooks read open."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from bot.doctor.result import Line, System, fail, guarded, ok, skip

if TYPE_CHECKING:
    from bot.config.inventory import Iac, Inventory
    from bot.worker.services import Services

IAC = System.IAC
SYNTAX_TIMEOUT = 120


def revision_lines(iac: Iac) -> list[Line]:
    from adapters.terraform import TerraformConfig, check_revision

    lines: list[Line] = []
    for what, directory, revision in (("terraform", iac.terraform.dir, iac.terraform.revision),
                                      ("ansible", iac.ansible.dir, iac.ansible.revision)):
        def check(directory: str = directory, revision: str | None = revision,
                  what: str = what) -> list[Line]:
            head = check_revision(TerraformConfig(directory, revision=revision))
            if not revision:
                return [ok(IAC, f"{what} checkout", f"{directory} at {head or 'no Git commit'} "
                                                    "(no revision pinned)")]
            return [ok(IAC, f"{what} checkout", f"{directory} at {head}, clean")]

        lines += guarded(IAC, f"{what} checkout", f"make {directory} a clean checkout of "
                         f"iac.{what}.revision", check)
    return lines


def terraform_lines(services: Services) -> list[Line]:
    from adapters import terraform_state
    from adapters.terraform import check_backend

    config = services.terraform

    def validate() -> list[Line]:
        errors = [d for d in terraform_state.validate(config) if d.severity == "error"]
        if errors:
            first = errors[0]
            return [fail(IAC, "terraform validate", f"{len(errors)} error(s), first: "
                         f"{first.summary} {first.detail}".strip(),
                         f"fix the configuration in {config.workdir} (run `terraform "
                         "validate` there)")]
        return [ok(IAC, "terraform validate", f"valid ({config.binary})")]

    def state() -> list[Line]:
        backend = check_backend(config)
        count = len(terraform_state.state_addresses(config))
        lines = [ok(IAC, "terraform state", f"readable ({backend} backend, {count} resources)")]
        if backend != "local":
            return lines + [skip(IAC, "terraform state lock", f"not checked: the {backend} "
                                 "backend has no read-only lock query")]
        lock = terraform_state.local_lock(config)
        if lock is not None:
            return lines + [fail(IAC, "terraform state lock", f"locked by {lock.who or '?'} "
                                 f"since {lock.created or '?'} ({lock.operation or '?'}, "
                                 f"lock id {lock.id})",
                                 "if that run is over, release the lock on the worker host: "
                                 f"`terraform force-unlock {lock.id}` in {config.workdir}")]
        return lines + [ok(IAC, "terraform state lock", "not locked")]

    return (guarded(IAC, "terraform validate", "check iac.terraform.dir and .binary", validate)
            + guarded(IAC, "terraform state", "check the backend's credentials and "
                      "iac.terraform.allow_local_state", state)
            + guarded(IAC, "terraform credentials", NO_LOGIN_FIX,
                      lambda: [credentials_line(services)]))


NO_LOGIN_FIX = ("give Terraform its own Proxmox token: PROXMOX_VE_API_TOKEN="
                "user@realm!name=secret in the worker's environment, or `api_token` in the "
                "provider block (docs/deploy.md, \"Terraform's Proxmox credentials\")")


def credentials_line(services: Services) -> Line:
    """Which Proxmox login Terraform will use. drbot never hands Terraform its own token, so the
    privileges Terraform needs to build VMs (bpg/proxmox docs: Datastore.AllocateSpace and
    Datastore.Audit on the disks' datastores, VM.Allocate, VM.Config.*) belong to that login;
    bot/doctor/terraform_proxmox.py checks them with it."""
    from adapters import terraform_state

    config = services.terraform
    login = terraform_state.proxmox_login(config)
    if login is None:
        return fail(IAC, "terraform credentials", "Terraform's Proxmox provider has no login: "
                    f"no api_token or username in a provider \"proxmox\" block of "
                    f"{config.workdir}, no PROXMOX_VE_API_TOKEN or PROXMOX_VE_USERNAME in the "
                    "worker's environment", NO_LOGIN_FIX)
    who = f"{login.kind} {login.identity}" if login.identity else f"the {login.kind}"
    pve = services.inventory.proxmox
    same = pve is not None and login.identity == f"{pve.user}!{pve.token_name}"
    return ok(IAC, "terraform credentials", f"Terraform signs in to Proxmox with {who} from "
              f"{login.source}" + (" (drbot's own token)" if same else ", not drbot's token")
              + "; its Datastore and VM privileges are Terraform's to hold (docs/deploy.md)")


def syntax_check(iac: Iac, *playbooks: str) -> str | None:
    """None when the playbooks parse, else ansible-playbook's first error line."""
    bin_dir = os.path.dirname(sys.executable)
    with tempfile.TemporaryDirectory(prefix="drbot-doctor-") as scratch:
        env = {"PATH": bin_dir + os.pathsep + os.environ.get("PATH", os.defpath),
               "HOME": os.environ.get("HOME", scratch), "ANSIBLE_LOCAL_TEMP": scratch,
               "ANSIBLE_RETRY_FILES_ENABLED": "0", "ANSIBLE_NOCOLOR": "1", "LANG": "C.UTF-8"}
        if iac.vault_password_file:
            env["ANSIBLE_VAULT_PASSWORD_FILE"] = iac.vault_password_file
        argv = ["ansible-playbook", "--syntax-check", "-i", iac.ansible.inventory, *playbooks]
        try:
            proc = subprocess.run(argv, cwd=iac.ansible.dir, env=env, capture_output=True,  # noqa: S603
                                  text=True, timeout=SYNTAX_TIMEOUT, check=False,
                                  stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            return "ansible-playbook is not installed next to drbot nor on PATH"
        except subprocess.TimeoutExpired:
            return f"--syntax-check took over {SYNTAX_TIMEOUT}s"
    if proc.returncode == 0:
        return None
    text = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
    errors = [line for line in text if line.startswith("ERROR")] or text or [proc.stdout.strip()]
    return " ".join(errors[0].split())[:300]


def playbook_lines(iac: Iac) -> list[Line]:
    playbooks = {key: getattr(iac.ansible, key)
                 for key in ("site_playbook", "join_playbook", "fetch_snapshots_playbook")}
    found = [p for p in playbooks.values() if (Path(iac.ansible.dir) / p).is_file()]
    # One ansible-playbook for all of them when they parse (each start costs half a second of
    # CPU); only when one does not is each checked alone, so the error names its playbook.
    together = syntax_check(iac, *found) if len(found) > 1 else "check each"
    lines = []
    for key, playbook in playbooks.items():
        subject = f"playbook {playbook}"
        if playbook not in found:
            lines.append(fail(IAC, subject, f"not found in {iac.ansible.dir}",
                              f"add it there or fix iac.ansible.{key}"))
            continue
        error = None if together is None else syntax_check(iac, playbook)
        lines.append(ok(IAC, subject, "--syntax-check passes") if error is None else
                     fail(IAC, subject, error, f"fix {playbook} in {iac.ansible.dir}"))
    return lines


def file_lines(iac: Iac) -> list[Line]:
    """The secret files a runbook reads: each opens and is not empty (contents never shown)."""
    lines = []
    for key in ("vault_password_file", "ssh_key_file", "k3s_token_file", "flux_secret_file"):
        path = getattr(iac, key)
        if not path:
            continue
        try:
            with open(path, "rb") as f:
                empty = not f.read(1)
        except OSError as exc:
            lines.append(fail(IAC, key, f"{path} does not open ({exc.strerror})",
                              f"mount the secret at {path} readable by drbot's user, or fix "
                              f"iac.{key}"))
            continue
        lines.append(fail(IAC, key, f"{path} is empty", f"put the secret in {path}") if empty
                     else ok(IAC, key, f"{path} opens"))
    return lines


def check(services: Services, inventory: Inventory) -> list[Line]:
    iac = inventory.iac
    if iac is None:
        return [skip(IAC, "checkout", "no `iac` section in the inventory")]
    return (revision_lines(iac) + terraform_lines(services) + playbook_lines(iac)
            + file_lines(iac))
