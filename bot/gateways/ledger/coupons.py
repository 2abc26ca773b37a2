"""The ledger's coupons: read one, apply it to a customer or a subscription, remove a discount.

Coupons come in with the import (`coupons`: a percentage or an amount off, for once, a
number of months or forever). A customer or a subscription holds one discount at a time:
applying another coupon replaces it, applying the same one again changes nothing.
Writes go through the gateway's `_operate`, so they are forwarded to the business like
every other action and happen once per idempotency key.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.gateways.base import ErrorCode, GatewayError
from bot.gateways.ledger.mapping import NAME
from bot.models import Coupon, SubscriptionStatus
from bot.money import Money
from bot.store.tables import LedgerCoupon, LedgerCustomer, LedgerDiscount, LedgerSubscription

if TYPE_CHECKING:
    from bot.gateways.ledger.gateway import LedgerGateway

Target = LedgerCustomer | LedgerSubscription


def coupon_of(row: LedgerCoupon) -> Coupon:
    """A ledger coupon row as ours; basis points back to an exact percentage."""
    return Coupon(
        gateway=NAME,
        code=row.id,
        name=row.name,
        percent_off=Decimal(row.percent_off_bp) / 100 if row.percent_off_bp is not None else None,
        amount_off=(
            Money(minor=row.amount_off, currency=row.currency)
            if row.amount_off is not None and row.currency
            else None
        ),
        duration=row.duration,
        duration_in_months=row.duration_in_months,
    )


async def read_coupon(s: AsyncSession, code: str) -> Coupon:
    row = await s.get(LedgerCoupon, code)
    if row is None:
        raise GatewayError(ErrorCode.not_found, f"no coupon {code} in the ledger", gateway=NAME)
    if not row.active:
        raise GatewayError(
            ErrorCode.invalid_state, f"coupon {code} is no longer active", gateway=NAME
        )
    return coupon_of(row)


async def discounts_of(s: AsyncSession, customer_id: str) -> tuple[str, ...]:
    """`WELCOME10 (Welcome offer): 10% off for 3 months, on sub_jane_pro`, for the card."""
    found = await s.execute(
        select(LedgerDiscount, LedgerCoupon)
        .join(LedgerCoupon, LedgerCoupon.id == LedgerDiscount.coupon_id)
        .where(LedgerDiscount.customer_id == customer_id)
        .order_by(LedgerDiscount.created)
    )
    return tuple(
        coupon_of(coupon).describe()
        + ("" if discount.target_id == customer_id else f", on {discount.target_id}")
        for discount, coupon in found.all()
    )


async def _target(s: AsyncSession, target_id: str) -> Target:
    """The customer or live subscription `target_id`, locked until the write commits."""
    for table in (LedgerSubscription, LedgerCustomer):
        row = await s.scalar(select(table).where(table.id == target_id).with_for_update())
        if row is None:
            continue
        if isinstance(row, LedgerSubscription) and row.status == SubscriptionStatus.canceled:
            raise GatewayError(
                ErrorCode.invalid_state, f"subscription {row.id} is canceled", gateway=NAME
            )
        return row
    raise GatewayError(
        ErrorCode.not_found, f"no customer or subscription {target_id} in the ledger", gateway=NAME
    )


def _customer_id(target: Target) -> str:
    return target.customer_id if isinstance(target, LedgerSubscription) else target.id


async def _discount_on(s: AsyncSession, target_id: str) -> LedgerDiscount | None:
    return await s.scalar(select(LedgerDiscount).where(LedgerDiscount.target_id == target_id))


async def apply(gateway: LedgerGateway, target_id: str, code: str, key: str) -> str:
    async with gateway.db.read() as s:
        coupon = await read_coupon(s, code)

    async def check(s: AsyncSession) -> Target:
        await read_coupon(s, code)  # still there and active, under the write lock
        return await _target(s, target_id)

    async def write(s: AsyncSession, target: Target, reference: str | None) -> str:
        current = await _discount_on(s, target_id)
        if current is not None and current.coupon_id == coupon.code:
            return current.id  # applied already: applying twice is applying once
        if current is not None:
            await s.delete(current)  # one discount per target: the new coupon replaces it
            await s.flush()
        discount = LedgerDiscount(
            id=f"di_{secrets.token_hex(8)}", coupon_id=coupon.code, customer_id=_customer_id(target),
            target_id=target_id, created=datetime.now(UTC),
        )  # fmt: skip
        s.add(discount)
        return discount.id

    await gateway._operate("coupon", target_id, key, check, write, {"coupon": coupon.code})
    return coupon.describe()


async def remove(gateway: LedgerGateway, target_id: str, key: str) -> str:
    async def check(s: AsyncSession) -> Target:
        return await _target(s, target_id)

    async def write(s: AsyncSession, target: Target, reference: str | None) -> str:
        current = await _discount_on(s, target_id)
        if current is None:
            return target_id  # gone already: nothing to remove
        await s.delete(current)
        return current.id

    return await gateway._operate("remove_discount", target_id, key, check, write, {})
