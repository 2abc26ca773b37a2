"""Payment requests: the reminder schedule from settings, and emails in the customer's language."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from bot import jobs
from bot.gateways.base import LookupQuery
from bot.mail.message import HeaderRefused
from bot.money import Money
from bot.payment_requests import create, reminders
from bot.settings import PaymentRequestSettings, Settings
from bot.store.tables import EmailRow, LedgerCustomer, PaymentRequestRow
from tests.commands.test_payment_requests import body as text_of
from tests.commands.test_payment_requests import sent
from tests.conftest import say

pytestmark = pytest.mark.storage

WHY = "reason: pays by link"


async def only_request(services: Any) -> PaymentRequestRow:
    async with services.db.read() as s:
        (row,) = list(await s.scalars(select(PaymentRequestRow)))
    return row


async def speaks(services: Any, customer_id: str, locale: str) -> None:
    async with services.db.write() as s:
        row = await s.get(LedgerCustomer, customer_id)
        assert row is not None
        row.locale = locale


# --- the schedule ------------------------------------------------------------------------


def test_a_reminder_on_or_after_the_lifetime_is_a_clear_settings_error() -> None:
    with pytest.raises(ValidationError) as late:
        Settings(payment_requests={"reminder_days": [3, 14], "lifetime_days": 14})
    assert "reminder_days [14]: a reminder must come before lifetime_days (14)" in str(late.value)
    with pytest.raises(ValidationError) as unordered:
        PaymentRequestSettings(reminder_days=[7, 3])
    assert "each day once, in increasing order" in str(unordered.value)
    with pytest.raises(ValidationError):
        PaymentRequestSettings(reminder_days=[0])
    assert PaymentRequestSettings(reminder_days=[], lifetime_days=2).reminder_days == []


def test_the_schedule_comes_from_the_environment_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHARGEDESK_PAYMENT_REQUESTS__REMINDER_DAYS", "[1, 2]")
    monkeypatch.setenv("CHARGEDESK_PAYMENT_REQUESTS__LIFETIME_DAYS", "5")
    configured = Settings().payment_requests
    assert (configured.reminder_days, configured.lifetime_days) == ([1, 2], 5)


async def test_reminders_and_expiry_follow_the_configured_days(services, agent) -> None:
    services.settings.payment_requests = PaymentRequestSettings(reminder_days=[1], lifetime_days=2)
    said = await say(services, agent, f"request ledger:cus_jane 10.00 EUR Order 5 {WHY}")
    assert said.error is None, said.error
    row = await only_request(services)
    assert row.next_reminder_at == row.created + timedelta(days=1)
    assert "0 of 1 reminders sent" in str(said.cards[0].sections)
    assert await reminders.run(services, now=row.created + timedelta(hours=23)) == 0
    assert await reminders.run(services, now=row.created + timedelta(days=1, minutes=1)) == 1
    assert (await only_request(services)).next_reminder_at is None  # the one reminder is sent
    assert await reminders.run(services, now=row.created + timedelta(days=1, hours=23)) == 0
    assert await reminders.run(services, now=row.created + timedelta(days=2, minutes=1)) == 1
    closed = await only_request(services)
    assert closed.state == "expired"
    async with services.db.read() as s:
        purposes = sorted(await s.scalars(select(EmailRow.purpose)))
    assert purposes == [f"payment_request:{row.id}:0", f"payment_request:{row.id}:1"]


# --- the customer's language -------------------------------------------------------------


async def test_a_japanese_customer_gets_the_request_and_reminder_in_japanese(
    services, agent
) -> None:
    await speaks(services, "cus_jane", "ja_JP")
    said = await say(services, agent, f"request ledger:cus_jane 10.00 EUR 注文 42 {WHY}")
    assert said.error is None, said.error
    row = await only_request(services)
    assert row.locale == "ja_JP"
    await reminders.run(services, now=row.created + timedelta(days=3, minutes=1))
    await jobs.run_worker(services, burst=True)
    first, reminder = sent(services)
    amount = Money(minor=1000, currency="EUR").format("ja_JP")
    assert first["Subject"] == f"お支払いのお願い：注文 42の{amount}"
    assert reminder["Subject"] == f"リマインダー：お支払いのお願い：注文 42の{amount}"
    body = text_of(first)
    assert f"注文 42の代金{amount}のお支払いをお願い申し上げます" in body
    assert "/portal/request/plink_" in body  # the pay page's link, filled in when sent
    assert "Hello" not in body


async def test_a_customer_without_a_locale_of_ours_gets_english(services, agent) -> None:
    await speaks(services, "cus_jane", "sv_SE")  # Swedish: not one of our languages
    said = await say(services, agent, f"request ledger:cus_jane 10.00 EUR Order 6 {WHY}")
    assert said.error is None, said.error
    await jobs.run_worker(services, burst=True)
    (message,) = sent(services)
    assert message["Subject"].startswith("Payment request: ") and "Order 6" in message["Subject"]


async def test_a_german_customer_gets_german_words_and_amounts(services, agent) -> None:
    await speaks(services, "cus_jane", "de_DE")
    said = await say(services, agent, f"request ledger:cus_jane 1234.50 EUR Bestellung 7 {WHY}")
    assert said.error is None, said.error
    await jobs.run_worker(services, burst=True)
    (message,) = sent(services)
    assert message["Subject"] == "Zahlungsaufforderung: 1.234,50\xa0€ für Bestellung 7"


async def test_a_line_break_in_a_japanese_description_cannot_add_a_header(services, agent) -> None:
    await speaks(services, "cus_jane", "ja_JP")
    ledger = services.gateways.get("ledger")
    (profile,) = await ledger.lookup(LookupQuery("email", "jane.doe@example.com"))
    for evil in ("注文\r\nBcc: x@evil.example", "注文\nX-Injected: 1", "注文\rTo: x@evil.example"):
        with pytest.raises(HeaderRefused):
            await create(
                services, agent, ledger, profile.customer, Money(minor=500, currency="EUR"),
                description=evil, reason="pays by link",
            )  # fmt: skip
    async with services.db.read() as s:
        assert list(await s.scalars(select(PaymentRequestRow))) == []
        assert list(await s.scalars(select(EmailRow))) == []
