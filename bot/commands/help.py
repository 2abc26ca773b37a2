"""`help`: the commands you may run, from their docstrings."""

from __future__ import annotations

from pydantic import Field

from bot.actors import Role
from bot.cards.model import Card, Reply, Section, Table
from bot.commands.args import Args, echo
from bot.commands.router import COMMANDS, Context, command

ORDER = (
    "help",
    "verify",
    "me",
    "portal",
    "ask",
    "lookup",
    "refund",
    "cancel",
    "coupon",
    "subscribe",
    "plan",
    "pause",
    "resume",
    "capture",
    "void",
    "charge",
    "request",
    "dispute",
    "tax-id",
    "address",
    "name",
    "invoice",
    "reissue",
    "receipt",
    "approvals",
    "approve",
    "deny",
    "audit",
    "report",
    "alerts",
    "links",
    "unlink",
)


class HelpArgs(Args):
    topic: str | None = Field(None, description="a command name, such as refund")


@command("help", args=HelpArgs, usage="help [command]", roles=tuple(Role), positional=("topic",))
async def help_command(ctx: Context, args: HelpArgs) -> Reply:
    """List the commands you may run, or explain one: `help refund`."""
    if args.topic:
        spec = COMMANDS.get(args.topic.lower())
        if spec is None or not spec.allowed(ctx.actor):
            return Reply.fail(
                "unknown_command", f"no command {echo(args.topic)}: type `help` to list commands"
            )
        return Reply(cards=[Card(title=spec.usage, sections=[Section(text=spec.help)])])
    specs = sorted(
        COMMANDS.values(), key=lambda s: ORDER.index(s.name) if s.name in ORDER else len(ORDER)
    )
    rows = [[spec.usage, spec.summary] for spec in specs if spec.allowed(ctx.actor)]
    roles = ", ".join(sorted(r.value for r in ctx.actor.roles))
    return Reply(cards=[Card(
        title="ChargeDesk commands",
        subtitle=f"You are {ctx.actor.name}, with roles: {roles}",
        sections=[Section(table=Table(columns=["Command", "What it does"], rows=rows))],
        footer="Amounts: 12.50, 12,50, 12.50 EUR or €12.50. IDs may name their gateway: ledger:ch_123.",
    )])  # fmt: skip
