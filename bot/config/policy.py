"""People, roles and per-command rules, read from the policy file.

Deny by default: a command with no rule is allowed to nobody, an account with no person is nobody.
Roles are given to people, not accounts, so the two-person rule compares people. Platform roles
(a Discord role, say) may grant the right to request a command, never to approve one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from bot.config.yamlfile import Strict, load_model

ACCOUNT = re.compile(r"^(console:[a-z_][a-z0-9_.-]{0,31}|slack:[A-Z0-9]+/[A-Z0-9]+|discord:\d{1,20})$")
GRANT = re.compile(r"^discord-role:\d{1,20}/\d{1,20}$")
DURATION = re.compile(r"^(\d+)([smhd])$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds(text: str) -> int:
    """'30m' -> 1800. Durations in the policy are a number and one unit of s, m, h or d."""
    match = DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration: write a number and s, m, h or d, e.g. 30m")
    return int(match.group(1)) * UNITS[match.group(2)]


class PersonEntry(Strict):
    """One person: the accounts that are theirs and the roles they hold."""

    accounts: list[str] = Field(min_length=1, description="console:<login>, slack:<team id>/"
                                                          "<user id> or discord:<user id>")
    roles: list[str] = Field(default_factory=list, description="roles, named in commands' "
                                                               "allow and approvers")

    @field_validator("accounts")
    @classmethod
    def _accounts(cls, accounts: list[str]) -> list[str]:
        for account in accounts:
            if not ACCOUNT.match(account):
                raise ValueError(f"{account!r} is not an account: use console:<login>, "
                                 "slack:<team id>/<user id> or discord:<user id>")
        return accounts


class Rule(Strict):
    """Who may run one command, and what it needs first."""

    allow: list[str] = Field(default_factory=list, description="roles that may request")
    approvals: int = Field(0, ge=0, le=5, description="approvals by other people needed first")
    approvers: list[str] = Field(default_factory=list,
                                 description="'person:<name>' or 'role:<role>' entries")
    confirm: str | None = Field(None, description="phrase the requester must type with --confirm")
    expires: str = Field("30m", description="how long a request waits for approvals (30m, 2h)")
    retry_keeps_approval: bool = Field(False, description="a retry runs on the approvals the job "
                                       "had (by default a retry needs approval again)")

    @field_validator("approvers")
    @classmethod
    def _approvers(cls, approvers: list[str]) -> list[str]:
        for entry in approvers:
            if not re.match(r"^(person|role):[\w.-]+$", entry):
                raise ValueError(f"approver {entry!r} must be 'person:<name>' or 'role:<role>'")
        return approvers

    @field_validator("expires")
    @classmethod
    def _expires(cls, value: str) -> str:
        seconds(value)
        return value

    @model_validator(mode="after")
    def _approvers_needed(self) -> Rule:
        if self.approvals and not self.approvers:
            raise ValueError("approvals > 0 needs an approvers list (who may approve)")
        return self

    @property
    def expires_seconds(self) -> int:
        return seconds(self.expires)


class PolicyFile(Strict):
    """The policy file (DRBOT_POLICY)."""

    admin_contact: str = Field("the drbot administrator", description="named when an unknown "
                                                                      "account is refused")
    people: dict[str, PersonEntry] = Field(default_factory=dict, description="people by name")
    grants: dict[str, list[str]] = Field(default_factory=dict, description="discord-role:<guild "
                                         "id>/<role id> -> roles it lets request (never approve)")
    commands: dict[str, Rule] = Field(default_factory=dict, description="a rule per command; a "
                                      "command with no rule is allowed to nobody")
    lab: bool = Field(False, description="lab/demo only: --as NAME and @name lines in the "
                                         "console")

    @field_validator("grants")
    @classmethod
    def _grants(cls, grants: dict[str, list[str]]) -> dict[str, list[str]]:
        for key in grants:
            if not GRANT.match(key):
                raise ValueError(f"grant {key!r} must be discord-role:<guild id>/<role id>")
        return grants

    @model_validator(mode="after")
    def _unique_accounts(self) -> PolicyFile:
        owner: dict[str, str] = {}
        for name, person in self.people.items():
            for account in person.accounts:
                if account in owner:
                    raise ValueError(f"account {account} belongs to both {owner[account]} and {name}")
                owner[account] = name
        return self


@dataclass(frozen=True)
class Caller:
    """Who sent a command: the account, and the person it maps to (None if not on the list)."""

    account: str
    person: str | None
    roles: frozenset[str]
    request_roles: frozenset[str]


class Policy:
    def __init__(self, data: PolicyFile) -> None:
        self.data = data
        self._owner = {a: name for name, p in data.people.items() for a in p.accounts}

    @classmethod
    def load(cls, path: str | Path) -> Policy:
        return cls(load_model(path, PolicyFile))

    @property
    def lab(self) -> bool:
        return self.data.lab

    def caller(self, account: str, platform_roles: tuple[str, ...] = ()) -> Caller:
        person = self._owner.get(account)
        roles = frozenset(self.data.people[person].roles) if person else frozenset()
        granted = {r for key in platform_roles for r in self.data.grants.get(key, [])}
        return Caller(account, person, roles, frozenset(roles | granted) if person else frozenset())

    def person_named(self, name: str) -> str | None:
        return name if name in self.data.people else None

    def rule(self, command: str) -> Rule | None:
        return self.data.commands.get(command)

    def may_request(self, caller: Caller, command: str) -> bool:
        rule = self.rule(command)
        return bool(caller.person and rule and caller.request_roles & set(rule.allow))

    def may_approve(self, person: str, command: str) -> bool:
        """Approvers are named people or people holding a role; platform grants never count."""
        rule = self.rule(command)
        if not rule or person not in self.data.people:
            return False
        roles = set(self.data.people[person].roles)
        return any(entry == f"person:{person}" or
                   (entry.startswith("role:") and entry[5:] in roles) for entry in rule.approvers)

    def approvals_needed(self, command: str) -> int:
        rule = self.rule(command)
        return rule.approvals if rule else 0

    def not_listed(self, account: str) -> str:
        return (f"{account} is not on drbot's approval list, so it can run nothing. "
                f"Ask {self.data.admin_contact} to add you to the policy file.")
