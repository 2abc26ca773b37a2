"""`alerts`: what the gateways told us that needs a person (disputes, failed payments)."""

from __future__ import annotations

from pydantic import Field

from bot.cards.model import Card, Reply, Section
from bot.commands.args import Args
from bot.commands.router import Context, command
from bot.notify import recent


class AlertsArgs(Args):
    count: int = Field(10, ge=1, le=50, description="how many (1 to 50)")


@command("alerts", args=AlertsArgs, usage="alerts [count]", positional=("count",))
async def alerts(ctx: Context, args: AlertsArgs) -> Reply:
    """The newest alerts from gateway webhooks: new disputes and failed payments, newest first."""
    cards = await recent(ctx.services.db, args.count)
    return Reply(
        cards=cards
        or [
            Card(
                title="No alerts", sections=[Section(text="Nothing needs attention.", tone="muted")]
            )
        ]
    )
