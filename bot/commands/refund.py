"""`refund`: give money back, fully or in part, behind the approval policy."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from bot.approvals.workflow import ActionRequest
from bot.cards.model import Reply
from bot.commands.args import NOT_ASKED, AmountText, Args, ChargeRef, Reason
from bot.commands.requests import AgainRef, amount_in, reason_code, request_action
from bot.commands.router import Context, command
from bot.gateways.checks import check_refund


class RefundArgs(Args):
    charge: ChargeRef = Field(description="charge ID (ledger:ch_123)")
    amount: AmountText | None = Field(
        None, description="amount such as 12.50 or 12.50 EUR; empty: what remains refundable"
    )
    reason: Reason = Field(description="reason code and text, for the audit log")
    # Set by `again <id>` only: not a typed argument.
    again: Annotated[AgainRef | None, NOT_ASKED] = None


@command(
    "refund",
    args=RefundArgs,
    usage="refund <charge> [amount] reason: <code> <text>",
    positional=("charge", "amount"),
)
async def refund(ctx: Context, args: RefundArgs) -> Reply:
    """Refund a charge: the whole refundable amount, or the amount given.

    `refund ch_123 reason: duplicate charged twice` refunds what remains;
    `refund ch_123 12.50 reason: goodwill late delivery` refunds part of it.
    Within your limit it runs at once; above it a manager must approve.
    A refund larger than what remains refundable is refused, naming what remains, and so
    is one the gateway would refuse (a part of an unsettled Braintree payment, a WooCommerce
    order whose payment method cannot refund) before anyone is asked to approve it.
    """
    gateway, charge = await ctx.services.gateways.locate_charge(args.charge)
    amount = amount_in(args.amount, charge.amount.currency) or charge.refundable
    check_refund(charge, amount)
    await gateway.precheck_refund(charge, amount)
    return await request_action(ctx, ActionRequest(
        action="refund", gateway=gateway.name, target_id=charge.id, customer_id=charge.customer_id,
        amount=amount, refundable=charge.refundable, reason=args.reason,
        reason_code=reason_code(ctx, "refund", args.reason),
    ), again=args.again)  # fmt: skip
