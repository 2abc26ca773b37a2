"""`plan`: move a subscription to another plan, priced by the gateway's preview first."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from bot.approvals.workflow import ActionRequest
from bot.cards.model import Reply
from bot.commands.args import NOT_ASKED, Args, Asked, ObjectRef, Reason, SubscriptionRef
from bot.commands.requests import AgainRef, reason_code, request_action
from bot.commands.router import Context, command
from bot.errors import UserError
from bot.gateways.base import Capability
from bot.models import SubscriptionStatus


class PlanArgs(Args):
    subscription: SubscriptionRef = Field(description="subscription ID")
    price: ObjectRef = Field(description="the new plan or price ID")
    when: Annotated[
        Literal["now", "renewal"], Asked(labels={"now": "Now", "renewal": "At renewal"})
    ] = Field("now", description="when the new plan starts")
    proration: Annotated[
        Literal["prorate", "none"],
        Asked(labels={"prorate": "Charge or credit the difference now", "none": "No proration"}),
    ] = Field("prorate", description="charge the difference for the rest of the period")
    reason: Reason = Field(description="reason code and text")
    again: Annotated[AgainRef | None, NOT_ASKED] = None

    @model_validator(mode="before")
    @classmethod
    def _by_value(cls, data: Any) -> Any:
        """Typed, `prorate`/`none` and `now`/`renewal` may come in either order."""
        if isinstance(data, dict) and data.get("when") in ("prorate", "none"):
            data["when"], data["proration"] = data.get("proration", "now"), data["when"]
        return data


@command(
    "plan",
    args=PlanArgs,
    usage="plan <subscription> <plan|price> [now|renewal] [prorate|none] reason: <text>",
    positional=("subscription", "price", "when", "proration"),
)
async def plan(ctx: Context, args: PlanArgs) -> Reply:
    """Change a subscription's plan: `plan sub_123 price_pro now prorate reason: upgrade`.

    The gateway previews the change first: the request says what is charged today and
    then each period, and it goes stale, not through, if that changes before it runs.
    """
    gateway, sub = await ctx.services.gateways.locate_subscription(args.subscription)
    gateway.require(Capability.change_plan)
    if sub.status == SubscriptionStatus.canceled:
        raise UserError("invalid_state", f"subscription {sub.id} is canceled")
    change = await gateway.preview_plan_change(
        sub.id, args.price, now=args.when == "now", prorate=args.proration == "prorate"
    )
    return await request_action(ctx, ActionRequest(
        action="plan", gateway=gateway.name, target_id=sub.id, customer_id=sub.customer_id,
        # What is charged today is what the policy weighs; a credit or nothing moves no money.
        amount=change.due_now if change.due_now.minor > 0 else None,
        reason=args.reason, reason_code=reason_code(ctx, "plan", args.reason),
        params={"preview": change.model_dump(mode="json")},
    ), again=args.again)  # fmt: skip
