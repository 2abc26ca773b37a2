"""`pause` and `resume`: stop a subscription's payments for a while, and start them again."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from bot.approvals.workflow import ActionRequest
from bot.cards.model import Reply
from bot.commands.args import NOT_ASKED, Args, Reason, SubscriptionRef
from bot.commands.requests import AgainRef, reason_code, request_action
from bot.commands.router import Context, command
from bot.errors import UserError
from bot.gateways.base import Capability
from bot.models import SubscriptionStatus


class PauseArgs(Args):
    subscription: SubscriptionRef = Field(description="subscription ID")
    reason: Reason = Field(description="reason code and text")
    again: Annotated[AgainRef | None, NOT_ASKED] = None


async def _request(ctx: Context, action: str, args: PauseArgs) -> Reply:
    gateway, sub = await ctx.services.gateways.locate_subscription(args.subscription)
    gateway.require(Capability.pause_subscription)  # with the gateway's reason, before approval
    if sub.status == SubscriptionStatus.canceled:
        raise UserError("invalid_state", f"subscription {sub.id} is canceled")
    if sub.paused == (action == "pause"):
        state = "paused" if sub.paused else "not paused"
        raise UserError("invalid_state", f"subscription {sub.id} is already {state}")
    return await request_action(ctx, ActionRequest(
        action=action, gateway=gateway.name, target_id=sub.id, customer_id=sub.customer_id,
        reason=args.reason, reason_code=reason_code(ctx, action, args.reason),
    ), again=args.again)  # fmt: skip


@command("pause", args=PauseArgs, usage="pause <subscription> reason: <text>",
         positional=("subscription",))  # fmt: skip
async def pause(ctx: Context, args: PauseArgs) -> Reply:
    """Pause a subscription's payments until `resume`: `pause sub_123 reason: on leave`."""
    return await _request(ctx, "pause", args)


@command("resume", args=PauseArgs, usage="resume <subscription> reason: <text>",
         positional=("subscription",))  # fmt: skip
async def resume(ctx: Context, args: PauseArgs) -> Reply:
    """Collect a paused subscription's payments again: `resume sub_123 reason: back`."""
    return await _request(ctx, "resume", args)
