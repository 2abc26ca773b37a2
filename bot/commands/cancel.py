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
from bot.models import SubscriptionStatus


class CancelArgs(Args):
    subscription: SubscriptionRef = Field(description="subscription ID")
    when: Annotated[
        Literal["period-end", "now"],
        Asked(labels={"period-end": "At the end of the paid period", "now": "Now"}),
    ] = Field("period-end", description="when it ends")
    reason: Reason = Field(description="reason code and text")
    # Set by `again <id>` only: not a typed argument.
    again: Annotated[AgainRef | None, NOT_ASKED] = None


@command(
    "cancel",
    args=CancelArgs,
    usage="cancel <subscription> [now|period-end] reason: <text>",
    positional=("subscription", "when"),
)
async def cancel(ctx: Context, args: CancelArgs) -> Reply:
    """Cancel a subscription, at the end of the paid period (the default) or `now`.

    `cancel sub_123 reason: requested_by_customer moving to a competitor`.
    """
    gateway, sub = await ctx.services.gateways.locate_subscription(args.subscription)
    if sub.status == SubscriptionStatus.canceled:
        raise UserError("invalid_state", f"subscription {sub.id} is already canceled")
    if sub.cancel_at_period_end and args.when == "period-end":
        raise UserError(
            "invalid_state",
            f"subscription {sub.id} already cancels at period end: use `now` to end it today",
        )
    return await request_action(ctx, ActionRequest(
        action="cancel", gateway=gateway.name, target_id=sub.id, customer_id=sub.customer_id,
        reason=args.reason, reason_code=reason_code(ctx, "cancel", args.reason),
        params={"at_period_end": args.when == "period-end"},
    ), again=args.again)  # fmt: skip
