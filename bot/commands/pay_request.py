"""`request`: ask a customer to pay, by email, on the gateway's own pay page; `request cancel`."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from pydantic import Field, model_validator

from bot.actors import Role
from bot.cards.model import Button, Card, Fact, Reply, Section, Table
from bot.commands.args import AmountText, Args, ObjectRef, Reason
from bot.commands.charge import Description, new_amount
from bot.commands.router import Context, command
from bot.commands.subscribe import locate_customer
from bot.models import BillingProfile, PayLink
from bot.payment_requests import (
    ID_PATTERN,
    PaymentRequest,
    cancel,
    create,
    open_for,
    reminder_steps,
)
from bot.services import Services

USAGE = "request <customer> <amount currency> <description> reason: <text> | request cancel <id>"


class RequestArgs(Args):
    customer: ObjectRef = Field(description="customer ID, or `cancel`")
    amount: AmountText = Field(description="amount with its currency, like 12.50 EUR")
    description: Description | None = Field(None, description="what it pays for")
    reason: Reason | None = Field(None, description="reason")

    @model_validator(mode="after")
    def _complete(self) -> RequestArgs:
        if self.cancelling:
            if not re.fullmatch(ID_PATTERN, self.amount):
                raise ValueError(f"not a payment request ID (pr_…): {USAGE}")
        elif self.description is None or self.reason is None:
            raise ValueError(f"a description and a reason are needed: {USAGE}")
        return self

    @property
    def cancelling(self) -> bool:
        return self.customer.lower() == "cancel"


@command(
    "request", args=RequestArgs, usage=USAGE, roles=(Role.agent,),
    positional=("customer", "amount", "description"), tail=True, private=True,
)  # fmt: skip
async def request(ctx: Context, args: RequestArgs) -> Reply:
    """Email a customer a pay link: `request cus_1 25.00 EUR Order 1042 reason: paid by link`.

    The link opens the gateway's own pay page (Stripe Checkout, a PayPal checkout; the
    ledger's is our billing page). The customer gets it by email now and reminders after 3
    and 7 days (by default), until they pay (the gateway says so), or you cancel it:
    `request cancel pr_…`. Open requests show on the customer's card. The link is shown only
    to you; anyone who has it can pay.
    """
    planned = len(reminder_steps(ctx.services.settings))
    if args.cancelling:
        done = await cancel(ctx.services, ctx.actor, args.amount)
        return Reply(cards=[request_card(done, ctx.services.settings.locale, planned=planned)])
    assert args.description is not None and args.reason is not None
    amount = new_amount(args.amount)
    gateway, customer = await locate_customer(ctx, args.customer)
    made, link = await create(
        ctx.services, ctx.actor, gateway, customer, amount,
        description=args.description, reason=args.reason,
    )  # fmt: skip
    card = request_card(made, ctx.services.settings.locale, link, planned=planned)
    return Reply(cards=[card], ephemeral=True)


def request_card(
    request: PaymentRequest, locale: str, link: PayLink | None = None, *, planned: int
) -> Card:
    """A request for the agent: with its pay link right after it is made, never later."""
    facts = [
        Fact(label="Customer", value=f"{request.gateway}:{request.customer_id} <{request.email}>"),
        Fact(label="For", value=request.description),
        Fact(label="State", value=request.state),
        Fact(label="Link", value=link_status(request, planned)),
    ]
    card = Card(
        title=f"Payment request {request.id}: {request.amount.format(locale)}",
        subtitle=f"emailed to {request.email}",
        tone="success" if request.state == "paid" else "normal",
        sections=[Section(facts=facts)],
    )
    if link is not None and link.url:
        card.actions.append(Button(label="Open pay link", url=link.url))
    if request.state == "open":
        card.actions.append(
            Button(label="Cancel request", command=f"request cancel {request.id}", style="danger")
        )
    return card


def link_status(request: PaymentRequest, planned: int) -> str:
    """`open until 2026-12-08 17:00 UTC, 1 of 2 reminders sent`"""
    if request.state != "open":
        return request.state
    until = request.link_expires_at
    if until is not None and until <= datetime.now(UTC):
        when = "expired: the next reminder carries a new link"
    else:
        when = f"open until {until:%Y-%m-%d %H:%M} UTC" if until else "open"
    return f"{when}, {request.reminders_sent} of {planned} reminders sent"


async def open_requests(services: Services, profile: BillingProfile) -> list[Section]:
    """The customer card's open payment requests, with their link status (none: no section)."""
    found = await open_for(services, [(p.gateway, p.customer.id) for p in profile.profiles])
    if not found:
        return []
    locale, planned = services.settings.locale, len(reminder_steps(services.settings))
    rows = [[r.id, r.amount.format(locale), r.description, link_status(r, planned)] for r in found]
    return [Section(
        title="Open payment requests",
        table=Table(columns=["Request", "Amount", "For", "Link"], rows=rows),
    )]  # fmt: skip
