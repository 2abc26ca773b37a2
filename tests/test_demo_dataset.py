"""The demo dataset: every state the bot handles, importable, and usable by the gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.demo.dataset import demo_data, load_demo
from bot.gateways.base import LookupQuery
from bot.gateways.ledger.gateway import LedgerGateway
from bot.models import (
    ChargeStatus,
    DisputeStatus,
    GatewayProfile,
    InvoiceStatus,
    SubscriptionStatus,
)
from bot.money import Money
from bot.store.db import Database


@pytest.fixture
async def ledger_db(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 't.db'}")
    await db.migrate()
    yield db
    await db.close()


@pytest.fixture
async def demo(ledger_db: Database) -> LedgerGateway:
    await load_demo(ledger_db)
    return LedgerGateway(ledger_db)


async def profile(gateway: LedgerGateway, query: str) -> GatewayProfile:
    [found] = await gateway.lookup(LookupQuery.parse(query))
    return found


async def test_demo_loads_and_reloads_in_place(ledger_db: Database) -> None:
    first = await load_demo(ledger_db)
    assert str(first) == (
        "imported 5 customers, 13 charges, 2 refunds, 5 subscriptions, 8 invoices, 1 dispute, "
        "4 coupons"
    )
    assert await load_demo(ledger_db) == first


def test_demo_data_is_stable_and_relative_to_now() -> None:
    now = datetime(2031, 5, 4, 12, 0, tzinfo=UTC)
    assert demo_data(now) == demo_data(now)
    data = demo_data(now)
    [dispute] = data["disputes"]
    assert dispute["evidence_due_by"] == "2031-05-11T12:00:00Z"
    [overdue] = [i for i in data["invoices"] if i["id"] == "in_jane_overdue"]
    assert datetime.fromisoformat(overdue["due_date"]) == now - timedelta(days=10)


async def test_one_customer_per_currency(demo: LedgerGateway) -> None:
    currencies: dict[str, set[str]] = {}
    for email in (
        "jane.doe@example.com",
        "john.smith@example.com",
        "yuki.tanaka@example.com",
        "fatima.alsabah@example.com",
    ):
        found = await profile(demo, email)
        currencies[found.customer.id] = {c.amount.currency for c in found.charges}
    assert currencies == {
        "cus_jane": {"EUR"},
        "cus_john": {"USD"},
        "cus_yuki": {"JPY"},
        "cus_fatima": {"KWD"},
    }


async def test_every_charge_state_is_present(demo: LedgerGateway) -> None:
    statuses: set[ChargeStatus] = set()
    for customer in ("cus_jane", "cus_john", "cus_yuki", "cus_fatima"):
        statuses |= {c.status for c in (await profile(demo, customer)).charges}
    assert statuses == set(ChargeStatus)


async def test_jane(demo: LedgerGateway) -> None:
    now = datetime.now(UTC)
    jane = await profile(demo, "Jane.Doe@example.com")
    assert (jane.customer.id, jane.customer.name) == ("cus_jane", "Jane Doe")

    charges = {c.id: c for c in jane.charges}
    assert charges["ch_jane_1"].status == ChargeStatus.succeeded
    assert charges["ch_jane_1"].refundable == Money.of(12000, "EUR")
    assert charges["ch_jane_2"].status == ChargeStatus.partially_refunded
    assert charges["ch_jane_2"].refunded == Money.of(1900, "EUR")
    assert [r.id for r in jane.refunds] == ["re_jane_2"]
    assert charges["ch_jane_auth"].status == ChargeStatus.authorized
    assert charges["ch_jane_disputed"].status == ChargeStatus.disputed
    assert charges["ch_jane_failed"].status == ChargeStatus.failed
    assert charges["ch_jane_failed"].failure_message

    [dispute] = jane.disputes
    assert dispute.charge_id == "ch_jane_disputed"
    assert dispute.status == DisputeStatus.needs_response
    assert dispute.evidence_due_by is not None and dispute.evidence_due_by > now

    subs = {s.id: s.status for s in jane.subscriptions}
    assert subs == {
        "sub_jane_pro": SubscriptionStatus.active,
        "sub_jane_starter": SubscriptionStatus.canceled,
    }
    pro = next(s for s in jane.subscriptions if s.id == "sub_jane_pro")
    assert pro.amount == Money.of(4900, "EUR")

    invoices = {i.id: i for i in jane.invoices}
    assert invoices["in_jane_paid"].status == InvoiceStatus.paid
    assert invoices["in_jane_open"].status == InvoiceStatus.open
    assert not invoices["in_jane_open"].is_overdue(now)
    assert invoices["in_jane_overdue"].is_overdue(now)


async def test_john_and_yuki(demo: LedgerGateway) -> None:
    john = await profile(demo, "john.smith@example.com")
    assert john.customer.id == "cus_john"
    assert [s.status for s in john.subscriptions] == [SubscriptionStatus.past_due]
    refunded = [c for c in john.charges if c.status == ChargeStatus.refunded]
    assert [c.refunded for c in refunded] == [Money.of(12000, "USD")]
    assert [r.charge_id for r in john.refunds] == [refunded[0].id]
    assert any(i.is_overdue() for i in john.invoices)

    yuki = await profile(demo, "yuki.tanaka@example.com")
    assert yuki.customer.id == "cus_yuki"
    assert {c.amount for c in yuki.charges} == {Money.of(5500, "JPY")}
    assert yuki.charges[0].amount.format() == "¥5,500"


async def test_kwd_has_three_decimals(demo: LedgerGateway) -> None:
    charge = await demo.get_charge("ch_fatima_1")
    assert charge.amount.plain() == "12.500 KWD"


async def test_gateway_actions_work_on_the_demo(demo: LedgerGateway) -> None:
    refund = await demo.refund(
        "ch_jane_1", Money.of(12000, "EUR"), reason="demo", idempotency_key="demo-refund"
    )
    assert refund.amount == Money.of(12000, "EUR")
    assert (await demo.get_charge("ch_jane_1")).status == ChargeStatus.refunded
    voided = await demo.void("ch_jane_auth", idempotency_key="demo-void")
    assert voided.status == ChargeStatus.voided
    canceled = await demo.cancel_subscription(
        "sub_jane_pro", at_period_end=True, reason="demo", idempotency_key="demo-cancel"
    )
    assert canceled.cancel_at_period_end
