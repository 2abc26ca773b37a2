"""`lookup`: one customer across every gateway, as a card."""

from __future__ import annotations

from pydantic import Field

from bot import lookup_cache
from bot.cards.billing import profile_card
from bot.cards.model import Card, Reply, Section, Table
from bot.commands.args import Args
from bot.commands.lookup_quoted import found_by, not_found, one_match, quoted
from bot.commands.pay_request import open_requests
from bot.commands.router import COMMANDS, Command, Context, command
from bot.errors import UserError

# What a customer quotes, as typed: spaces inside (`Jane Doe`), none around, no line breaks.
QUERY = r"^\S(?:[^\r\n]*\S)?$"


class LookupArgs(Args):
    query: str = Field(
        min_length=3, max_length=320, pattern=QUERY,
        description="email (or part of one), name, customer, charge, refund or invoice ID, "
        "invoice or document number",
    )  # fmt: skip


@command(
    "lookup",
    args=LookupArgs,
    usage="lookup <email|name|customer|charge|refund|invoice id|invoice number>",
    positional=("query",),
    greedy=True,
)
async def lookup(ctx: Context, args: LookupArgs) -> Reply:
    """Show a customer's charges, refunds, subscriptions, invoices and disputes from every gateway.

    Search by email (`lookup jane.doe@example.com`) or by any ID the customer
    owns: customer, charge, refund, invoice or subscription, an invoice number
    (`JANE-0003`) or one of our documents (`INV-2026-000042`). A name
    (`lookup Jane Doe`) or part of an email (`jane@`, `@example.com`) lists the
    customers it matches to pick from (not in a channel customers can read).
    Every gateway is asked at once; one that is slow or down is marked on the
    card, the rest still shows.
    """
    answer = await quoted(ctx, args.query)
    if answer is not None:
        return answer
    profile = await lookup_cache.lookup(ctx.services, args.query)
    if not profile.found:
        raise not_found(ctx, args.query, profile.failures)
    card = profile_card(profile, locale=ctx.services.settings.locale)
    named = found_by(profile, args.query, ctx.services.settings.locale)
    card.sections += [named] if named else []  # after the card's own: "more" counts them
    card.sections += await open_requests(ctx.services, profile)
    return Reply(cards=[card])


# --- paging: the "more" buttons of a card (not a typed command) ---------------------------

PAGE_ROWS = 10


class PageArgs(Args):
    query: str = Field(min_length=3, max_length=320, pattern=QUERY)
    section: int = Field(ge=0, le=50)
    offset: int = Field(ge=1, le=100_000)


async def lookup_page(ctx: Context, args: PageArgs) -> Reply:
    """The next rows of one list on a customer's card (its "more" button)."""
    profile = await lookup_cache.lookup(ctx.services, await one_match(ctx, args.query))
    card = profile_card(
        profile, locale=ctx.services.settings.locale, max_rows=args.offset + PAGE_ROWS
    )
    part = card.sections[args.section] if args.section < len(card.sections) else None
    if not profile.found or part is None or part.table is None:
        raise UserError("not_found", "that list is no longer on the card: run the lookup again")
    rows = part.table.rows[args.offset : args.offset + PAGE_ROWS]
    more = len(part.table.rows) - args.offset - len(rows) + part.table.more
    title = (part.title or "Rows").split(" (")[0]
    shown = f"{args.offset + 1:,}–{args.offset + len(rows):,}" if rows else "none left"
    return Reply(
        cards=[
            Card(
                title=card.title,
                subtitle=f"{title} {shown}",
                sections=[
                    Section(
                        title=part.title,
                        tone=part.tone,
                        table=Table(columns=part.table.columns, rows=rows, more=max(0, more)),
                    )
                ],
            )
        ]
    )


LOOKUP_PAGE = Command(
    name="lookup", args=PageArgs, roles=COMMANDS["lookup"].roles, handler=lookup_page,
    usage=COMMANDS["lookup"].usage, positional=(),
)  # fmt: skip
