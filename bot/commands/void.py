"""`void`: release an authorization without taking any money."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from bot.approvals.workflow import ActionRequest
from bot.cards.model import Reply
from bot.commands.args import NOT_ASKED, Args, ChargeRef, Reason
from bot.commands.requests import AgainRef, reason_code, request_action
from bot.commands.router import Context, command
from bot.gateways.checks import require_status
from bot.models import ChargeStatus


class VoidArgs(Args):
    charge: ChargeRef = Field(description="charge ID")
    reason: Reason = Field(description="reason")
    # Set by `again <id>` only: not a typed argument.
    again: Annotated[AgainRef | None, NOT_ASKED] = None


@command("void", args=VoidArgs, usage="void <charge> reason: <text>", positional=("charge",))
async def void(ctx: Context, args: VoidArgs) -> Reply:
    """Void an authorized charge: the hold on the customer's card is released, nothing is charged."""
    gateway, charge = await ctx.services.gateways.locate_charge(args.charge)
    require_status(charge, ChargeStatus.authorized, "voided")
    return await request_action(ctx, ActionRequest(
        action="void", gateway=gateway.name, target_id=charge.id, customer_id=charge.customer_id,
        reason=args.reason, reason_code=reason_code(ctx, "void", args.reason),
    ), again=args.again)  # fmt: skip
