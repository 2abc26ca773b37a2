"""Starting a Recurly subscription (`POST /subscriptions`) through the official client against
the emulator: plan code and currency, seats, a trial, a coupon, once per key however often
retried (Recurly keeps no idempotency key: our reference in the subscription's notes)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from bot.gateways.base import ErrorCode, GatewayError
from bot.gateways.recurly.gateway import RecurlyGateway
from bot.models import SubscriptionStatus
from bot.money import Money
from chargedesk_emulators.recurly import RecurlyEmulator, recurly_api, schema_problems
from tests.fakes.emulated_gateway import fixtures
from tests.fakes.recurly_env import Seeded, recurly_gateway, seed_contract_account

api, seeded, gateway = fixtures(recurly_api, seed_contract_account, recurly_gateway)


def started(api: RecurlyEmulator) -> list[dict]:  # type: ignore[type-arg]
    """The bodies of every `POST /subscriptions` the emulator received."""
    return [json.loads(e.body) for e in api.requests_to("POST", "/subscriptions")]


def subs_of(api: RecurlyEmulator, account_id: str) -> int:
    return sum(1 for s in api.subscriptions.values() if s.account_id == account_id)


async def test_a_price_is_a_plan_code_and_one_of_its_currencies(
    gateway: RecurlyGateway, seeded: Seeded
) -> None:
    eur = await gateway.get_price("pro-monthly:eur")
    assert (eur.id, eur.name, eur.amount, eur.interval) == (
        "pro-monthly:EUR", "Pro monthly", Money(minor=1800, currency="EUR"), "month",
    )  # fmt: skip
    single = await gateway.get_price("extra-seats")  # one currency: none needs naming
    assert single.id == "extra-seats:USD" and single.amount == Money(minor=500, currency="USD")
    with pytest.raises(GatewayError) as several:
        await gateway.get_price("pro-monthly")
    assert several.value.code == ErrorCode.rejected and "pro-monthly:EUR" in several.value.message
    with pytest.raises(GatewayError) as missing:
        await gateway.get_price("gold")
    assert missing.value.code == ErrorCode.not_found
    with pytest.raises(GatewayError) as currency:
        await gateway.get_price("extra-seats:GBP")
    assert currency.value.code == ErrorCode.currency_mismatch


async def test_recurly_subscribe_starts_one_subscription_however_often_retried(
    api: RecurlyEmulator, gateway: RecurlyGateway, seeded: Seeded
) -> None:
    before = subs_of(api, seeded.account_id)
    first = await gateway.create_subscription(
        seeded.account_id, "pro-monthly:USD", idempotency_key="appr-1", quantity=3
    )
    again = await gateway.create_subscription(
        seeded.account_id, "pro-monthly:USD", idempotency_key="appr-1", quantity=3
    )
    assert again.id == first.id and len(started(api)) == 1
    assert subs_of(api, seeded.account_id) == before + 1
    (body,) = started(api)
    assert body["plan_code"] == "pro-monthly" and body["currency"] == "USD"
    assert body["account"] == {"code": "jane-doe"} and body["quantity"] == 3
    assert (first.amount, first.quantity, first.status) == (
        Money(minor=6000, currency="USD"), 3, SubscriptionStatus.active,
    )  # fmt: skip
    sub = api.subscriptions[first.id]
    (invoice_id,) = sub.invoice_ids
    (payment,) = api.invoices[invoice_id].transaction_ids
    assert str(api.transactions[payment].amount) == "60.00"  # three seats, charged once
    assert schema_problems(api.exchanges, requests=True) == []


async def test_a_lost_answer_is_settled_by_reading_the_subscription_back(
    api: RecurlyEmulator, gateway: RecurlyGateway, seeded: Seeded
) -> None:
    before = subs_of(api, seeded.account_id)
    api.fail_next(1, 503, after=True, method="POST", path_prefix="/subscriptions")
    sub = await gateway.create_subscription(
        seeded.account_id, "pro-monthly:USD", idempotency_key="appr-lost"
    )
    assert len(started(api)) == 1 and subs_of(api, seeded.account_id) == before + 1
    assert sub.id in api.subscriptions
    retried = await gateway.create_subscription(
        seeded.account_id, "pro-monthly:USD", idempotency_key="appr-lost"
    )
    assert retried.id == sub.id and len(started(api)) == 1


async def test_a_trial_and_a_coupon_go_with_the_subscription(
    api: RecurlyEmulator, gateway: RecurlyGateway, seeded: Seeded
) -> None:
    api.add_coupon("SPRING", "Spring", percent=10)
    sub = await gateway.create_subscription(
        seeded.account_id, "pro-monthly:USD", idempotency_key="appr-trial",
        trial_days=14, coupon="SPRING",
    )  # fmt: skip
    (body,) = started(api)
    assert body["coupon_codes"] == ["SPRING"]
    ends = datetime.fromisoformat(body["trial_ends_at"].replace("Z", "+00:00"))
    assert abs(ends - (datetime.now(UTC) + timedelta(days=14))) < timedelta(minutes=1)
    assert sub.status == SubscriptionStatus.trialing
    assert api.subscriptions[sub.id].invoice_ids == []  # nothing charged during the trial
    assert any(r.coupon.code == "SPRING" for r in api.redemptions.values())


async def test_a_declined_card_starts_nothing_and_says_why(
    api: RecurlyEmulator, gateway: RecurlyGateway, seeded: Seeded
) -> None:
    api.set_card(seeded.account_id, "insufficient_funds")
    before = subs_of(api, seeded.account_id)
    with pytest.raises(GatewayError) as declined:
        await gateway.create_subscription(
            seeded.account_id, "pro-monthly:USD", idempotency_key="appr-declined"
        )
    assert declined.value.code == ErrorCode.card_declined
    assert declined.value.raw_code == "insufficient_funds"
    assert subs_of(api, seeded.account_id) == before


async def test_an_unknown_coupon_or_currency_is_refused_before_anything_starts(
    api: RecurlyEmulator, gateway: RecurlyGateway, seeded: Seeded
) -> None:
    with pytest.raises(GatewayError) as coupon:
        await gateway.create_subscription(
            seeded.account_id, "pro-monthly:USD", idempotency_key="k1", coupon="NOPE"
        )
    assert coupon.value.raw_code == "validation"
    with pytest.raises(GatewayError) as currency:
        await gateway.create_subscription(
            seeded.account_id, "extra-seats:EUR", idempotency_key="k2"
        )
    assert currency.value.code == ErrorCode.currency_mismatch
    assert len(started(api)) == 1  # the coupon's; the currency never left
    assert sum(1 for s in api.subscriptions.values() if s.account_id == seeded.account_id) == 2
