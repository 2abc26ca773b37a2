"""`refund`: give money back, fully or in part, behind the approval policy."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from bot.approvals.workflow import ActionRequest
from bot.cards.model import Reply
from bot.commands.args import NOT_ASKED, AmountText, Args, Asked, ChargeRef, Reason, echo
from bot.commands.requests import AgainRef, amount_in, reason_code, request_action
from bot.commands.router import Context, command
from bot.gateways.base import Capability
from bot.gateways.checks import check_refund

METHODS = ("gateway", "manual")
METHOD_LABELS = {"gateway": "Through the payment method", "manual": "Paid back by hand: record it"}


class RefundArgs(Args):
    charge: ChargeRef = Field(description="charge ID (ledger:ch_123)")
    amount: AmountText | None = Field(
        None, description="amount such as 12.50 or 12.50 EUR; empty: what remains refundable"
    )
    method: Annotated[
        Literal["gateway", "manual"],
        Asked(labels=METHOD_LABELS),
    ] = Field(
        "gateway", description="manual: you paid it back by hand, the gateway only records it"
    )
    reason: Reason = Field(description="reason code and text, for the audit log")
    # Set by `again <id>` only: not a typed argument.
    again: Annotated[AgainRef | None, NOT_ASKED] = None

    @model_validator(mode="before")
    @classmethod
    def _method_without_amount(cls, data: Any) -> Any:
        """`refund ch_1 manual reason: …` types the method where the amount would stand;
        `Manual` is `manual`."""
        if not isinstance(data, dict):
            return data
        if str(data.get("amount") or "").lower() in METHODS:
            data = {**data, "amount": data.get("method"), "method": data["amount"]}
        method = data.get("method")
        if isinstance(method, str) and method.lower() not in METHODS:
            raise ValueError(f"method {echo(method)}: type manual (paid back by hand) or nothing")
        return {**data, "method": method.lower()} if isinstance(method, str) else data


@command(
    "refund",
    args=RefundArgs,
    usage="refund <charge> [amount] [manual] reason: <code> <text>",
    positional=("charge", "amount", "method"),
)
async def refund(ctx: Context, args: RefundArgs) -> Reply:
    """Refund a charge: the whole refundable amount, or the amount given.

    `refund ch_123 reason: duplicate charged twice` refunds what remains;
    `refund ch_123 12.50 reason: goodwill late delivery` refunds part of it.
    Within your limit it runs at once; above it a manager must approve.
    A refund larger than what remains refundable is refused, naming what remains, and so
    is one the gateway would refuse (a part of an unsettled Braintree payment, a WooCommerce
    order whose payment method cannot refund) before anyone is asked to approve it.
    `refund woocommerce:1234 manual reason: goodwill paid back in cash` records a refund you
    paid back by hand: the gateway marks it refunded and sends no money (WooCommerce only).
    """
    gateway, charge = await ctx.services.gateways.locate_charge(args.charge)
    amount = amount_in(args.amount, charge.amount.currency) or charge.refundable
    check_refund(charge, amount)
    if args.method == "manual":
        gateway.require(Capability.manual_refund)
    else:
        await gateway.precheck_refund(charge, amount)
    return await request_action(ctx, ActionRequest(
        action="refund", gateway=gateway.name, target_id=charge.id, customer_id=charge.customer_id,
        amount=amount, refundable=charge.refundable, reason=args.reason,
        reason_code=reason_code(ctx, "refund", args.reason),
        params={"method": "manual"} if args.method == "manual" else {},
    ), again=args.again)  # fmt: skip
