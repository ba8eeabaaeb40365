"""/dr help [command]: the commands this caller may run; or one command in full.

One command's help says everything a newcomer needs before typing it: usage, each argument and flag,
what the policy asks (who may run it, approvals, a confirmation phrase) and an example built from
live names where drbot knows them (the inventory's nodes, the last listed PVCs...).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.control import ControlContext, Reply
from bot.errors import CommandError
from bot.grammar import CONFIRM, DRY_RUN, NAME, Param, suggest
from bot.registry import COMMANDS, CommandSpec, control

if TYPE_CHECKING:
    from bot.control import Caller, Policy

LIVE = ("nodes", "hosts", "kustomizations", "pvcs", "locks")  # sources good for an example


@control("help", summary="list the commands you may run; /dr help <command> explains one",
         params=(Param("command", "a command to explain", kind=NAME, required=False,
                       complete="commands"),))
def help_(ctx: ControlContext) -> Reply:
    if ctx.args.get("command"):
        return Reply(explain(ctx, str(ctx.args["command"])), ephemeral=True)
    policy = ctx.policy
    lines = [f"{spec.usage_for(confirm(policy, name))}  ({spec.summary})"
             for name, spec in sorted(COMMANDS.items())
             if not spec.system and (name == "help" or policy.may_request(ctx.caller, name))]
    return Reply("You may run:\n" + "\n".join(lines)
                 + "\n/dr help <command> explains one command", ephemeral=True)


def confirm(policy: Policy, command: str) -> str | None:
    rule = policy.rule(command)
    return rule.confirm if rule else None


def explain(ctx: ControlContext, name: str) -> str:
    spec = COMMANDS.get(name)
    if spec is None or spec.system:
        shown = [n for n, s in COMMANDS.items() if not s.system]
        raise CommandError(f"no command {name!r}{suggest(name, shown)}; /dr help lists them")
    policy = ctx.policy
    lines = [spec.usage_for(confirm(policy, name)), f"  {spec.summary}"]
    positional = [p for p in spec.params if not p.flag]
    flags = [p for p in spec.params if p.flag]
    if spec.mutating:
        flags.append(DRY_RUN)
    if confirm(policy, name) and spec.kind == "runbook":
        flags.append(CONFIRM)
    if positional:
        lines += ["arguments:", *(f"  {p.usage()}  {p.help}" + ("" if p.required else
                                                              " (optional)") for p in positional)]
    if flags:
        lines += ["flags:", *(f"  {p.usage().strip('[]')}  {p.help}" for p in flags)]
    lines += who(policy, ctx.caller, spec)
    lines.append(f"example: {example(ctx, spec, confirm(policy, name))}")
    return "\n".join(lines)


def who(policy: Policy, caller: Caller, spec: CommandSpec) -> list[str]:
    rule = policy.rule(spec.name)
    if rule is None or not rule.allow:
        return ["who may run it: nobody (the policy has no rule for it)"]
    mine = "you may" if spec.name == "help" or policy.may_request(caller, spec.name) else \
        f"you may not; ask {policy.data.admin_contact}"
    lines = [f"who may run it: {', '.join(rule.allow)} ({mine})"]
    if spec.kind == "runbook":
        lines.append(f"approvals: {rule.approvals} from {', '.join(rule.approvers)}, not the "
                     f"requester; they expire after {rule.expires}" if rule.approvals
                     else "approvals: none; it runs once planned")
        if rule.confirm:
            lines.append(f'confirmation phrase: --confirm "{rule.confirm}"')
    return lines


def example(ctx: ControlContext, spec: CommandSpec, phrase: str | None) -> str:
    words = [f"/dr {spec.name}"]
    for param in spec.params:
        if param.flag or not param.required:
            continue
        live = ctx.values(spec.name, param.complete) if param.complete in LIVE else []
        words.append(live[0] if live else param.kind.example)
    if phrase and spec.kind == "runbook":
        words.append(f'--confirm "{phrase}"')
    return " ".join(words)
