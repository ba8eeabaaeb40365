"""A `terraform` executable for the lab: the bpg/proxmox VMs of `lab.tf.json`, built in fakepve.

It speaks Terraform's machine-readable UI (`ui`), keeps a version 4 state file (`state`), and
takes a state lock whose info file outlives a killed process, as a remote backend's lock does
(`lock`: a stale lock must be force-unlocked). Plan and apply (`plan`) create, replace and
destroy VMs through the Proxmox API (`proxmox`); creating a VM gives it a new SMBIOS uuid and its
SSH endpoint a new host key. A VM configured on another node than it runs on is planned as a
replacement, as the bpg provider does. `plan -out=FILE` saves a plan that `apply FILE` applies
as it is, refusing it once the state changed (`saved`). `cli` answers each subcommand, `args`
reads the command line, `launcher` writes the executable. The Terraform adapter's unit tests
run the same executable with the knobs of `scripted`: each call recorded, plan/apply answered
from the arguments or a given stream, with a given exit status, or blocking while ignoring
SIGINT.
"""

from lab.terraform_stub import launcher, scripted
from lab.terraform_stub.args import Args, duration, parse
from lab.terraform_stub.cli import main
from lab.terraform_stub.lock import LOCK_INFO, write_lock
from lab.terraform_stub.plan import CONFIG
from lab.terraform_stub.proxmox import Proxmox
from lab.terraform_stub.state import PROVIDER, STATE, load_state, state_instances
from lab.terraform_stub.ui import RESOURCE_NAME, RESOURCE_TYPE, VERSION, Failed

__all__ = [
    "CONFIG", "LOCK_INFO", "PROVIDER", "RESOURCE_NAME", "RESOURCE_TYPE", "STATE", "VERSION",
    "Args", "Failed", "Proxmox", "duration", "launcher", "load_state", "main", "parse",
    "scripted", "state_instances", "write_lock",
]
