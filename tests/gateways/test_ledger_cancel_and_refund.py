"""`cancel <sub> now and-refund` on the ledger: charges imported with their subscription are
its payments; the refund worked out before approval is the one made, once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.gateways.base import Capability, ErrorCode, GatewayError
from bot.gateways.ledger.importer import LedgerImportError, import_data
from bot.gateways.proration import period_after
from bot.gateways.termination import termination_refund
from bot.models import SubscriptionStatus
from bot.money import Money
from bot.services import Services
from bot.store.tables import LedgerRefund
from tests.conftest import say

pytestmark = pytest.mark.storage

NOW = datetime.now(UTC).replace(microsecond=0)


def data(*, paid_days_ago: int = 10, second: bool = True) -> dict[str, Any]:
    """Max's monthly plan, paid (by charges naming it) two months ago and at the start of its
    current period, `paid_days_ago` days ago."""
    start = NOW - timedelta(days=paid_days_ago)
    end = period_after(start, "month")
    charges = [
        {"id": "ch_max_old", "customer": "cus_max", "currency": "EUR", "amount": 3000,
         "status": "succeeded", "subscription": "sub_max", "created": (end - timedelta(days=60)).isoformat()},
        {"id": "ch_max_other", "customer": "cus_max", "currency": "EUR", "amount": 999,
         "status": "succeeded", "created": (NOW - timedelta(days=1)).isoformat()},
    ]  # fmt: skip
    if second:
        charges.append(
            {"id": "ch_max_new", "customer": "cus_max", "currency": "EUR", "amount": 3000,
             "status": "succeeded", "subscription": "sub_max",
             "created": start.isoformat()}
        )  # fmt: skip
    return {
        "customers": [{"id": "cus_max", "email": "max.sub@example.com", "name": "Max"}],
        "subscriptions": [{
            "id": "sub_max", "customer": "cus_max", "plan": "Team", "status": "active",
            "currency": "EUR", "amount": 3000, "interval": "month",
            "current_period_end": end.isoformat(),
        }],
        "charges": charges,
    }  # fmt: skip


async def refunds_of(services: Services, charge_id: str) -> int:
    async with services.db.read() as s:
        return await s.scalar(
            select(func.count())
            .select_from(LedgerRefund)
            .where(LedgerRefund.charge_id == charge_id)
        )  # type: ignore[return-value]


async def test_the_ledger_refunds_the_last_paid_charge_of_the_subscription(services) -> None:
    await import_data(services.db, data())
    ledger = services.gateways.get("ledger")
    assert Capability.cancel_with_refund in ledger.capabilities
    paid = await ledger.subscription_payment("sub_max")
    assert paid.charge.id == "ch_max_new"  # not the older one, nor one that names no plan
    assert paid.end == period_after(paid.start, "month") and paid.start <= paid.charge.created
    charge, last = await termination_refund(ledger, "sub_max", "last")
    a_third_in = paid.start + (paid.end - paid.start) / 3
    _, prorated = await termination_refund(ledger, "sub_max", "prorated", at=a_third_in)
    assert last.amount == Money(minor=3000, currency="EUR") and charge.id == "ch_max_new"
    assert prorated.amount == Money(minor=2000, currency="EUR")  # two thirds unused


async def test_an_approved_cancel_and_refund_refunds_once_however_often_run(services) -> None:
    await import_data(services.db, data())
    ledger = services.gateways.get("ledger")
    _, planned = await termination_refund(ledger, "sub_max", "last")
    first = await ledger.cancel_and_refund(
        "sub_max", planned, reason="moving", idempotency_key="apr_9"
    )
    again = await ledger.cancel_and_refund(
        "sub_max", planned, reason="moving", idempotency_key="apr_9"
    )
    assert first.id == again.id and first.amount == planned.amount
    assert (await ledger.get_subscription("sub_max")).status == SubscriptionStatus.canceled
    assert await refunds_of(services, "ch_max_new") == 1
    assert (await ledger.get_charge("ch_max_new")).amount_refunded == 3000


async def test_a_subscription_with_no_charge_naming_it_is_refused_before_approval(
    services, agent
) -> None:
    await import_data(services.db, data(second=False))
    await import_data(services.db, {"subscriptions": [{
        "id": "sub_max_2", "customer": "cus_max", "plan": "Solo", "status": "active",
        "currency": "EUR", "amount": 900, "interval": "month",
    }]})  # fmt: skip
    said = await say(services, agent, "cancel ledger:sub_max_2 now and-refund last reason: moving")
    assert said.error is not None and said.approval is None
    assert "no paid charge" in said.error.message
    ledger = services.gateways.get("ledger")
    assert (await ledger.get_subscription("sub_max_2")).status == SubscriptionStatus.active
    with pytest.raises(GatewayError) as refused:
        await ledger.subscription_payment("sub_max_2")
    assert refused.value.code == ErrorCode.invalid_state


async def test_a_charge_naming_a_subscription_nobody_has_is_refused_at_import(services) -> None:
    with pytest.raises(LedgerImportError) as refused:
        await import_data(services.db, {"charges": [{
            "id": "ch_x", "customer": "cus_jane", "currency": "EUR", "amount": 100,
            "status": "succeeded", "subscription": "sub_nobody",
        }]})  # fmt: skip
    assert "no subscription sub_nobody" in str(refused.value)


async def test_through_the_bot_one_approval_cancels_and_refunds_the_ledger_charge_once(
    services, agent, manager, other_manager
) -> None:
    await import_data(services.db, data())
    asked = await say(
        services,
        agent,
        "cancel ledger:sub_max now and-refund last reason: requested_by_customer moving",
    )
    assert asked.error is None and asked.approval is not None, asked.error
    assert "refund €30.00 (last) of ch_max_new" in asked.cards[0].title
    assert await refunds_of(services, "ch_max_new") == 0
    await asyncio.gather(
        say(services, manager, f"approve {asked.approval.id}"),
        say(services, other_manager, f"approve {asked.approval.id}"),
    )
    ledger = services.gateways.get("ledger")
    assert (await ledger.get_subscription("sub_max")).status == SubscriptionStatus.canceled
    assert await refunds_of(services, "ch_max_new") == 1
    assert await refunds_of(services, "ch_max_old") == 0
