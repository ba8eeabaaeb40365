"""`python -m lab.demo` (`make demo`): the console against the simulated homelab, with a scripted session.

What a new user sees first: help, the cluster's status, a reconcile with live progress, an account
that is not on the list, the backup report with the alert for a stale backup, a backup verified
restorable and one that is not, and a node rebuild
refused by its preflight and then approved by a second person.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

SCRIPT = """\
# Everyone may ask what they may run; the answer depends on who asks.
/dr help
/dr status
# Scenario 1: a deployment was deleted; Flux puts it back from Git (progress is live).
@carol /dr reconcile flux-system --with-source
# An account nobody put on the approval list can do nothing.
@mallory /dr reconcile
# The backup watch: every volume, database and etcd snapshot against policy, worst first.
# The stale volume raises an alert in the alert channel (once, not at every check).
/dr backups
/dr backups archive
# Is a backup restorable? Read from the store alone: every block checksummed, the filesystem fsck'ed.
/dr verify longhorn apps/web-data --deep
# The archive volume's backup lost a block in the store: verification names the first one.
/dr verify longhorn apps/archive
# Scenario 2, refused by its preflight: k3s-agent-1 holds both healthy copies of apps/media.
/dr rebuild-node k3s-agent-1
# Scenario 2: a dead server is rebuilt; alice asks, bob approves, the thread shows each step.
/dr rebuild-node k3s-server-3
@bob /dr approve
# What ran, and who asked.
/dr jobs
"""


def main(time_scale: float = 0.2) -> int:
    from lab import QUIET, Lab

    with tempfile.TemporaryDirectory(prefix="drbot-demo-") as tmp, \
            Lab(Path(tmp) / "lab", time_scale=time_scale) as lab:
        env = {k: v for k, v in os.environ.items() if k != "REDIS_URL" and not
               k.startswith("DRBOT_")}
        env.update(lab.env)
        env.update({"DRBOT_POLICY": str(lab.policy_path), **QUIET})
        lab.world.crash_vm("k3s-server-3")  # the dead node of scenario 2
        print(f"drbot demo: simulated homelab up (Kubernetes {lab.kube_url}, Proxmox "
              f"{lab.pve_url}, S3 {lab.s3_url}); the VM of k3s-server-3 has just died.\n"
              "Running the console as alice.\n", flush=True)
        done = subprocess.run([sys.executable, "-m", "bot.cli", "console", "--as", "alice"],
                              input=SCRIPT, text=True, env=env, check=False)
        return done.returncode


if __name__ == "__main__":
    sys.exit(main())
