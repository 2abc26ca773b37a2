"""The demo dataset: a small, realistic ledger to try every command against.

Dates are relative to the moment it is built, so "overdue" and "evidence due in
7 days" stay true whenever the demo runs. IDs are fixed and readable. Customers
live in Ireland, the US, Japan, Kuwait and Poland, so documents show EU VAT
(one-stop shop), no tax, Japanese consumption tax and the reverse charge.

==========================  ========  ==========================================================
Customer                    Currency  Data
==========================  ========  ==========================================================
Jane Doe                    EUR       ``ch_jane_1`` 120.00 succeeded: refund in full or in part.
``cus_jane``                          ``ch_jane_2`` 49.00 partially refunded (19.00 by
jane.doe@example.com                  ``re_jane_2``). ``ch_jane_auth`` 250.00 authorized:
                                      capture or void. ``ch_jane_disputed`` 49.00 disputed
                                      (``dp_jane_1``, needs_response, evidence due in 7 days).
                                      ``ch_jane_failed`` 36.00 failed (insufficient funds).
                                      ``sub_jane_pro`` Pro 49.00/month active;
                                      ``sub_jane_starter`` Starter 19.00/month canceled.
                                      ``in_jane_paid`` paid; ``in_jane_open`` open, due in 14
                                      days; ``in_jane_overdue`` open, 10 days overdue.
John Smith                  USD       ``ch_john_1`` 120.00 refunded (``re_john_1``: charged
``cus_john``                          twice). ``ch_john_2`` 120.00 succeeded. ``ch_john_failed``
john.smith@example.com                120.00 failed (card expired). ``ch_john_hold`` 75.00
                                      voided. ``sub_john_team`` Team 120.00/month past_due.
                                      ``in_john_paid`` paid; ``in_john_overdue`` open, 2 days
                                      overdue.
Yuki Tanaka                 JPY       ``ch_yuki_1`` and ``ch_yuki_2`` ¥5,500 succeeded.
``cus_yuki``                          ``sub_yuki_basic`` Basic ¥5,500/month active.
yuki.tanaka@example.com               ``in_yuki_paid`` paid.
Fatima Al-Sabah             KWD       ``ch_fatima_1`` 12.500 KWD succeeded (three decimals).
``cus_fatima``                        ``sub_fatima_pro`` Pro 12.500 KWD/month active, set to
fatima.alsabah@example.com            cancel at period end. ``in_fatima_paid`` paid.
Kowalski Software           EUR       An EU business in Poland with a VAT ID (reverse charge,
``cus_kowalski``                      Polish documents). ``ch_kowalski_1`` 1,440.00 succeeded,
ksiegowosc@kowalski...                ``in_kowalski_paid`` paid, two lines.
==========================  ========  ==========================================================

Coupons: ``WELCOME10`` 10 % off for 3 months, ``LOYAL30`` 30 % off forever, ``SORRY10``
€10.00 off once, ``SORRY25`` €25.00 off once (`coupon sub_jane_pro WELCOME10 reason: ...`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bot.gateways.ledger.importer import ImportSummary, import_data
from bot.gateways.ledger.prices import put_prices
from bot.store.db import Database


def demo_data(now: datetime | None = None) -> dict[str, list[dict[str, Any]]]:
    """The dataset in the import's JSON shape (minor units), dated relative to `now`."""
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)

    def days(n: float) -> str:
        """`now` plus `n` days (negative: in the past), as ISO 8601 UTC."""
        return (now + timedelta(days=n)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    # A data table reads best one object a line: the formatter would spread each over ten.
    # fmt: off
    return {
        "customers": [
            _customer("cus_jane", "jane.doe@example.com", "Jane Doe", days(-420),
                      address=("14 Merrion Square", "D02 XY45", "Dublin", "IE"), locale="en_IE"),
            _customer("cus_john", "john.smith@example.com", "John Smith", days(-200),
                      address=("350 Fifth Avenue", "10118", "New York", "US"), locale="en_US",
                      state="NY"),
            _customer("cus_yuki", "yuki.tanaka@example.com", "Yuki Tanaka", days(-90),
                      address=("渋谷区道玄坂1-2-3", "150-0043", "東京都", "JP"), locale="ja_JP"),
            _customer("cus_fatima", "fatima.alsabah@example.com", "Fatima Al-Sabah", days(-60),
                      address=("Block 3, Street 14", "13001", "Kuwait City", "KW")),
            _customer("cus_kowalski", "ksiegowosc@kowalski.example.pl", "Kowalski Software sp. z o.o.",
                      days(-150), address=("ul. Złota 44", "00-120", "Warszawa", "PL"),
                      locale="pl_PL", tax_id="PL5260250274"),
        ],
        "charges": [
            # Jane, EUR
            _charge("ch_jane_1", "cus_jane", 12000, "EUR", "succeeded", days(-3),
                    "Onboarding workshop (2 hours)", invoice="in_jane_paid"),
            _charge("ch_jane_2", "cus_jane", 4900, "EUR", "partially_refunded", days(-33),
                    "Pro plan, monthly", amount_refunded=1900),
            _charge("ch_jane_auth", "cus_jane", 25000, "EUR", "authorized", days(-1),
                    "Card reader deposit, held until shipping"),
            _charge("ch_jane_disputed", "cus_jane", 4900, "EUR", "disputed", days(-63),
                    "Pro plan, monthly"),
            _charge("ch_jane_failed", "cus_jane", 3600, "EUR", "failed", days(-10),
                    "Extra seats (3), prorated", invoice="in_jane_overdue",
                    failure_message="Your card has insufficient funds."),
            # John, USD
            _charge("ch_john_1", "cus_john", 12000, "USD", "refunded", days(-40),
                    "Team plan, monthly (charged twice)", amount_refunded=12000),
            _charge("ch_john_2", "cus_john", 12000, "USD", "succeeded", days(-40),
                    "Team plan, monthly", invoice="in_john_paid"),
            _charge("ch_john_failed", "cus_john", 12000, "USD", "failed", days(-9),
                    "Team plan, monthly", invoice="in_john_overdue",
                    failure_message="Your card has expired."),
            _charge("ch_john_hold", "cus_john", 7500, "USD", "voided", days(-20),
                    "Setup fee hold, waived"),
            # Yuki, JPY: no minor unit, 5500 is ¥5,500
            _charge("ch_yuki_1", "cus_yuki", 5500, "JPY", "succeeded", days(-2),
                    "Basic plan, monthly", invoice="in_yuki_paid"),
            _charge("ch_yuki_2", "cus_yuki", 5500, "JPY", "succeeded", days(-32),
                    "Basic plan, monthly"),
            # Fatima, KWD: three decimals, 12500 is 12.500 KWD
            _charge("ch_fatima_1", "cus_fatima", 12500, "KWD", "succeeded", days(-5),
                    "Pro plan, monthly", invoice="in_fatima_paid"),
            # Kowalski, an EU business with a VAT ID: reverse charge
            _charge("ch_kowalski_1", "cus_kowalski", 144000, "EUR", "succeeded", days(-6),
                    "Team plan, annual, and onboarding", invoice="in_kowalski_paid"),
        ],
        "refunds": [
            {"id": "re_jane_2", "charge": "ch_jane_2", "amount": 1900, "currency": "EUR",
             "reason": "Goodwill credit for a day-long outage", "created": days(-30)},
            {"id": "re_john_1", "charge": "ch_john_1", "amount": 12000, "currency": "USD",
             "reason": "Duplicate of ch_john_2", "created": days(-39)},
        ],
        "disputes": [
            {"id": "dp_jane_1", "charge": "ch_jane_disputed", "amount": 4900, "currency": "EUR",
             "reason": "unrecognized", "status": "needs_response", "evidence_due_by": days(7)},
        ],
        "subscriptions": [
            _subscription("sub_jane_pro", "cus_jane", "Pro", "active", 4900, "EUR",
                          period_end=days(27)),
            _subscription("sub_jane_starter", "cus_jane", "Starter", "canceled", 1900, "EUR",
                          period_end=days(-95), canceled_at=days(-95)),
            _subscription("sub_john_team", "cus_john", "Team", "past_due", 12000, "USD",
                          period_end=days(-9)),
            _subscription("sub_yuki_basic", "cus_yuki", "Basic", "active", 5500, "JPY",
                          period_end=days(28)),
            _subscription("sub_fatima_pro", "cus_fatima", "Pro", "active", 12500, "KWD",
                          period_end=days(25), cancel_at_period_end=True),
        ],
        "invoices": [
            _invoice("in_jane_paid", "cus_jane", "JANE-0001", "paid", 12000, "EUR",
                     created=days(-3), due=days(-3), charge="ch_jane_1"),
            _invoice("in_jane_overdue", "cus_jane", "JANE-0002", "open", 3600, "EUR",
                     created=days(-24), due=days(-10), charge="ch_jane_failed"),
            _invoice("in_jane_open", "cus_jane", "JANE-0003", "open", 4900, "EUR",
                     created=days(-1), due=days(14)),
            _invoice("in_john_paid", "cus_john", "JOHN-0001", "paid", 12000, "USD",
                     created=days(-40), due=days(-40), charge="ch_john_2"),
            _invoice("in_john_overdue", "cus_john", "JOHN-0002", "open", 12000, "USD",
                     created=days(-9), due=days(-2), charge="ch_john_failed"),
            _invoice("in_yuki_paid", "cus_yuki", "YUKI-0001", "paid", 5500, "JPY",
                     created=days(-2), due=days(-2), charge="ch_yuki_1"),
            _invoice("in_fatima_paid", "cus_fatima", "FATIMA-0001", "paid", 12500, "KWD",
                     created=days(-5), due=days(-5), charge="ch_fatima_1"),
            _invoice("in_kowalski_paid", "cus_kowalski", "KOWALSKI-0001", "paid", 144000, "EUR",
                     created=days(-6), due=days(-6), charge="ch_kowalski_1",
                     lines=[("Team plan, annual (12 seats)", 12, 108000),
                            ("Onboarding workshop", 1, 36000)]),
        ],
        "coupons": [
            {"id": "WELCOME10", "name": "Welcome offer", "percent_off": 10,
             "duration": "repeating", "duration_in_months": 3},
            {"id": "LOYAL30", "name": "Loyalty", "percent_off": 30, "duration": "forever"},
            {"id": "SORRY10", "name": "Apology", "currency": "EUR", "amount_off": 1000},
            {"id": "SORRY25", "name": "Big apology", "currency": "EUR", "amount_off": 2500},
        ],
    }
    # fmt: on


# Plans to `subscribe` someone to or move them between with `plan` (minor units, per seat).
DEMO_PRICES = (
    {"id": "price_starter", "name": "Starter", "amount": 1900, "currency": "EUR"},
    {"id": "price_pro", "name": "Pro", "amount": 4900, "currency": "EUR"},
    {"id": "price_team", "name": "Team", "amount": 12000, "currency": "EUR"},
    {"id": "price_team_usd", "name": "Team", "amount": 12000, "currency": "USD"},
    {"id": "price_basic_jpy", "name": "Basic", "amount": 5500, "currency": "JPY"},
)


async def load_demo(db: Database, now: datetime | None = None) -> ImportSummary:
    """Import the demo dataset; loading it again refreshes it in place."""
    summary = await import_data(db, demo_data(now), source="demo")
    await put_prices(db, DEMO_PRICES)
    return summary


def _customer(
    customer_id: str,
    email: str,
    name: str,
    created: str,
    *,
    address: tuple[str, str, str, str],
    locale: str | None = None,
    state: str | None = None,
    tax_id: str | None = None,
) -> dict[str, Any]:
    line1, postal_code, city, country = address
    return {
        "id": customer_id, "email": email, "name": name, "created": created,
        "address_line1": line1, "postal_code": postal_code, "city": city, "state": state,
        "country": country, "locale": locale, "tax_id": tax_id,
    }  # fmt: skip


def _charge(
    charge_id: str,
    customer: str,
    amount: int,
    currency: str,
    status: str,
    created: str,
    description: str,
    *,
    amount_refunded: int = 0,
    invoice: str | None = None,
    failure_message: str | None = None,
) -> dict[str, Any]:
    return {
        "id": charge_id,
        "customer": customer,
        "amount": amount,
        "currency": currency,
        "status": status,
        "amount_refunded": amount_refunded,
        "created": created,
        "description": description,
        "invoice": invoice,
        "failure_message": failure_message,
    }


def _subscription(
    subscription_id: str,
    customer: str,
    plan: str,
    status: str,
    amount: int,
    currency: str,
    *,
    period_end: str,
    canceled_at: str | None = None,
    cancel_at_period_end: bool = False,
) -> dict[str, Any]:
    return {
        "id": subscription_id,
        "customer": customer,
        "plan": plan,
        "status": status,
        "amount": amount,
        "currency": currency,
        "interval": "month",
        "current_period_end": period_end,
        "cancel_at_period_end": cancel_at_period_end,
        "canceled_at": canceled_at,
    }


def _invoice(
    invoice_id: str,
    customer: str,
    number: str,
    status: str,
    amount_due: int,
    currency: str,
    *,
    created: str,
    due: str,
    charge: str | None = None,
    lines: list[tuple[str, int, int]] | None = None,
) -> dict[str, Any]:
    return {
        "lines": [{"description": d, "quantity": q, "amount": a} for d, q, a in lines]
        if lines
        else None,
        "id": invoice_id,
        "customer": customer,
        "number": number,
        "status": status,
        "amount_due": amount_due,
        "currency": currency,
        "due_date": due,
        "created": created,
        "charge": charge,
    }
