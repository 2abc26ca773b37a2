"""`coupon`: apply a coupon or promotion code to a customer or subscription, or remove the
discount, through the approval workflow.

The coupon is read from the gateway when asked, so the policy decides on what it takes off
(`[coupon]` in policy.toml: `max_percent_off` and `limits` per role) and the approval card
says it: "Coupon WELCOME10: 10% off for 3 months on sub_123".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import Field, StringConstraints

from bot.approvals.workflow import ActionRequest
from bot.cards.model import Reply
from bot.commands.args import NOT_ASKED, Args, Asked, ObjectRef, Reason
from bot.commands.requests import AgainRef, reason_code, request_action
from bot.commands.router import Context, command
from bot.errors import UserError
from bot.gateways.base import Capability, ErrorCode, Gateway, GatewayError, LookupQuery

REMOVE = "remove"
# Stripe promotion codes and coupon IDs, Recurly coupon codes, Braintree discount IDs.
CouponCode = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
]
# A gateway's answer to get_subscription that means: this ID is no subscription there.
_NOT_THIS_KIND = (ErrorCode.not_found, ErrorCode.rejected, ErrorCode.unsupported)


class CouponArgs(Args):
    target: Annotated[ObjectRef, Asked(suggest="subscriptions")] = Field(
        description="customer or subscription ID"
    )
    code: CouponCode = Field(description="coupon or promotion code, or remove")
    reason: Reason = Field(description="reason code and text")
    # Set by `again <id>` only: not a typed argument.
    again: Annotated[AgainRef | None, NOT_ASKED] = None


@dataclass(frozen=True)
class Target:
    """What a coupon goes on: a subscription (it has a currency) or a customer (none)."""

    id: str
    customer_id: str
    currency: str | None = None

    @property
    def subscription(self) -> bool:
        return self.currency is not None


async def locate_target(ctx: Context, ref: str) -> tuple[Gateway, Target]:
    """The one gateway holding subscription or customer `ref` (`gateway:id` names it)."""

    async def fetch(gateway: Gateway, object_id: str) -> Target:
        try:
            sub = await gateway.get_subscription(object_id)
            return Target(sub.id, sub.customer_id, sub.amount.currency)
        except GatewayError as exc:
            if exc.code not in _NOT_THIS_KIND:
                raise
        for profile in await gateway.lookup(LookupQuery("id", object_id)):
            if profile.customer.id == object_id:
                return Target(object_id, object_id)
        raise GatewayError(
            ErrorCode.not_found, f"no customer or subscription {object_id}", gateway=gateway.name
        )

    return await ctx.services.gateways.locate(ref, fetch, "customer or subscription")


async def _has_discount(gateway: Gateway, customer_id: str) -> bool:
    profiles = await gateway.lookup(LookupQuery("id", customer_id))
    return any(p.discounts for p in profiles if p.customer.id == customer_id)


@command(
    "coupon",
    args=CouponArgs,
    usage="coupon <customer|subscription> <code|remove> reason: <text>",
    positional=("target", "code"),
)
async def coupon(ctx: Context, args: CouponArgs) -> Reply:
    """Apply a coupon to a customer or subscription, or `remove` its discount.

    `coupon sub_123 WELCOME10 reason: goodwill late parcel` applies WELCOME10;
    `coupon sub_123 remove reason: other promo ended` removes the discount. A percentage
    or amount off above your role's cap in the policy waits for a manager.
    """
    gateway, target = await locate_target(ctx, args.target)
    gateway.require(Capability.coupon)
    removing = args.code.lower() == REMOVE
    await gateway.precheck_coupon(target.id, subscription=target.subscription, remove=removing)
    request = ActionRequest(
        action="coupon", gateway=gateway.name, target_id=target.id,
        customer_id=target.customer_id, reason=args.reason,
        reason_code=reason_code(ctx, "coupon", args.reason),
    )  # fmt: skip
    if removing:
        if not await _has_discount(gateway, target.customer_id):
            raise UserError("invalid_state", f"{target.id} has no discount to remove")
        request.params = {"remove": True}
        return await request_action(ctx, request, again=args.again)
    found = await gateway.coupon(args.code, currency=target.currency)
    off = found.amount_off
    if off is not None and target.currency and off.currency != target.currency:
        raise UserError(
            "currency_mismatch",
            f"coupon {args.code} takes {off.format()} off, but {target.id} is billed in "
            f"{target.currency}",
        )
    request.amount = off  # held against [coupon.limits] in its currency
    request.params = {"code": found.code, "coupon": found.describe(), "currency": target.currency}
    if found.percent_off is not None:
        request.params["percent_off"] = str(found.percent_off)  # exact text, for the policy
    return await request_action(ctx, request, again=args.again)
