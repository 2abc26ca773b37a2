"""The billing index: every gateway mirrored, resumable syncs, fresh from webhooks and actions,
and the revenue and invoice reports read from it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from bot.errors import UserError
from bot.gateways.registry import Gateways
from bot.index.rows import row
from bot.index.store import upsert
from bot.index.sync import LOCK_SECONDS, sync_gateway
from bot.models import (
    Charge,
    ChargeStatus,
    Customer,
    Dispute,
    DisputeStatus,
    Invoice,
    InvoiceStatus,
    Refund,
)
from bot.money import Money
from bot.reports.invoices import invoices_report
from bot.reports.period import parse_period
from bot.reports.revenue import revenue_report
from bot.services import Services
from bot.store.tables import IndexedObject, LedgerCharge
from tests.conftest import say
from tests.fakes.stripe_env import stripe_fake
from tests.index.syncing import Crash, sync_killed

pytestmark = pytest.mark.storage


async def indexed(services: Services, kind: str | None = None) -> list[IndexedObject]:
    async with services.db.read() as session:
        query = select(IndexedObject).order_by(IndexedObject.gateway, IndexedObject.object_id)
        if kind:
            query = query.where(IndexedObject.kind == kind)
        return list(await session.scalars(query))


def charge_lists(fake) -> list[object]:  # type: ignore[no-untyped-def]
    return [r for r in fake.emulator.requests if (r.method, r.path) == ("GET", "/v1/charges")]


async def test_a_sync_killed_between_pages_resumes_where_it_stopped_and_writes_nothing_twice(
    services,
):
    ledger = services.gateways.get("ledger")
    seen: list[tuple[str, int]] = []

    def die_after_two_pages(gateway: str, kind: str, written: int) -> None:
        seen.append((kind, written))
        if kind == "charge" and written >= 4:
            raise Crash

    cursor = await sync_killed(services, ledger, when=die_after_two_pages)
    assert cursor.synced == 4

    result = await sync_gateway(services, ledger, page_size=2)
    charges = await indexed(services, "charge")
    async with services.db.read() as session:
        in_ledger = await session.scalar(select(func.count()).select_from(LedgerCharge))
    assert len(charges) == in_ledger and result.written["charge"] == in_ledger - 4
    jane = next(c for c in await indexed(services, "customer") if c.object_id == "cus_jane")
    assert (jane.email, jane.name_key) == ("jane.doe@example.com", "jane doe")
    again = await sync_gateway(services, ledger, page_size=2)
    assert again.total == 0  # nothing new since: every cursor carries on after its last row


async def test_two_syncs_of_one_gateway_at_once_are_refused_not_doubled(services):
    ledger = services.gateways.get("ledger")
    lock = services.redis.lock(services.key("lock", "sync", "ledger"), timeout=10)
    assert await lock.acquire()
    try:
        with pytest.raises(UserError, match="a sync of ledger is running already"):
            await sync_gateway(services, ledger)
    finally:
        await lock.release()


async def test_stripe_is_walked_back_once_then_only_what_is_new_is_read(services):
    async with stripe_fake() as fake:
        services.gateways = Gateways([*services.gateways, fake.gateway], timeout=5)
        customer = fake.emulator.add_customer("ana@example.com", "Ana Lima")
        for amount in (1000, 2000, 3000):
            fake.emulator.add_payment(customer["id"], amount, "eur")
        fake.emulator.fail_next(2, 429, path="/v1/charges")  # slow down, twice
        first = await sync_gateway(services, fake.gateway, page_size=2, pause=0.01)
        charges = await indexed(services, "charge")
        assert first.written["charge"] == len(charges) == 6  # 3 seeded by the fake, 3 here
        new = fake.emulator.add_payment(customer["id"], 4200, "eur")
        listed = len(charge_lists(fake))
        second = await sync_gateway(services, fake.gateway, page_size=2, pause=0.01)
        assert second.written["charge"] == 1
        assert len(charge_lists(fake)) - listed == 1  # one page, forward
        got = {c.object_id: c for c in await indexed(services, "charge")}[new["id"]]
        assert (got.amount, got.currency, got.exponent, got.customer_id) == (
            4200,
            "EUR",
            2,
            customer["id"],
        )
        ana = next(c for c in await indexed(services, "customer") if c.object_id == customer["id"])
        assert (ana.email, ana.name_key) == ("ana@example.com", "ana lima")


async def test_a_refund_the_bot_made_is_in_the_index_with_the_approval(services, agent):
    reply = await say(services, agent, "refund ch_jane_1 12.00 reason: goodwill late parcel")
    assert reply.approval.state == "succeeded"
    (refund,) = await indexed(services, "refund")
    assert (refund.related_id, refund.amount, refund.currency, refund.customer_id) == (
        "ch_jane_1", 1200, "EUR", "cus_jane",
    )  # fmt: skip


async def test_what_one_source_does_not_know_never_erases_what_another_told(services):
    now = datetime.now(UTC)
    who = Customer(gateway="ledger", id="cus_x", email="X@Example.com", name="Xavier Ü")
    charge = Charge(gateway="ledger", id="ch_x", customer_id="cus_x", amount=Money(minor=500, currency="EUR"),
                    status=ChargeStatus.succeeded, created=now)  # fmt: skip
    async with services.db.write() as session:
        await upsert(session, [row(charge, synced_at=now, customer=who)])
        await upsert(
            session, [row(charge.model_copy(update={"amount_refunded": 200}), synced_at=now)]
        )
    (found,) = await indexed(services, "charge")
    assert (found.email, found.name_key, found.amount_settled) == ("x@example.com", "xavier ü", 200)


async def _seed_for_reports(services: Services) -> None:
    day = datetime(2026, 11, 3, 12, tzinfo=UTC)
    objects = [
        Charge(gateway="stripe", id="ch_1", customer_id="c", amount=Money(minor=10000, currency="EUR"),
               status=ChargeStatus.succeeded, created=day),
        Charge(gateway="ledger", id="ch_2", customer_id="c", amount=Money(minor=5000, currency="EUR"),
               status=ChargeStatus.partially_refunded, created=day + timedelta(days=10)),
        Charge(gateway="ledger", id="ch_3", customer_id="c", amount=Money(minor=7000, currency="JPY"),
               status=ChargeStatus.succeeded, created=day),
        Charge(gateway="ledger", id="ch_4", customer_id="c", amount=Money(minor=999, currency="EUR"),
               status=ChargeStatus.failed, created=day),
        Refund(gateway="ledger", id="re_1", charge_id="ch_2", amount=Money(minor=1500, currency="EUR"),
               created=day + timedelta(days=11)),
        Dispute(gateway="stripe", id="dp_1", charge_id="ch_1", amount=Money(minor=2000, currency="EUR"),
                reason="fraudulent", status=DisputeStatus.lost),
    ]  # fmt: skip
    rows = [row(o, synced_at=day) for o in objects]
    rows[-1]["created"] = day + timedelta(days=20)  # disputes carry no date of their own here
    async with services.db.write() as session:
        await upsert(session, rows)


async def test_revenue_is_gross_less_refunds_and_lost_disputes_per_currency_never_added_together(
    services, manager
):
    await _seed_for_reports(services)
    report = await revenue_report(services, parse_period("2026-11"))
    assert [r[:3] for r in report.rows] == [("2026-11", "EUR", 2), ("2026-11", "JPY", 1)]
    eur = report.rows[0]
    assert eur[3:] == (
        Money(minor=15000, currency="EUR"), Money(minor=1500, currency="EUR"),
        Money(minor=2000, currency="EUR"), Money(minor=11500, currency="EUR"),
    )  # fmt: skip
    assert report.rows[1][6] == Money(minor=7000, currency="JPY")
    weekly = await revenue_report(services, parse_period("2026-11"), by="week", currency="eur")
    assert [r[0] for r in weekly.rows] == ["2026-11-02", "2026-11-09", "2026-11-23"]  # Mondays
    only_stripe = await revenue_report(services, parse_period("2026-11"), gateway="stripe")
    assert only_stripe.totals[0][6] == Money(minor=8000, currency="EUR")
    reply = await say(services, manager, "report revenue 2026-11 week currency=EUR csv")
    assert reply.error is None, reply.error
    assert (
        reply.files[0]
        .content.decode("utf-8-sig")
        .splitlines()[-1]
        .startswith('"Total (EUR)","EUR","2"')
    )


async def test_open_invoices_are_aged_from_their_due_dates(services, manager):
    today = datetime(2026, 12, 7, tzinfo=UTC)
    invoices = [
        Invoice(gateway="ledger", id=f"in_{n}", customer_id="c", number=f"INV-{n}", status=InvoiceStatus.open,
                amount_due=Money(minor=1000 * n, currency="EUR"), amount_paid=Money(minor=100, currency="EUR"),
                due_date=today - timedelta(days=days), created=today - timedelta(days=days + 14))
        for n, days in ((1, -5), (2, 10), (3, 45), (4, 75), (5, 200))
    ]  # fmt: skip
    paid = Invoice(gateway="ledger", id="in_6", customer_id="c", number="INV-6", status=InvoiceStatus.paid,
                   amount_due=Money(minor=900, currency="EUR"), amount_paid=Money(minor=900, currency="EUR"),
                   due_date=today - timedelta(days=40), paid_at=today - timedelta(days=2))  # fmt: skip
    async with services.db.write() as session:
        await upsert(session, [row(i, synced_at=today) for i in [*invoices, paid]])
    report = await invoices_report(services, parse_period("this-month"), now=today)
    assert [(r[1], r[6], r[8]) for r in report.rows] == [
        ("INV-5", "over 90 days", Money(minor=4900, currency="EUR")),
        ("INV-4", "61-90 days", Money(minor=3900, currency="EUR")),
        ("INV-3", "31-60 days", Money(minor=2900, currency="EUR")),
        ("INV-2", "1-30 days", Money(minor=1900, currency="EUR")),
        ("INV-1", "not yet due", Money(minor=900, currency="EUR")),
    ]
    overdue = await invoices_report(
        services, parse_period("this-month"), which="overdue", now=today
    )
    assert "INV-1" not in [r[1] for r in overdue.rows]
    late = await invoices_report(services, parse_period("2026-12"), which="paid-late", now=today)
    assert [(r[1], r[5]) for r in late.rows] == [("INV-6", 38)]
    numbered = {i.number: i.object_id for i in await indexed(services, "invoice")}
    assert numbered["INV-3"] == "in_3"
    reply = await say(services, manager, "report invoices overdue")
    assert reply.error is None, reply.error


async def test_report_words_that_fit_nothing_are_one_line_naming_them(services, manager):
    reply = await say(services, manager, "report revenue fortnight")
    assert reply.error is not None and "'fortnight' is not a period" in reply.error.message
    assert "\n" not in reply.error.message


async def test_a_sync_lock_outlives_a_dead_holder_by_a_minute_at_most_while_kept_by_a_live_one(
    services,
):
    """A process killed mid-sync cannot renew its lock: the gateway is free again within
    LOCK_SECONDS, not ten minutes. A live sync renews it after every page."""
    key = services.key("lock", "sync", "stripe")
    async with stripe_fake() as fake:
        services.gateways = Gateways([*services.gateways, fake.gateway], timeout=5)
        fake.emulator.delay_next(0.5, 2, path="/v1/charges")
        running = asyncio.create_task(sync_gateway(services, fake.gateway, page_size=1))
        ttls = []
        while not running.done():
            ttls.append(await services.redis.pttl(key))
            await asyncio.sleep(0.05)
        await running
    held = [t for t in ttls if t > 0]
    assert held and max(held) <= 60_000 and LOCK_SECONDS <= 60
    assert await services.redis.exists(key) == 0  # released at the end
