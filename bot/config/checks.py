"""What `drbot check-config` finds beyond the files' shapes: names that point at nothing, rules
nobody can satisfy, values a process would refuse later. Each problem is one line naming the
file, the key and the fix (with "did you mean" when a near name exists)."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlparse

from bot.config.inventory import Inventory
from bot.config.policy import PolicyFile
from bot.config.settings import Settings
from bot.grammar import suggest

FRONTENDS = ("slack", "discord", "console")
CHECK_INTERVAL = (10, 86400)  # bot.watch.scheduler: the request ids of a slot live a day
KEY_LENGTH = 32  # Settings.key(): the worker refuses a shorter signing key


def _roles(policy: PolicyFile) -> set[str]:
    """Roles that exist: given to a person, or granted by a platform role."""
    held = {role for person in policy.people.values() for role in person.roles}
    return held | {role for roles in policy.grants.values() for role in roles}


def policy_problems(policy: PolicyFile, where: str, commands: Iterable[str]) -> list[str]:
    known = set(commands)
    roles = _roles(policy)
    out = []
    for name, rule in sorted(policy.commands.items()):
        key = f"{where}: commands.{name}"
        if name not in known:
            out.append(f"{key}: no such command{suggest(name, known)}")
        for role in rule.allow:
            if role not in roles:
                out.append(f"{key}.allow: role {role!r} is held by nobody"
                           f"{suggest(role, roles)}")
        for entry in rule.approvers:
            kind, _, value = entry.partition(":")
            if kind == "person" and value not in policy.people:
                out.append(f"{key}.approvers: {entry!r} is not a person of people:"
                           f"{suggest(value, policy.people)}")
            elif kind == "role" and value not in roles:
                out.append(f"{key}.approvers: {entry!r}: role {value!r} is held by nobody"
                           f"{suggest(value, roles)}")
        if rule.approvals and "approve" not in policy.commands:
            out.append(f"{key}: needs {rule.approvals} approval(s) but no rule allows "
                       "/dr approve: add `approve: {allow: [...]}` under commands")
    return out


def inventory_problems(inventory: Inventory, where: str) -> list[str]:
    out = []
    for frontend in sorted(inventory.alerts.channels):
        if frontend not in FRONTENDS:
            out.append(f"{where}: alerts.{frontend}: not a frontend{suggest(frontend, FRONTENDS)}"
                       f" (use {', '.join(FRONTENDS)})")
    low, high = CHECK_INTERVAL
    interval = inventory.backups.check_interval_seconds
    if not low <= interval <= high:
        out.append(f"{where}: backups.check_interval_seconds={interval} must be between {low} "
                   f"and {high}; the scheduler refuses anything else")
    return out


def settings_problems(settings: Settings) -> list[str]:
    out = []
    if settings.signing_key is not None and \
            len(settings.signing_key.get_secret_value()) < KEY_LENGTH:
        out.append(f"DRBOT_SIGNING_KEY is shorter than {KEY_LENGTH} characters; bot and worker "
                   "refuse it: generate one with `python -c 'import secrets; "
                   "print(secrets.token_hex(32))'`")
    if settings.redis_url and not (settings.redis_allow_no_password or settings.redis_password
                                   or urlparse(settings.redis_url).password):
        out.append("REDIS_URL has no password; bot, worker and scheduler refuse it: put one in "
                   "the URL (redis://:PASSWORD@host:6379/0) or set DRBOT_REDIS_PASSWORD_FILE")
    return out
