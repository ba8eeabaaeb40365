"""/dr help: the commands this caller may run, with their usage."""

from __future__ import annotations

from bot.chat.core import ControlContext, Reply
from bot.registry import COMMANDS, control


@control("help", summary="list the commands you may run")
def help_(ctx: ControlContext) -> Reply:
    policy = ctx.rt.policy
    lines = [f"{spec.usage}  ({spec.summary})" for name, spec in sorted(COMMANDS.items())
             if not spec.system and (name == "help" or policy.may_request(ctx.caller, name))]
    return Reply("You may run:\n" + "\n".join(lines), ephemeral=True)
