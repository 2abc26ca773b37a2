"""A refund on ending a subscription now: which payment it refunds, and how much.

`cancel <sub> now and-refund last|prorated` works the refund out before anyone approves it
(`termination_refund`), so the card shows the money and the policy decides on it; the
approved request then carries out exactly that refund (`Gateway.cancel_and_refund`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from typing import TYPE_CHECKING, Literal

from bot.gateways.base import ErrorCode, GatewayError
from bot.gateways.checks import check_refund
from bot.models import Charge, ChargeStatus
from bot.money import Money

if TYPE_CHECKING:
    from bot.gateways.base import Gateway

# A payment that took money, whether or not some of it went back since.
PAID_STATUSES = frozenset(
    {ChargeStatus.succeeded, ChargeStatus.partially_refunded, ChargeStatus.refunded}
)
# `none` ends it without money back; `last` refunds the last paid period's payment in full
# (what is left of it); `prorated` refunds the unused part of the current paid period.
RefundMode = Literal["none", "last", "prorated"]


@dataclass(frozen=True)
class PaidPeriod:
    """A subscription's last paid charge and the period `[start, end)` it paid for."""

    charge: Charge
    start: datetime
    end: datetime


@dataclass(frozen=True)
class PlannedRefund:
    """The refund an approved `cancel ... now and-refund` makes: `amount` of `charge_id`."""

    charge_id: str
    amount: Money
    mode: RefundMode


def nothing_paid(gateway: str, subscription_id: str, missing: str) -> GatewayError:
    """The refusal, before approval, of a refund on cancelling a subscription that has
    `missing` ("no paid invoice"): there is no payment to refund."""
    return GatewayError(
        ErrorCode.invalid_state,
        f"subscription {subscription_id} has {missing}: nothing to refund",
        gateway=gateway,
    )


def unused_share(paid: Money, start: datetime, end: datetime, at: datetime) -> Money:
    """What `paid` bought of `[start, end)` that is still unused at `at`, in whole minor units.

    paid × (whole seconds left ÷ whole seconds in the period), computed exactly (Fraction)
    and rounded half to even to the nearest minor unit: never more than half a minor unit
    from the exact share either way, and never more than `paid`. Before the period starts it
    is all of `paid`; at or after its end, nothing.
    """
    total = int((end - start).total_seconds())
    if total <= 0:
        raise ValueError(f"the period {start} .. {end} is empty")
    left = min(max(int((end - at).total_seconds()), 0), total)
    return Money(minor=round(Fraction(paid.minor * left, total)), currency=paid.currency)


def refund_for(
    paid: PaidPeriod, mode: RefundMode, *, gateway: str, at: datetime | None = None
) -> PlannedRefund:
    """The refund `mode` asks for of this paid period, at `at` (now by default).

    Capped at what is still refundable on the charge (an earlier partial refund counts);
    GatewayError if that leaves nothing to refund, so the agent hears it before approval.
    """
    if mode not in ("last", "prorated"):
        raise ValueError(f"no refund to plan for {mode!r}")
    charge = paid.charge
    if charge.status not in PAID_STATUSES:
        raise GatewayError(
            ErrorCode.invalid_state,
            f"the subscription's last payment {charge.id} is {charge.status.value}: "
            "nothing of it can be refunded",
            gateway=gateway,
        )
    refundable = charge.refundable
    amount = refundable
    if mode == "prorated":
        captured = Money(minor=charge.amount_captured, currency=charge.amount.currency)
        share = unused_share(captured, paid.start, paid.end, at or datetime.now(UTC))
        amount = share if share.minor < refundable.minor else refundable
    if amount.minor <= 0:
        left = "nothing of the period is left" if refundable.minor else "it is refunded already"
        raise GatewayError(
            ErrorCode.already_refunded if not refundable.minor else ErrorCode.invalid_state,
            f"nothing to refund on {charge.id}, the subscription's last payment: {left}",
            gateway=gateway,
        )
    return PlannedRefund(charge_id=charge.id, amount=amount, mode=mode)


async def termination_refund(
    gateway: Gateway, subscription_id: str, mode: RefundMode, *, at: datetime | None = None
) -> tuple[Charge, PlannedRefund]:
    """Read-only, before approval: the payment `cancel <sub> now and-refund <mode>` refunds
    and how much, refused now (GatewayError) where the refund could not be made."""
    paid = await gateway.subscription_payment(subscription_id)
    planned = refund_for(paid, mode, gateway=gateway.name, at=at)
    check_refund(paid.charge, planned.amount)
    await gateway.precheck_refund(paid.charge, planned.amount)
    return paid.charge, planned
