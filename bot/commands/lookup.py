"""`lookup`: one customer across every gateway, as a card."""

from __future__ import annotations

from pydantic import Field

from bot import lookup_cache
from bot.cards.billing import profile_card
from bot.cards.model import Reply
from bot.commands.args import Args
from bot.commands.router import Context, command
from bot.errors import UserError


class LookupArgs(Args):
    query: str = Field(min_length=3, max_length=320, pattern=r"^[^\s]+$")


@command(
    "lookup",
    args=LookupArgs,
    usage="lookup <email|customer|charge|invoice id>",
    positional=("query",),
)
async def lookup(ctx: Context, args: LookupArgs) -> Reply:
    """Show a customer's charges, refunds, subscriptions, invoices and disputes from every gateway.

    Search by email (`lookup jane.doe@example.com`) or by any ID the customer
    owns: customer, charge, invoice or subscription. Every gateway is asked at
    once; one that is slow or down is marked on the card, the rest still shows.
    """
    profile = await lookup_cache.lookup(ctx.services, args.query)
    if not profile.found:
        down = "; ".join(f"{f.gateway}: {f.message}" for f in profile.failures)
        raise UserError(
            "not_found",
            f"no customer matches {args.query}" + (f" (not asked: {down})" if down else ""),
        )
    return Reply(cards=[profile_card(profile, locale=ctx.services.settings.locale)])
