"""`capture`: take the money of an authorized charge, all or part of it."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from bot.approvals.workflow import ActionRequest
from bot.cards.model import Reply
from bot.commands.args import NOT_ASKED, AmountText, Args, ChargeRef, Reason
from bot.commands.requests import AgainRef, amount_in, reason_code, request_action
from bot.commands.router import Context, command
from bot.gateways.checks import check_capture


class CaptureArgs(Args):
    charge: ChargeRef = Field(description="charge ID")
    amount: AmountText | None = Field(None, description="amount; empty: all of it")
    reason: Reason = Field(description="reason")
    # Set by `again <id>` only: not a typed argument.
    again: Annotated[AgainRef | None, NOT_ASKED] = None


@command(
    "capture",
    args=CaptureArgs,
    usage="capture <charge> [amount] reason: <text>",
    positional=("charge", "amount"),
)
async def capture(ctx: Context, args: CaptureArgs) -> Reply:
    """Capture an authorized charge: the full authorization, or the amount given (the rest is released)."""
    gateway, charge = await ctx.services.gateways.locate_charge(args.charge)
    amount = amount_in(args.amount, charge.amount.currency) or charge.amount
    check_capture(charge, amount)
    return await request_action(ctx, ActionRequest(
        action="capture", gateway=gateway.name, target_id=charge.id, customer_id=charge.customer_id,
        amount=amount, reason=args.reason, reason_code=reason_code(ctx, "capture", args.reason),
    ), again=args.again)  # fmt: skip
