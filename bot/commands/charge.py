"""`charge`: take a new payment from a customer's saved card, through the approval workflow."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from bot.approvals.workflow import ActionRequest
from bot.cards.model import Reply
from bot.commands.args import NOT_ASKED, AmountText, Args, ObjectRef, Reason
from bot.commands.requests import AgainRef, amount_in, reason_code, request_action
from bot.commands.router import Context, command
from bot.commands.subscribe import locate_customer
from bot.gateways.base import Capability
from bot.money import Money

# What the customer's statement and receipt say the payment was for: one line.
Description = Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=200)]


class ChargeArgs(Args):
    customer: ObjectRef = Field(description="customer ID")
    amount: AmountText = Field(description="amount with its currency, like 12.50 EUR")
    description: Description = Field(description="what it pays for")
    reason: Reason = Field(description="reason")
    again: Annotated[AgainRef | None, NOT_ASKED] = None


def new_amount(text: str) -> Money:
    """A new payment's amount: its currency named, its digits those of the currency."""
    amount = amount_in(text, None)
    assert amount is not None  # text is not None
    return amount


@command(
    "charge",
    args=ChargeArgs,
    usage="charge <customer> <amount currency> <description> reason: <text>",
    positional=("customer", "amount", "description"),
    tail=True,
)
async def charge(ctx: Context, args: ChargeArgs) -> Reply:
    """Charge a customer's saved card now, without them: `charge cus_1 25.00 EUR Extra seats reason: asked by phone`.

    The card is the customer's default payment method (or their only card). A manager
    approves it first unless the policy lets you charge that much alone; approving twice
    charges once. A bank that wants the cardholder to confirm (3-D Secure) refuses: send a
    payment request instead (`request`).
    """
    amount = new_amount(args.amount)
    gateway, customer = await locate_customer(ctx, args.customer)
    gateway.require(Capability.charge_saved_card)
    return await request_action(ctx, ActionRequest(
        action="charge", gateway=gateway.name, target_id=customer.id, customer_id=customer.id,
        amount=amount, reason=args.reason, reason_code=reason_code(ctx, "charge", args.reason),
        params={"description": args.description},
    ), again=args.again)  # fmt: skip
