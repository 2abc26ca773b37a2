"""`subscribe`: start a subscription for a customer, through the approval workflow."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import Field, StringConstraints, model_validator

from bot.approvals.workflow import ActionRequest
from bot.cards.model import Reply
from bot.commands.args import NOT_ASKED, Args, ObjectRef, Reason
from bot.commands.requests import AgainRef, reason_code, request_action
from bot.commands.router import Context, command
from bot.errors import UserError
from bot.gateways.base import Capability, ErrorCode, Gateway, GatewayError, LookupQuery
from bot.models import Customer
from bot.money import Money

_TRIAL = re.compile(r"^(\d{1,3})d$")
MAX_TRIAL_DAYS = 730  # Stripe's limit on a trial: two years
MAX_QUANTITY = 10_000
Trial = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\d{1,3}d$")]
Coupon = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9_\-]{1,64}$")]


class SubscribeArgs(Args):
    customer: ObjectRef = Field(description="customer ID")
    price: ObjectRef = Field(description="plan or price ID")
    quantity: int = Field(1, ge=1, le=MAX_QUANTITY, description="seats")
    trial: Trial | None = Field(None, description="free trial in days, like 14d")
    coupon: Coupon | None = Field(None, description="coupon or promotion code")
    reason: Reason = Field(description="reason code and text")
    again: Annotated[AgainRef | None, NOT_ASKED] = None

    @model_validator(mode="before")
    @classmethod
    def _by_shape(cls, data: Any) -> Any:
        """Typed, the optional words may come in any order: `3`, `14d`, `SPRING`."""
        if not isinstance(data, dict):
            return data
        words = [data.pop(name) for name in ("quantity", "trial", "coupon") if name in data]
        for word in words:
            if not isinstance(word, str):
                data.setdefault("quantity", word)
            elif _TRIAL.match(word.strip()):
                data["trial"] = word
            elif word.strip().isdigit():
                data["quantity"] = word
            elif word.strip():
                data["coupon"] = word
        return data

    @property
    def trial_days(self) -> int | None:
        return int(self.trial[:-1]) if self.trial else None


async def locate_customer(ctx: Context, ref: str) -> tuple[Gateway, Customer]:
    """The one gateway holding customer `ref` (`gateway:id` names it)."""

    async def fetch(gateway: Gateway, object_id: str) -> Customer:
        for profile in await gateway.lookup(LookupQuery("id", object_id)):
            if profile.customer.id == object_id:
                return profile.customer
        raise GatewayError(ErrorCode.not_found, f"no customer {object_id}", gateway=gateway.name)

    return await ctx.services.gateways.locate(ref, fetch, "customer")


@command(
    "subscribe",
    args=SubscribeArgs,
    usage="subscribe <customer> <plan|price> [quantity] [trial like 14d] [coupon] reason: <text>",
    positional=("customer", "price", "quantity", "trial", "coupon"),
)
async def subscribe(ctx: Context, args: SubscribeArgs) -> Reply:
    """Start a subscription: `subscribe cus_123 price_pro 3 14d SPRING reason: upgrade by phone`.

    Quantity (seats), a trial in days and a coupon are optional, in any order. The plan is
    checked with the gateway before anyone is asked to approve.
    """
    trial_days = args.trial_days
    if trial_days is not None and not 1 <= trial_days <= MAX_TRIAL_DAYS:
        raise UserError("invalid_arguments", f"a trial lasts 1 to {MAX_TRIAL_DAYS} days")
    if ":" in args.customer:  # a gateway that cannot says so before anyone is looked up
        ctx.services.gateways.get(args.customer.split(":", 1)[0]).require(
            Capability.create_subscription
        )
    gateway, customer = await locate_customer(ctx, args.customer)
    gateway.require(Capability.create_subscription)
    if args.coupon is not None:
        gateway.require(Capability.coupon)
    price = await gateway.get_price(args.price)
    await gateway.precheck_subscription(
        customer.id, price.id, quantity=args.quantity, trial_days=trial_days, coupon=args.coupon
    )
    coupon = None
    if args.coupon is not None:  # read now: the [coupon] caps weigh it like any coupon
        coupon = await gateway.coupon(args.coupon, currency=price.amount.currency)
    params: dict[str, Any] = {
        "price": price.id, "plan": price.name, "quantity": args.quantity,
        "recurring": Money(minor=price.amount.minor * args.quantity, currency=price.amount.currency)
        .model_dump(mode="json"), "interval": price.interval,
        "trial_days": trial_days, "coupon": args.coupon,
    }  # fmt: skip
    if coupon is not None:
        params["coupon_terms"] = coupon.describe()
        if coupon.percent_off is not None:
            params["coupon_percent_off"] = str(coupon.percent_off)
        if coupon.amount_off is not None:
            params["coupon_amount_off"] = coupon.amount_off.model_dump(mode="json")
    return await request_action(ctx, ActionRequest(
        action="subscribe", gateway=gateway.name, target_id=customer.id, customer_id=customer.id,
        reason=args.reason, reason_code=reason_code(ctx, "subscribe", args.reason), params=params,
    ), again=args.again)  # fmt: skip
