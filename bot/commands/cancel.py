"""`cancel`: end a subscription now or at the end of the paid period."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from bot.approvals.workflow import ActionRequest
from bot.cards.model import Reply
from bot.commands.args import NOT_ASKED, Args, Asked, Reason, SubscriptionRef
from bot.commands.requests import AgainRef, reason_code, request_action
from bot.commands.router import Context, command
from bot.errors import UserError
from bot.gateways.termination import RefundMode, termination_refund
from bot.models import SubscriptionStatus


class CancelArgs(Args):
    subscription: SubscriptionRef = Field(description="subscription ID")
    when: Annotated[
        Literal["period-end", "now"],
        Asked(labels={"period-end": "At the end of the paid period", "now": "Now"}),
    ] = Field("period-end", description="when it ends")
    # Typed only, the word that introduces `refund`: `now and-refund prorated`.
    and_refund: Annotated[Literal["and-refund"] | None, NOT_ASKED] = None
    refund: Annotated[
        RefundMode,
        Asked(labels={
            "none": "No refund", "last": "Refund the last payment",
            "prorated": "Refund the unused part of the period",
        }),
    ] = Field("none", description="with now: refund the last payment, or its unused part")  # fmt: skip
    reason: Reason = Field(description="reason code and text")
    # Set by `again <id>` only: not a typed argument.
    again: Annotated[AgainRef | None, NOT_ASKED] = None


@command(
    "cancel",
    args=CancelArgs,
    usage="cancel <subscription> [now [and-refund last|prorated]|period-end] reason: <text>",
    positional=("subscription", "when", "and_refund", "refund"),
)
async def cancel(ctx: Context, args: CancelArgs) -> Reply:
    """Cancel a subscription, at the end of the paid period (the default) or `now`.

    `cancel sub_123 reason: requested_by_customer moving to a competitor`.
    `cancel sub_123 now and-refund prorated reason: requested_by_customer moving` also
    refunds the unused part of the paid period (`last`: the last payment in full); the card
    shows the payment and amount, and the refund limits and daily budget apply to it.
    """
    if args.and_refund and args.refund == "none":
        raise UserError(
            "usage", "say what to refund: `now and-refund last` or `now and-refund prorated`"
        )
    if args.refund != "none" and args.when != "now":
        raise UserError(
            "usage",
            "a refund goes only with `now`: cancel <subscription> now and-refund last|prorated",
        )
    gateway, sub = await ctx.services.gateways.locate_subscription(args.subscription)
    if sub.status == SubscriptionStatus.canceled:
        raise UserError("invalid_state", f"subscription {sub.id} is already canceled")
    if sub.cancel_at_period_end and args.when == "period-end":
        raise UserError(
            "invalid_state",
            f"subscription {sub.id} already cancels at period end: use `now` to end it today",
        )
    params: dict[str, object] = {"at_period_end": args.when == "period-end"}
    amount = refundable = None
    if args.refund != "none":
        charge, planned = await termination_refund(gateway, sub.id, args.refund)
        params |= {"refund": args.refund, "refund_charge": charge.id}
        amount, refundable = planned.amount, charge.refundable
    return await request_action(ctx, ActionRequest(
        action="cancel", gateway=gateway.name, target_id=sub.id, customer_id=sub.customer_id,
        reason=args.reason, reason_code=reason_code(ctx, "cancel", args.reason),
        params=params, amount=amount, refundable=refundable,
    ), again=args.again)  # fmt: skip
