"""The kill rate of `make mutate` from `mutmut results --all true`; exits 1 below the target.

Killed: a test failed (or timed out) with the mutant in place. Every other outcome counts against
the rate, mutants no test reaches included; the survivors are listed for review.

Survivors left on purpose:
- signing ``canonical``: dropping ``ensure_ascii=True`` changes nothing (it is json's default);
  the argument stays to say that the signed bytes never depend on the platform's encoding.
- approvals ``approve``: ``expires = ... if rule else 1800`` mutated on the ``else`` side (two
  mutants); a command with no rule has no approver (``may_approve`` refuses first): unreachable.
- approvals ``_decidable``: ``status.replace('_', ' ')`` mutated (two); no status a job can be in
  when refused there has an underscore (only awaiting_approval does, and it is not refused).
- approvals ``approve``/``deny``: ``caller.person or ""`` in the audit line mutated (two); a
  caller without a person was refused by ``_decidable`` before, so the fallback is unreachable.
- approvals ``approve``: ``enqueue(q, None, ...)`` (the queue write outside the job's
  transaction) is visible only if the job write fails after the queue write; no test injects a
  fault between the two.
- iac (handlers/iac.py, tested against a real sshd, ssh-keyscan and ssh-keygen on 127.0.0.1):
  - ``ssh_banner``: its timeout (3.0, None, left out, ``settimeout(None)``) and ``recv(65)``:
    a connect or read that hangs cannot be made on 127.0.0.1 (a closed port refuses at once, an
    sshd greets at once); any read of at least the 8 bytes of ``SSH-2.0-`` decides the same.
  - the SSH tools' run limits (``timeout=`` None, left out, or one more second; three in each of
    ``scan_host_keys``, ``fingerprints`` and ``_forget``): the tools answer at once here; a hung
    ssh-keyscan or ssh-keygen is not simulated.
  - ``check=False`` spelled out (None or left out is the default; eight); ``check=True`` in
    ``scan_host_keys`` and ``fingerprints``: the tool exits 0 on every input it gets there
    (ssh-keyscan runs only after an SSH banner, ``ssh-keygen -lf`` only on ssh-keyscan's lines).
  - ``scan_host_keys``'s filter of blank and ``#`` lines (two): ssh-keyscan writes its
    ``# host:port SSH-2.0-...`` comments to stderr (seen with OpenSSH 9.2p1 of Debian 12), so
    its stdout has none here; the filter stays for a build that prints them with the keys.
  - ``_forget``: ``one_line(stderr, 201)``: no error of ssh-keygen is 200 characters long.
  - ``_remember``: ``encoding`` None, left out or ``"UTF-8"`` (three): the same codec for the
    ASCII lines of host keys under the UTF-8 locale the worker runs in.
  - ``pin_host_key`` and ``_host_keys``: ``ssh_banner(...) or True`` (two): ssh-keyscan of a
    machine that is down finds nothing either; the banner check only saves running it.
  - ``_host_keys``: ``>=`` for ``>`` against the deadline: the same but for one clock tick.
  - ``_host_keys``'s pause between tries (two): ``now + started`` makes every pause the longest
    (``SSH_POLL``), ``deadline + now`` lets the last one run past the deadline by at most
    ``SSH_POLL``: the pace of the polling, never its outcome, and no pass/fail test times it.
  - ``wait_for_ssh``: the pool's size (None, at least 2, at most 9) and its threads' name (None,
    left out, two spellings), eight: how many threads wait and what they are called, never what
    is waited for; ``zip(..., strict=...)`` None, left out or False (three): the waits are built
    from the endpoints one to one; the ``", "`` between several fingerprints of one machine in
    the progress line: the test sshd serves one host key.
- locks (bot/records/locks.py, tested against a real redis-server):
  - ``exclusive``: ``LockKey(name)`` without its mode: EXCLUSIVE is LockKey's default; it is
    spelled out so the three constructors read alike.
  - ``held``: ``scan_iter``'s ``count`` (None, left out, 201; three): how many keys Redis looks
    at per SCAN call, never which keys it returns.
  - ``held``: the default of ``fields.pop("mode", "x")`` as None, ``"XXxXX"`` or ``"X"``
    (three): ``from_wire`` reads anything but ``"s"`` as exclusive; a hash without a mode field
    is tested (left out, the pop raises: killed).
  - ``held``: ``>=`` for ``>`` against ``time.time()``: differs only for a lease expiring at
    the very float instant read.
  - ``acquire``: ``"take"`` spelled otherwise (two): the script tests ``ARGV[3]`` for
    ``probe`` only; anything else takes.
- evaluate (bot/watch/evaluate.py):
  - ``retention_gap``: ``d <= oldest.date()`` for ``<``: the oldest kept backup's day is in
    ``have``, so it is never among the missing days.
  - ``_history``: the sort key's ``r[1] is None`` for ``r[0] is None``, and ``r[0] or 1`` for
    ``or 0``: undated rows sort last either way, every dated row's timestamp being far above 1.
  - ``judge``: ``store.what if store else 'the store'`` (three): that branch runs only when the
    store is configured, so ``store`` is set and the fallback is unreachable.
- preflight ``check_etcd``: ``cluster_reset_procedure(inventory, (), ())`` with None for any
  of its three arguments (three): with no survivors the procedure returns the restore-from-
  snapshot text before it reads the inventory or the lost members, and None is as empty as ().
The run after the locks, evaluate and preflight tests (iac and evaluate run again on the code
with waits paced by adapters/pacing.py): 1600 of 1672 (95.7 %): locks 126 of 136, evaluate 464
of 470, preflight 231 of 234, iac 470 of 515.
With the Terraform plan check (adapters/terraform_plan.py, and handlers/iac.py's planned_apply
tested by tests/handlers/test_terraform_checked_plan.py): 1692 of 1780 (95.1 %); terraform_plan
22 of 25 before the unit test of ``in_scope`` and ``describe`` that kills the other three, iac
540 of 598.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter

TARGET = 0.90
KILLED = {"killed", "timeout"}


def module_of(mutant: str) -> str:
    """``handlers.iac.x_say__mutmut_1`` and ``bot.records.locks.xǁLocksǁacquire__mutmut_2`` are
    mutants of ``handlers.iac`` and ``bot.records.locks``: mutmut names them module, then ``x``."""
    return re.split(r"\.x[_ǁ]", mutant, maxsplit=1)[0]


def main(mutmut: str) -> int:
    out = subprocess.run([mutmut, "results", "--all", "true"], capture_output=True, text=True,
                         check=True).stdout
    rows = [line.strip().rsplit(": ", 1) for line in out.splitlines() if ": " in line]
    outcomes = Counter(status for _, status in rows)
    total = sum(outcomes.values())
    killed = sum(outcomes[s] for s in KILLED)
    for name, status in rows:
        if status not in KILLED:
            print(f"{status:>10}  {name}")
    per_module: dict[str, Counter[bool]] = {}
    for name, status in rows:
        per_module.setdefault(module_of(name), Counter())[status in KILLED] += 1
    for module, counts in sorted(per_module.items()):
        print(f"{module}: {counts[True]} of {counts[True] + counts[False]} killed")
    rate = killed / total if total else 0.0
    print(f"{killed} of {total} mutants killed ({rate:.1%}); {dict(outcomes)}; target "
          f"{TARGET:.0%}")
    return 0 if rate >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
