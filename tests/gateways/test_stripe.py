"""The Stripe gateway through the real stripe SDK against our emulator (and localstripe).

What the shared contract suite does not reach: lookups by every ID kind and by
search, the profile's mapping, Stripe's minor units, error mapping, Stripe's
idempotency and retries, and webhooks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import stripe

from bot.gateways.base import (
    Capability,
    ErrorCode,
    GatewayError,
    LookupQuery,
    WebhookRejected,
)
from bot.gateways.events import EventKind
from bot.gateways.stripe.gateway import StripeGateway
from bot.gateways.stripe.mapping import (
    describe_discount,
    from_stripe_amount,
    stripe_exponent,
    to_stripe_amount,
)
from bot.models import ChargeStatus, DisputeStatus, InvoiceStatus, SubscriptionStatus
from bot.money import Money
from bot.tax_ids import InvalidTaxId
from chargedesk_emulators.stripe import StripeEmulator, sign
from tests.fakes.stripe_env import (
    WEBHOOK_SECRET,
    FakeStripe,
    stripe_fake,
    stripe_localstripe_env,
    stripe_settings,
)

pytestmark = [
    # The stripe SDK hands httpx its form body as `data=str`, which httpx deprecates.
    pytest.mark.filterwarnings("ignore:Use 'content=:DeprecationWarning"),
    # localstripe's handlers are plain functions, which aiohttp deprecates.
    pytest.mark.filterwarnings("ignore:Bare functions are deprecated:DeprecationWarning"),
]


def eur(minor: int) -> Money:
    return Money(minor=minor, currency="EUR")


@pytest.fixture
async def fake(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeStripe]:
    # The SDK waits at least 0.5 s before retrying; tests need not.
    monkeypatch.setattr(stripe.HTTPClient, "INITIAL_DELAY", 0.01)
    async with stripe_fake() as found:
        found.gateway.retry_delay = 0.01
        yield found


def posts(emulator: StripeEmulator, path: str) -> list[Any]:
    return [r for r in emulator.requests if r.method == "POST" and r.path == path]


# --- lookup ------------------------------------------------------------------------------


async def test_lookup_by_email_finds_the_customer_and_their_charges(fake: FakeStripe) -> None:
    env = fake.env
    [profile] = await fake.gateway.lookup(LookupQuery.parse(env.email.upper()))
    assert profile.gateway == "stripe"
    assert profile.customer.id == env.customer_id
    assert profile.customer.email == env.email and profile.customer.name == "Contract Customer"
    statuses = {c.id: c.status for c in profile.charges}
    assert statuses == {
        env.charge_id: ChargeStatus.succeeded,
        env.authorized_ids[0]: ChargeStatus.authorized,
        env.authorized_ids[1]: ChargeStatus.authorized,
    }
    charge = next(c for c in profile.charges if c.id == env.charge_id)
    assert charge.amount == eur(10000) and charge.refundable == eur(10000)
    assert charge.payment_intent_id and charge.payment_intent_id.startswith("pi_")
    assert {s.id for s in profile.subscriptions} == set(env.subscription_ids)
    assert {(s.plan, s.amount, s.status) for s in profile.subscriptions} == {
        ("Basic monthly", eur(2000), SubscriptionStatus.active),
        ("Extra storage", eur(999), SubscriptionStatus.active),
    }
    assert all(s.current_period_end for s in profile.subscriptions)
    searches = [r for r in fake.emulator.requests if r.path == "/v1/customers/search"]
    assert searches[0].params["query"] == f"email:'{env.email}'"


async def test_search_finds_addresses_the_exact_list_misses(fake: FakeStripe) -> None:
    mixed = fake.emulator.add_customer("Mixed.Case@Example.COM", "Mixed")
    [profile] = await fake.gateway.lookup(LookupQuery.parse("mixed.case@example.com"))
    assert profile.customer.id == mixed["id"]


async def test_list_finds_customers_search_has_not_indexed_yet(fake: FakeStripe) -> None:
    indexed = fake.emulator.add_customer("twice@example.com", "Old")
    fresh = fake.emulator.add_customer("twice@example.com", "New", searchable=False)
    profiles = await fake.gateway.lookup(LookupQuery.parse("twice@example.com"))
    found = [p.customer.id for p in profiles]
    assert sorted(found) == sorted([fresh["id"], indexed["id"]])  # each once


async def test_lookup_falls_back_to_the_list_when_search_is_missing(fake: FakeStripe) -> None:
    fake.emulator.search = False
    [profile] = await fake.gateway.lookup(LookupQuery.parse(fake.env.email))
    assert profile.customer.id == fake.env.customer_id


async def test_an_unknown_email_finds_nobody(fake: FakeStripe) -> None:
    assert await fake.gateway.lookup(LookupQuery.parse("nobody@example.com")) == []


@pytest.mark.parametrize("kind", ["cus", "ch", "pi", "in", "sub", "dp", "re"])
async def test_lookup_by_every_id_kind_finds_the_owner(fake: FakeStripe, kind: str) -> None:
    em, env = fake.emulator, fake.env
    charge = em.get(env.charge_id)
    ids = {
        "cus": env.customer_id,
        "ch": env.charge_id,
        "pi": charge["payment_intent"],
        "in": em.add_invoice(env.customer_id, 1500)["id"],
        "sub": env.subscription_ids[1],
        "dp": em.add_dispute(env.charge_id)["id"],
        "re": em.add_refund(env.authorized_ids[0])["id"],
    }
    [profile] = await fake.gateway.lookup(LookupQuery.parse(ids[kind]))
    assert profile.customer.id == env.customer_id


@pytest.mark.parametrize(
    "object_id",
    [
        "cus_missing",
        "ch_missing",
        "pi_missing",
        "in_missing",
        "sub_missing",
        "dp_missing",
        "re_missing",
        "txn_123",
        "hello",
    ],
)
async def test_ids_stripe_does_not_know_find_nobody(fake: FakeStripe, object_id: str) -> None:
    assert await fake.gateway.lookup(LookupQuery.parse(object_id)) == []


async def test_a_charge_without_a_customer_finds_nobody(fake: FakeStripe) -> None:
    charge = fake.emulator.add_payment(None, 500)  # a guest checkout
    assert await fake.gateway.lookup(LookupQuery.parse(charge["id"])) == []


# --- profile mapping ---------------------------------------------------------------------


async def test_profile_maps_every_charge_status(fake: FakeStripe) -> None:
    em, gw = fake.emulator, fake.gateway
    customer = em.add_customer("statuses@example.com", "Statuses")
    cid = customer["id"]
    succeeded = em.add_payment(cid, 1000)
    partly = em.add_payment(cid, 1000)
    em.add_refund(partly["id"], 400)
    refunded = em.add_payment(cid, 1000)
    em.add_refund(refunded["id"])
    disputed = em.add_payment(cid, 1000, payment_method="pm_card_createDispute")
    with pytest.raises(ValueError, match="declined"):
        em.add_payment(cid, 1000, payment_method="pm_card_chargeDeclined")
    authorized = em.add_payment(cid, 1000, capture=False)
    voided = em.add_payment(cid, 1000, capture=False)
    await gw.void(voided["id"], idempotency_key="void-1")
    captured = em.add_payment(cid, 1000, capture=False)
    await gw.capture(captured["id"], eur(600), idempotency_key="cap-1")

    [profile] = await gw.lookup(LookupQuery.parse(cid))
    # Refunds came embedded in the charge list, not one request per refunded charge.
    assert not any(r.method == "GET" and r.path == "/v1/refunds" for r in em.requests)
    by_id = {c.id: c for c in profile.charges}
    failed = next(c for c in profile.charges if c.status == ChargeStatus.failed)
    assert failed.failure_message == "Your card was declined."
    expected = {
        succeeded["id"]: (ChargeStatus.succeeded, 1000, 0),
        partly["id"]: (ChargeStatus.partially_refunded, 1000, 400),
        refunded["id"]: (ChargeStatus.refunded, 1000, 1000),
        disputed["id"]: (ChargeStatus.disputed, 1000, 0),
        failed.id: (ChargeStatus.failed, 0, 0),
        authorized["id"]: (ChargeStatus.authorized, 0, 0),
        voided["id"]: (ChargeStatus.voided, 0, 0),
        captured["id"]: (ChargeStatus.succeeded, 600, 0),
    }
    assert {
        i: (c.status, c.amount_captured, c.amount_refunded) for i, c in by_id.items()
    } == expected
    assert by_id[captured["id"]].refundable == eur(600)
    assert [c.created for c in profile.charges] == sorted(
        (c.created for c in profile.charges), reverse=True
    )
    refunds = {(r.charge_id, r.amount) for r in profile.refunds}
    assert (partly["id"], eur(400)) in refunds and (refunded["id"], eur(1000)) in refunds
    [dispute] = profile.disputes
    assert (dispute.charge_id, dispute.status, dispute.reason) == (
        disputed["id"],
        DisputeStatus.needs_response,
        "fraudulent",
    )
    assert dispute.amount == eur(1000) and dispute.evidence_due_by is not None


async def test_profile_shows_invoices_with_links_tax_ids_and_discounts(fake: FakeStripe) -> None:
    em, gw = fake.emulator, fake.gateway
    cid = fake.env.customer_id
    draft = em.add_invoice(cid, 1500, description="Draft")
    open_ = em.add_invoice(cid, 4900, description="Onboarding", finalize=True)
    paid = em.add_invoice(cid, 2500, pay=True)
    em.add_tax_id(cid, "eu_vat", "DE123456789", verified=True)
    em.add_tax_id(cid, "gb_vat", "GB123456789")
    em.add_coupon(
        "LOYAL", amount_off=500, currency="eur", duration="repeating", duration_in_months=3
    )
    em.add_customer_discount(cid, "LOYAL")
    em.add_coupon("WELCOME", percent_off=10, duration="forever", name="Welcome")
    em.add_promotion_code("WELCOME", "WELCOME10")
    await gw.apply_coupon(fake.env.subscription_ids[0], "WELCOME10", idempotency_key="coupon-1")

    [profile] = await gw.lookup(LookupQuery.parse(fake.env.email))
    invoices = {i.id: i for i in profile.invoices}
    assert invoices[draft["id"]].status == InvoiceStatus.draft
    assert invoices[draft["id"]].pdf_url is None
    assert invoices[open_["id"]].status == InvoiceStatus.open
    assert invoices[open_["id"]].amount_due == eur(4900)
    assert invoices[open_["id"]].pdf_url == open_["invoice_pdf"]
    assert invoices[open_["id"]].hosted_url == open_["hosted_invoice_url"]
    assert invoices[open_["id"]].number == open_["number"]
    assert invoices[open_["id"]].due_date is not None
    assert invoices[paid["id"]].status == InvoiceStatus.paid
    assert invoices[paid["id"]].amount_paid == eur(2500)
    assert {(t.type, t.value, t.country, t.verified) for t in profile.tax_ids} == {
        ("eu_vat", "DE123456789", "DE", True),
        ("gb_vat", "GB123456789", "GB", None),
    }
    assert set(profile.discounts) == {
        "LOYAL: €5.00 off, for 3 months",
        "WELCOME10: 10% off, forever",
    }


async def test_charges_are_capped() -> None:
    async with stripe_fake() as found:
        for _ in range(5):
            found.emulator.add_payment(found.env.customer_id, 100)
        gateway = StripeGateway(
            stripe_settings(found.emulator.url, found.emulator.api_key or ""), max_charges=4
        )
        try:
            [profile] = await gateway.lookup(LookupQuery.parse(found.env.customer_id))
        finally:
            await gateway.close()
        assert len(profile.charges) == 4
        pages = [r for r in found.emulator.requests if r.path == "/v1/charges"]
        assert pages[-1].params["limit"] == "4"


# --- money -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "stripe_value", "minor", "exponent"),
    [
        ("EUR", 1234, 1234, 2),
        ("JPY", 500, 500, 0),  # zero-decimal at Stripe and in ISO 4217
        ("KRW", 15000, 15000, 0),
        ("ISK", 50000, 500, 2),  # ISO says 0; Stripe keeps two digits, always 00
        ("UGX", 120000, 1200, 2),
        ("HUF", 199900, 199900, 2),  # two-decimal for charges (zero only for payouts)
        ("TWD", 30050, 30050, 2),
        ("KWD", 1250, 1250, 3),
        ("BIF", 700, 700, 0),
    ],
)
def test_stripe_amounts_use_stripes_own_minor_units(
    currency: str, stripe_value: int, minor: int, exponent: int
) -> None:
    assert stripe_exponent(currency) == exponent
    money = from_stripe_amount(stripe_value, currency)
    assert money == Money(minor=minor, currency=currency)
    assert to_stripe_amount(money) == stripe_value


def test_amounts_stripe_cannot_take_are_refused_not_rounded() -> None:
    with pytest.raises(GatewayError) as fraction:
        from_stripe_amount(4010, "ISK")  # a pre-2023 fractional króna charge
    assert fraction.value.code == ErrorCode.invalid_state
    with pytest.raises(GatewayError) as step:
        to_stripe_amount(Money(minor=1255, currency="KWD"))
    assert step.value.code == ErrorCode.rejected and "0.010" in step.value.message


async def test_refunds_in_zero_decimal_currencies_send_stripes_units(fake: FakeStripe) -> None:
    em, gw = fake.emulator, fake.gateway
    cid = fake.env.customer_id
    yen = em.add_payment(cid, 5000, "jpy")
    krona = em.add_payment(cid, 50000, "isk")  # 500 ISK
    assert (await gw.get_charge(yen["id"])).amount == Money(minor=5000, currency="JPY")
    assert (await gw.get_charge(krona["id"])).amount == Money(minor=500, currency="ISK")
    await gw.refund(yen["id"], Money(minor=1500, currency="JPY"), reason="r", idempotency_key="y")
    refund = await gw.refund(
        krona["id"], Money(minor=100, currency="ISK"), reason="r", idempotency_key="i"
    )
    assert refund.amount == Money(minor=100, currency="ISK")
    sent = [r.params["amount"] for r in posts(em, "/v1/refunds")]
    assert sent == ["1500", "10000"]
    assert em.get(krona["id"])["amount_refunded"] == 10000


# --- refunds, idempotency, retries -------------------------------------------------------


async def test_refund_sends_stripes_reason_and_keeps_ours(fake: FakeStripe) -> None:
    gw, em = fake.gateway, fake.emulator
    refund = await gw.refund(
        fake.env.charge_id,
        eur(1000),
        reason="requested_by_customer: wrong size, sent back",
        idempotency_key="apr-1",
    )
    assert (
        refund.amount == eur(1000)
        and refund.reason == "requested_by_customer: wrong size, sent back"
    )
    other = await gw.refund(
        fake.env.charge_id, eur(500), reason="goodwill gesture", idempotency_key="apr-2"
    )
    [first, second] = posts(em, "/v1/refunds")
    assert first.params["reason"] == "requested_by_customer"
    assert "reason" not in second.params
    assert first.idempotency_key == "apr-1"
    assert em.get(other.id)["metadata"] == {
        "chargedesk_idempotency_key": "apr-2",
        "chargedesk_reason": "goodwill gesture",
    }


async def test_the_same_key_twice_is_one_refund_even_after_stripe_forgot_the_key(
    fake: FakeStripe,
) -> None:
    gw, em = fake.gateway, fake.emulator
    first = await gw.refund(fake.env.charge_id, eur(2500), reason="r", idempotency_key="apr-7")
    em.forget_idempotency_keys()  # as Stripe does after 24 hours; the metadata remembers
    again = await gw.refund(fake.env.charge_id, eur(2500), reason="r", idempotency_key="apr-7")
    assert again.id == first.id
    assert len(posts(em, "/v1/refunds")) == 1
    assert em.get(fake.env.charge_id)["amount_refunded"] == 2500


async def test_a_key_used_for_another_charge_is_a_clear_error(fake: FakeStripe) -> None:
    gw, em = fake.gateway, fake.emulator
    other = em.add_payment(fake.env.customer_id, 3000)
    await gw.refund(fake.env.charge_id, eur(1000), reason="r", idempotency_key="apr-9")
    with pytest.raises(GatewayError) as info:
        await gw.refund(other["id"], eur(1000), reason="r", idempotency_key="apr-9")
    error = info.value
    assert error.code == ErrorCode.rejected
    assert error.raw_code == "idempotency_error"
    assert "idempotency key was already used for a different request" in error.message
    assert "same parameters" in (error.raw_message or "")
    assert em.get(other["id"])["amount_refunded"] == 0


async def test_a_write_whose_answer_was_lost_is_retried_with_the_same_key(fake: FakeStripe) -> None:
    gw, em = fake.gateway, fake.emulator
    em.fail_next(1, 500, after=True, path="/v1/refunds")  # Stripe refunded, the answer got lost
    refund = await gw.refund(fake.env.charge_id, eur(3000), reason="r", idempotency_key="apr-3")
    tries = posts(em, "/v1/refunds")
    assert [t.idempotency_key for t in tries] == ["apr-3", "apr-3"]
    assert [t.status for t in tries] == [500, 200] and tries[1].replayed
    assert refund.amount == eur(3000)
    assert em.get(fake.env.charge_id)["amount_refunded"] == 3000
    assert len(em.get(fake.env.charge_id, expand=["refunds"])["refunds"]["data"]) == 1


async def test_a_rate_limited_write_is_retried_with_the_same_key(fake: FakeStripe) -> None:
    gw, em = fake.gateway, fake.emulator
    em.fail_next(2, 429, path="/v1/refunds")
    await gw.refund(fake.env.charge_id, eur(100), reason="r", idempotency_key="apr-4")
    tries = posts(em, "/v1/refunds")
    assert [(t.status, t.idempotency_key) for t in tries] == [
        (429, "apr-4"),
        (429, "apr-4"),
        (200, "apr-4"),
    ]
    assert em.get(fake.env.charge_id)["amount_refunded"] == 100


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_reads_are_retried_with_backoff(fake: FakeStripe, status: int) -> None:
    fake.emulator.fail_next(2, status, path="/v1/charges/")
    charge = await fake.gateway.get_charge(fake.env.charge_id)
    assert charge.id == fake.env.charge_id
    tries = [r for r in fake.emulator.requests if r.path.startswith("/v1/charges/")]
    assert [t.status for t in tries] == [status, status, 200]


@pytest.mark.parametrize(
    ("status", "code", "raw_code"),
    [(429, ErrorCode.rate_limited, "rate_limit"), (503, ErrorCode.unavailable, "api_error")],
)
async def test_a_read_failing_past_its_retries_says_why(
    fake: FakeStripe, status: int, code: ErrorCode, raw_code: str
) -> None:
    fake.emulator.fail_next(3, status, path="/v1/charges/")
    with pytest.raises(GatewayError) as info:
        await fake.gateway.get_charge(fake.env.charge_id)
    assert (info.value.code, info.value.raw_code) == (code, raw_code)


async def test_a_slow_stripe_is_a_timeout() -> None:
    async with stripe_fake(timeout=0.2, max_retries=0) as found:
        found.emulator.delay_next(1.0, path="/v1/charges/")
        started = time.monotonic()
        with pytest.raises(GatewayError) as info:
            await found.gateway.get_charge(found.env.charge_id)
        assert info.value.code == ErrorCode.timeout
        assert time.monotonic() - started < 0.9


async def test_a_refund_raced_by_a_dashboard_refund_says_what_is_left(fake: FakeStripe) -> None:
    gw, em = fake.gateway, fake.emulator
    em.delay_next(0.5, path="/v1/refunds")
    task = asyncio.create_task(
        gw.refund(fake.env.charge_id, eur(8000), reason="r", idempotency_key="apr-5")
    )
    await asyncio.sleep(0.2)  # our read is done, our POST is held: someone refunds 30.00
    await asyncio.to_thread(em.add_refund, fake.env.charge_id, 3000)
    with pytest.raises(GatewayError) as info:
        await task
    assert info.value.code == ErrorCode.amount_too_large
    assert "only €70.00 of charge" in info.value.message  # read again after Stripe refused
    assert "greater than unrefunded amount" in (info.value.raw_message or "")
    assert em.get(fake.env.charge_id)["amount_refunded"] == 3000


async def test_an_over_refund_is_refused_before_stripe_is_asked(fake: FakeStripe) -> None:
    gw, em = fake.gateway, fake.emulator
    await gw.refund(fake.env.charge_id, eur(6000), reason="r", idempotency_key="a")
    with pytest.raises(GatewayError) as info:
        await gw.refund(fake.env.charge_id, eur(5000), reason="r", idempotency_key="b")
    assert info.value.code == ErrorCode.amount_too_large and "€40.00" in info.value.message
    assert len(posts(em, "/v1/refunds")) == 1


async def test_unknown_objects_are_not_found(fake: FakeStripe) -> None:
    for call in (
        fake.gateway.get_charge("ch_missing"),
        fake.gateway.get_charge("pi_missing"),
        fake.gateway.get_charge("ledger_ch_1"),
        fake.gateway.get_subscription("sub_missing"),
    ):
        with pytest.raises(GatewayError) as info:
            await call
        assert info.value.code == ErrorCode.not_found
    with pytest.raises(GatewayError) as info:
        await fake.gateway.get_charge("ch_missing")
    assert info.value.raw_code == "resource_missing"
    assert "No such charge" in (info.value.raw_message or "")


def sdk_error(
    cls: type[stripe.StripeError], status: int, body: dict[str, Any]
) -> stripe.StripeError:
    """An SDK error as the SDK builds it from an HTTP answer."""
    error = body["error"]
    headers = {"request-id": "req_test"}
    if cls in (stripe.CardError, stripe.InvalidRequestError):
        return cls(
            error.get("message"), error.get("param"), error.get("code"), None, status, body, headers
        )  # type: ignore[call-arg]
    return cls(error.get("message"), None, status, body, headers)


@pytest.mark.parametrize(
    ("cls", "status", "error", "code"),
    [
        (
            stripe.CardError,
            402,
            {"type": "card_error", "code": "expired_card", "message": "Your card has expired."},
            ErrorCode.card_declined,
        ),
        (
            stripe.RateLimitError,
            429,
            {
                "type": "invalid_request_error",
                "code": "rate_limit",
                "message": "Too many requests.",
            },
            ErrorCode.rate_limited,
        ),
        (
            stripe.InvalidRequestError,
            404,
            {
                "type": "invalid_request_error",
                "code": "resource_missing",
                "message": "No such charge: 'ch_x'",
                "param": "id",
            },
            ErrorCode.not_found,
        ),
        (
            stripe.InvalidRequestError,
            400,
            {
                "type": "invalid_request_error",
                "code": "charge_already_refunded",
                "message": "Charge ch_x has already been refunded.",
            },
            ErrorCode.already_refunded,
        ),
        (
            stripe.InvalidRequestError,
            400,
            {
                "type": "invalid_request_error",
                "code": "charge_disputed",
                "message": "Charge ch_x has been charged back; cannot issue a refund.",
            },
            ErrorCode.charge_disputed,
        ),
        (
            stripe.InvalidRequestError,
            400,
            {
                "type": "invalid_request_error",
                "code": "amount_too_large",
                "message": "Amount too large.",
            },
            ErrorCode.amount_too_large,
        ),
        (
            stripe.InvalidRequestError,
            400,
            {
                "type": "invalid_request_error",
                "param": "amount",
                "message": "Refund amount ($5.00) is greater than unrefunded amount on charge ($4.00)",
            },
            ErrorCode.amount_too_large,
        ),
        (
            stripe.InvalidRequestError,
            400,
            {
                "type": "invalid_request_error",
                "code": "payment_intent_unexpected_state",
                "message": "This PaymentIntent could not be captured.",
            },
            ErrorCode.invalid_state,
        ),
        (
            stripe.InvalidRequestError,
            400,
            {
                "type": "invalid_request_error",
                "code": "tax_id_invalid",
                "message": "Invalid value for eu_vat.",
            },
            ErrorCode.rejected,
        ),
        (
            stripe.IdempotencyError,
            400,
            {
                "type": "idempotency_error",
                "message": "Keys for idempotent requests can only be used with the same parameters.",
            },
            ErrorCode.rejected,
        ),
        (
            stripe.AuthenticationError,
            401,
            {"type": "invalid_request_error", "message": "Invalid API Key provided: sk_test_****"},
            ErrorCode.rejected,
        ),
        (
            stripe.APIError,
            500,
            {"type": "api_error", "message": "An unknown error occurred"},
            ErrorCode.unavailable,
        ),
    ],
)
async def test_stripe_errors_map_to_ours_keeping_stripes_words(
    fake: FakeStripe,
    cls: type[stripe.StripeError],
    status: int,
    error: dict[str, Any],
    code: ErrorCode,
) -> None:
    mapped = fake.gateway._api.error(sdk_error(cls, status, {"error": error}), "charge ch_x")
    assert mapped.code == code and mapped.gateway == "stripe"
    assert mapped.raw_message == error["message"]
    assert mapped.raw_code == error.get("code", error["type"])


async def test_a_wrong_api_key_is_refused(fake: FakeStripe) -> None:
    bad = StripeGateway(stripe_settings(fake.emulator.url, "sk_test_wrong"))
    try:
        with pytest.raises(GatewayError) as info:
            await bad.get_charge(fake.env.charge_id)
    finally:
        await bad.close()
    assert info.value.code == ErrorCode.rejected
    assert "Invalid API Key" in (info.value.raw_message or "")


# --- capture, void, subscriptions, coupons, tax IDs, invoices ----------------------------


async def test_capture_part_of_a_hold_then_the_refund_limit_is_what_was_taken(
    fake: FakeStripe,
) -> None:
    gw = fake.gateway
    hold = fake.env.authorized_ids[0]
    charge = await gw.capture(hold, eur(3000), idempotency_key="cap-1")
    assert (charge.status, charge.amount_captured, charge.refundable) == (
        ChargeStatus.succeeded,
        3000,
        eur(3000),
    )
    again = await gw.capture(hold, eur(3000), idempotency_key="cap-1")  # Stripe replays it
    assert again.amount_captured == 3000
    with pytest.raises(GatewayError) as twice:
        await gw.capture(hold, eur(1000), idempotency_key="cap-2")
    assert twice.value.code == ErrorCode.invalid_state
    with pytest.raises(GatewayError) as over:
        await gw.refund(hold, eur(3500), reason="r", idempotency_key="ref-1")
    assert over.value.code == ErrorCode.amount_too_large
    captures = [r for r in fake.emulator.requests if r.path.endswith("/capture")]
    assert [(r.params, r.status, r.replayed) for r in captures] == [
        ({"amount_to_capture": "3000"}, 200, False),
        ({"amount_to_capture": "3000"}, 200, True),  # our retry: Stripe answers from its cache
        ({"amount_to_capture": "1000"}, 400, False),  # a new key: Stripe refuses, so do we
    ]


async def test_capture_refuses_more_than_was_authorized(fake: FakeStripe) -> None:
    with pytest.raises(GatewayError) as info:
        await fake.gateway.capture(fake.env.authorized_ids[0], eur(6000), idempotency_key="c")
    assert info.value.code == ErrorCode.amount_too_large


async def test_void_releases_the_hold_once(fake: FakeStripe) -> None:
    gw = fake.gateway
    hold = fake.env.authorized_ids[1]
    assert (await gw.void(hold, idempotency_key="void-1")).status == ChargeStatus.voided
    assert (await gw.void(hold, idempotency_key="void-1")).status == ChargeStatus.voided
    cancels = [r for r in fake.emulator.requests if r.path.endswith("/cancel")]
    assert [r.replayed for r in cancels] == [False, True]
    with pytest.raises(GatewayError) as info:
        await gw.void(fake.env.charge_id, idempotency_key="void-2")
    assert info.value.code == ErrorCode.invalid_state
    with pytest.raises(GatewayError) as refund:
        await gw.refund(hold, eur(100), reason="r", idempotency_key="void-3")
    assert refund.value.code == ErrorCode.invalid_state


async def test_cancel_at_period_end_then_now_each_once(fake: FakeStripe) -> None:
    gw, em = fake.gateway, fake.emulator
    sub_id = fake.env.subscription_ids[0]
    later = await gw.cancel_subscription(
        sub_id, at_period_end=True, reason="moving", idempotency_key="c-1"
    )
    assert later.status == SubscriptionStatus.active and later.cancel_at_period_end
    assert (
        await gw.cancel_subscription(
            sub_id, at_period_end=True, reason="moving", idempotency_key="c-1"
        )
    ).cancel_at_period_end
    with pytest.raises(GatewayError) as already:
        await gw.cancel_subscription(
            sub_id, at_period_end=True, reason="moving", idempotency_key="c-2"
        )
    assert already.value.code == ErrorCode.invalid_state
    now = await gw.cancel_subscription(
        sub_id, at_period_end=False, reason="fraud", idempotency_key="c-3"
    )
    assert now.status == SubscriptionStatus.canceled and now.canceled_at is not None
    replay = await gw.cancel_subscription(
        sub_id, at_period_end=False, reason="fraud", idempotency_key="c-3"
    )
    assert replay.status == SubscriptionStatus.canceled
    with pytest.raises(GatewayError) as canceled:
        await gw.cancel_subscription(sub_id, at_period_end=False, reason="x", idempotency_key="c-4")
    assert canceled.value.code == ErrorCode.invalid_state
    stored = em.get(sub_id)
    assert stored["cancellation_details"]["comment"] == "fraud"
    assert stored["metadata"]["chargedesk_idempotency_key"] == "c-3"
    deletes = [r for r in em.requests if r.method == "DELETE"]
    assert len(deletes) == 1


async def test_create_subscription_to_a_price_once_per_key(fake: FakeStripe) -> None:
    gw, em = fake.gateway, fake.emulator
    price = em.add_price(1500, nickname="Pro monthly")
    sub = await gw.create_subscription(fake.env.customer_id, price["id"], idempotency_key="s-1")
    assert (sub.status, sub.plan, sub.amount) == (
        SubscriptionStatus.active,
        "Pro monthly",
        eur(1500),
    )
    again = await gw.create_subscription(fake.env.customer_id, price["id"], idempotency_key="s-1")
    assert again.id == sub.id
    assert len(posts(em, "/v1/subscriptions")) == 1
    [profile] = await gw.lookup(LookupQuery.parse(fake.env.customer_id))
    assert any(
        i.status == InvoiceStatus.paid and i.amount_paid == eur(1500) for i in profile.invoices
    )
    with pytest.raises(GatewayError) as missing:
        await gw.create_subscription(fake.env.customer_id, "price_missing", idempotency_key="s-2")
    assert missing.value.code == ErrorCode.not_found


async def test_coupons_by_code_or_id_on_subscriptions_and_customers(fake: FakeStripe) -> None:
    gw, em = fake.gateway, fake.emulator
    em.add_coupon("HALF", percent_off=50, duration="once", name="Half")
    em.add_coupon("SUMMER", percent_off=12.5, duration="forever")
    em.add_promotion_code("SUMMER", "SUNNY")
    sub_a, sub_b = fake.env.subscription_ids
    assert (
        await gw.apply_coupon(sub_a, "SUNNY", idempotency_key="k1") == "SUNNY: 12.5% off, forever"
    )
    assert (
        await gw.apply_coupon(fake.env.customer_id, "HALF", idempotency_key="k2")
        == "Half: 50% off, once"
    )
    assert (
        await gw.apply_coupon(sub_a, "SUNNY", idempotency_key="k3") == "SUNNY: 12.5% off, forever"
    )
    discounts = {
        s: [em.get(d)["source"]["coupon"] for d in em.get(s)["discounts"]] for s in (sub_a, sub_b)
    }
    assert discounts == {sub_a: ["SUMMER", "HALF"], sub_b: ["HALF"]}
    with pytest.raises(GatewayError) as missing:
        await gw.apply_coupon(sub_a, "NOPE", idempotency_key="k4")
    assert missing.value.code == ErrorCode.not_found
    with pytest.raises(GatewayError) as wrong:
        await gw.apply_coupon(fake.env.charge_id, "HALF", idempotency_key="k5")
    assert wrong.value.code == ErrorCode.rejected
    lonely = em.add_customer("lonely@example.com")
    with pytest.raises(GatewayError) as nothing:
        await gw.apply_coupon(lonely["id"], "HALF", idempotency_key="k6")
    assert nothing.value.code == ErrorCode.invalid_state


async def test_add_tax_id_once(fake: FakeStripe) -> None:
    gw, em = fake.gateway, fake.emulator
    tax_id = await gw.add_tax_id(fake.env.customer_id, "DE 136 695 976", idempotency_key="t-1")
    assert (tax_id.type, tax_id.value, tax_id.country, tax_id.verified) == (
        "eu_vat",
        "DE136695976",
        "DE",
        None,
    )
    again = await gw.add_tax_id(fake.env.customer_id, "eu_vat:DE136695976", idempotency_key="t-2")
    assert again.id == tax_id.id
    assert len(posts(em, f"/v1/customers/{fake.env.customer_id}/tax_ids")) == 1
    # Types python-stdnum cannot check go to Stripe, which checks their format.
    with pytest.raises(GatewayError) as bad:
        await gw.add_tax_id(fake.env.customer_id, "ch_vat:CHE-123", idempotency_key="t-3")
    assert (bad.value.code, bad.value.raw_code) == (ErrorCode.rejected, "tax_id_invalid")


async def test_add_tax_id_with_replace_leaves_only_the_new_one(fake: FakeStripe) -> None:
    gw, em = fake.gateway, fake.emulator
    cid = fake.env.customer_id
    old_eu = em.add_tax_id(cid, "eu_vat", "DE136695976", verified=True)
    old_gb = em.add_tax_id(cid, "gb_vat", "GB980780684")
    new = await gw.add_tax_id(cid, "FR 40 303265045", idempotency_key="tx-1", replace=True)
    assert (new.type, new.value, new.country) == ("eu_vat", "FR40303265045", "FR")
    [profile] = await gw.lookup(LookupQuery.parse(cid))
    assert [(t.id, t.value) for t in profile.tax_ids] == [(new.id, "FR40303265045")]
    deletes = [r.path for r in em.requests if r.method == "DELETE"]
    assert sorted(deletes) == sorted(
        f"/v1/customers/{cid}/tax_ids/{t['id']}" for t in (old_eu, old_gb)
    )
    # A retry with the same key (a recovered execution) adds and removes nothing.
    em.requests.clear()
    again = await gw.add_tax_id(cid, "FR40303265045", idempotency_key="tx-1", replace=True)
    assert again.id == new.id
    assert [r.method for r in em.requests] == ["GET"]
    [profile] = await gw.lookup(LookupQuery.parse(cid))
    assert [t.id for t in profile.tax_ids] == [new.id]


async def test_add_tax_id_without_replace_keeps_the_others(fake: FakeStripe) -> None:
    gw, em = fake.gateway, fake.emulator
    cid = fake.env.customer_id
    em.add_tax_id(cid, "gb_vat", "GB980780684")
    await gw.add_tax_id(cid, "DE136695976", idempotency_key="tx-2")
    [profile] = await gw.lookup(LookupQuery.parse(cid))
    assert {t.value for t in profile.tax_ids} == {"GB980780684", "DE136695976"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("DE123456789", "DE123456789 is not a valid EU VAT number for DE: check its digits"),
        ("eu_vat:GB980780684", "GB980780684 is not a valid EU VAT number: check its digits"),
        ("GB123456789", "GB123456789 is not a valid UK VAT number for GB: check its digits"),
        (
            "au_abn:51824753557",
            "51824753557 is not a valid Australian Business Number (ABN) for AU: check its digits",
        ),
    ],
)
async def test_an_invalid_tax_id_is_refused_before_stripe_is_asked(
    fake: FakeStripe, text: str, message: str
) -> None:
    with pytest.raises(InvalidTaxId) as info:
        await fake.gateway.add_tax_id(fake.env.customer_id, text, idempotency_key="tx-bad")
    assert info.value.code == ErrorCode.invalid_tax_id
    assert info.value.message == message
    assert fake.emulator.requests == []


async def test_a_bare_number_is_read_by_the_customers_country(fake: FakeStripe) -> None:
    gw, em = fake.gateway, fake.emulator
    aussie = em.add_customer("sydney@example.com", address={"country": "AU", "city": "Sydney"})
    tax_id = await gw.add_tax_id(aussie["id"], "51 824 753 556", idempotency_key="tx-au")
    assert (tax_id.type, tax_id.value, tax_id.country) == ("au_abn", "51824753556", "AU")
    with pytest.raises(InvalidTaxId) as wrong:
        await gw.add_tax_id(aussie["id"], "51 824 753 557", idempotency_key="tx-au2")
    assert wrong.value.country == "AU" and "51824753557" in wrong.value.message
    with pytest.raises(InvalidTaxId) as untyped:
        await gw.add_tax_id(fake.env.customer_id, "51824753556", idempotency_key="tx-none")
    assert "cannot tell what kind of tax ID 51824753556 is" in untyped.value.message
    assert [r.idempotency_key for r in em.requests if r.method != "GET"] == ["tx-au"]


# --- the Billing Portal ------------------------------------------------------------------


async def test_card_update_url_opens_a_billing_portal_session(fake: FakeStripe) -> None:
    gw, em = fake.gateway, fake.emulator
    back = "https://billing.example.com/portal/done"
    url = await gw.card_update_url(fake.env.customer_id, return_url=back)
    [sent] = posts(em, "/v1/billing_portal/sessions")
    assert sent.params == {"customer": fake.env.customer_id, "return_url": back}
    [session] = [e["data"]["object"] for e in em.events if e["type"].startswith("billing_portal")]
    assert url == session["url"] and session["return_url"] == back
    assert Capability.hosted_card_update in gw.capabilities


@pytest.mark.parametrize("customer_id", ["cus_nobody", "ch_not_a_customer"])
async def test_card_update_url_for_an_unknown_customer_is_not_found(
    fake: FakeStripe, customer_id: str
) -> None:
    with pytest.raises(GatewayError) as info:
        await fake.gateway.card_update_url(customer_id, return_url="https://example.com/back")
    assert info.value.code == ErrorCode.not_found
    assert info.value.message == f"Stripe has no customer {customer_id}"


async def test_card_update_url_without_portal_settings_says_what_to_configure(
    fake: FakeStripe,
) -> None:
    fake.emulator.billing_portal = False
    with pytest.raises(GatewayError) as info:
        await fake.gateway.card_update_url(
            fake.env.customer_id, return_url="https://example.com/back"
        )
    assert info.value.code == ErrorCode.not_configured
    assert "Billing Portal is not configured" in info.value.message
    assert "Stripe dashboard" in info.value.message
    assert info.value.raw_message and "portal settings" in info.value.raw_message


async def test_send_invoice_finalizes_a_draft_then_sends_it(fake: FakeStripe) -> None:
    gw, em = fake.gateway, fake.emulator
    draft = em.add_invoice(fake.env.customer_id, 4900, description="Onboarding")
    invoice = await gw.send_invoice(draft["id"], idempotency_key="inv-1")
    assert invoice.status == InvoiceStatus.open and invoice.number
    assert invoice.pdf_url and invoice.pdf_url.endswith(f"/_emulator/invoices/{draft['id']}/pdf")
    assert invoice.hosted_url
    assert em.sent_invoices == [draft["id"]]
    finalize = posts(em, f"/v1/invoices/{draft['id']}/finalize")
    assert finalize[0].params == {"auto_advance": "false"}
    assert finalize[0].idempotency_key == "inv-1:finalize"
    await gw.send_invoice(draft["id"], idempotency_key="inv-2")  # open: sent again, no finalize
    assert em.sent_invoices == [draft["id"], draft["id"]]
    paid = em.add_invoice(fake.env.customer_id, 100, pay=True)
    automatic = em.add_invoice(fake.env.customer_id, 100, collection_method="charge_automatically")
    for invoice_id in (paid["id"], automatic["id"]):
        with pytest.raises(GatewayError) as info:
            await gw.send_invoice(invoice_id, idempotency_key=f"inv-{invoice_id}")
        assert info.value.code == ErrorCode.invalid_state


# --- webhooks ----------------------------------------------------------------------------


async def test_a_signed_delivery_is_accepted(fake: FakeStripe) -> None:
    event = fake.emulator.event("charge.succeeded", fake.emulator.get(fake.env.charge_id))
    body, headers = StripeEmulator.delivery(event, WEBHOOK_SECRET)
    [parsed] = await fake.gateway.parse_webhook(body, {k.lower(): v for k, v in headers.items()})
    assert (parsed.id, parsed.kind, parsed.object_id) == (
        event["id"],
        EventKind.payment_succeeded,
        fake.env.charge_id,
    )
    assert parsed.created == datetime.fromtimestamp(event["created"], UTC)
    assert parsed.created.tzinfo is not None


@pytest.mark.parametrize("problem", ["forged", "stale", "unsigned", "tampered", "not_json"])
async def test_deliveries_that_are_not_genuine_are_rejected(fake: FakeStripe, problem: str) -> None:
    event = fake.emulator.event("charge.refunded", fake.emulator.get(fake.env.charge_id))
    secret, stamp = WEBHOOK_SECRET, None
    if problem == "forged":
        secret = "whsec_someone_else"
    if problem == "stale":
        stamp = int(time.time()) - 301  # tolerance is 300 s
    body, headers = StripeEmulator.delivery(event, secret, timestamp=stamp)
    if problem == "unsigned":
        del headers["Stripe-Signature"]
    if problem == "tampered":
        body = body.replace(b'"charge.refunded"', b'"charge.captured"')
    if problem == "not_json":
        body = b"<xml/>"
        headers["Stripe-Signature"] = sign(body, WEBHOOK_SECRET, int(time.time()))
    with pytest.raises(WebhookRejected) as info:
        await fake.gateway.parse_webhook(body, headers)
    assert info.value.code == ErrorCode.rejected and info.value.gateway == "stripe"


async def test_without_a_webhook_secret_nothing_is_accepted(fake: FakeStripe) -> None:
    gateway = StripeGateway(stripe_settings(fake.emulator.url, "sk_test_x", webhook_secret=None))
    event = fake.emulator.event("charge.succeeded", fake.emulator.get(fake.env.charge_id))
    body, headers = StripeEmulator.delivery(event, WEBHOOK_SECRET)
    try:
        with pytest.raises(WebhookRejected):
            await gateway.parse_webhook(body, headers)
    finally:
        await gateway.close()


async def test_a_refund_we_made_comes_back_with_our_key(fake: FakeStripe) -> None:
    gw, em = fake.gateway, fake.emulator
    refund = await gw.refund(fake.env.charge_id, eur(2500), reason="r", idempotency_key="apr-77")
    sent = {e["type"]: e for e in em.events if e["request"]["idempotency_key"] == "apr-77"}
    parsed = {}
    for event_type in ("refund.created", "charge.refunded"):
        body, headers = StripeEmulator.delivery(sent[event_type], WEBHOOK_SECRET)
        [parsed[event_type]] = await gw.parse_webhook(body, headers)
    created, total = parsed["refund.created"], parsed["charge.refunded"]
    assert (created.kind, created.object_id, created.related_id) == (
        EventKind.refund,
        refund.id,
        fake.env.charge_id,
    )
    assert created.amount == eur(2500) and created.idempotency_key == "apr-77"
    assert created.customer_id == fake.env.customer_id
    # The charge arrives without its refunds: it names the charge and the running total.
    assert (total.kind, total.object_id, total.related_id, total.amount) == (
        EventKind.refund,
        fake.env.charge_id,
        fake.env.charge_id,
        None,
    )
    assert total.detail["amount_refunded"] == eur(2500) and total.idempotency_key == "apr-77"
    assert total.status == "partially_refunded"


async def test_every_event_type_maps_to_its_kind(fake: FakeStripe) -> None:
    em, env = fake.emulator, fake.env
    charge = em.get(env.charge_id)
    hold = em.get(env.authorized_ids[0])
    intent = em.get(charge["payment_intent"])
    # Before API 2022-11-15 (or when expanded) a refunded charge carries its refunds.
    older = em.add_refund(env.charge_id, 1000)
    refunded = em.get(env.charge_id, expand=["refunds"])
    dispute = em.add_dispute(env.charge_id, reason="product_not_received")
    invoice = em.add_invoice(env.customer_id, 2500, pay=True)
    sub = em.get(env.subscription_ids[0])
    canceled = dict(sub, status="canceled")
    captured = dict(hold, captured=True, amount_captured=4000)
    failed_charge = dict(
        charge,
        status="failed",
        failure_message="Your card was declined.",
        captured=False,
        amount_captured=0,
    )
    refund = em.add_refund(env.authorized_ids[1])
    cases = [
        (
            "charge.refunded",
            refunded,
            EventKind.refund,
            older["id"],
            env.charge_id,
            eur(1000),
            "partially_refunded",
        ),
        (
            "charge.captured",
            captured,
            EventKind.capture,
            hold["id"],
            hold["payment_intent"],
            eur(4000),
            "succeeded",
        ),
        (
            "charge.dispute.created",
            dispute,
            EventKind.dispute_created,
            dispute["id"],
            env.charge_id,
            eur(10000),
            "needs_response",
        ),
        (
            "charge.failed",
            failed_charge,
            EventKind.payment_failed,
            charge["id"],
            intent["id"],
            eur(10000),
            "failed",
        ),
        (
            "payment_intent.payment_failed",
            dict(intent, status="requires_payment_method", amount_received=0),
            EventKind.payment_failed,
            intent["id"],
            env.charge_id,
            eur(10000),
            "requires_payment_method",
        ),
        (
            "invoice.payment_failed",
            dict(invoice, status="open", amount_paid=0),
            EventKind.payment_failed,
            invoice["id"],
            None,
            eur(2500),
            "open",
        ),
        (
            "payment_intent.succeeded",
            intent,
            EventKind.payment_succeeded,
            intent["id"],
            env.charge_id,
            eur(10000),
            "succeeded",
        ),
        (
            "charge.succeeded",
            charge,
            EventKind.payment_succeeded,
            charge["id"],
            intent["id"],
            eur(10000),
            "succeeded",
        ),
        ("invoice.paid", invoice, EventKind.invoice_paid, invoice["id"], None, eur(2500), "paid"),
        (
            "customer.subscription.deleted",
            canceled,
            EventKind.subscription_canceled,
            sub["id"],
            None,
            None,
            "canceled",
        ),
        (
            "customer.subscription.updated",
            sub,
            EventKind.subscription_updated,
            sub["id"],
            None,
            None,
            "active",
        ),
        (
            "refund.updated",
            refund,
            EventKind.refund,
            refund["id"],
            env.authorized_ids[1],
            eur(5000),
            "succeeded",
        ),
        (
            "customer.created",
            em.get(env.customer_id),
            EventKind.other,
            env.customer_id,
            None,
            None,
            None,
        ),
    ]
    no_customer = {"charge.dispute.created"}  # a dispute names its charge, not the customer
    for event_type, obj, kind, object_id, related_id, amount, status in cases:
        event = em.event(event_type, obj, idempotency_key="key-9")
        body, headers = StripeEmulator.delivery(event, WEBHOOK_SECRET)
        [parsed] = await fake.gateway.parse_webhook(body, headers)
        got = (parsed.kind, parsed.object_id, parsed.related_id, parsed.amount, parsed.status)
        assert got == (kind, object_id, related_id, amount, status), event_type
        assert parsed.raw_type == event_type and parsed.idempotency_key == "key-9"
        customer = None if event_type in no_customer else env.customer_id
        assert parsed.customer_id == customer, event_type


# --- the rest ----------------------------------------------------------------------------


async def test_stripe_supports_every_capability_and_links_to_its_dashboard(
    fake: FakeStripe,
) -> None:
    gw = fake.gateway
    assert gw.capabilities == frozenset(Capability) - {Capability.manual_refund}
    for capability in gw.capabilities:
        gw.require(capability)
    assert gw.dashboard_url("pi_123") == "https://dashboard.stripe.com/test/payments/pi_123"
    assert gw.dashboard_url("cus_9") == "https://dashboard.stripe.com/test/customers/cus_9"
    assert gw.dashboard_url("whatever") is None
    live = StripeGateway(stripe_settings(fake.emulator.url, "sk_live_x"))
    try:
        assert live.dashboard_url("sub_1") == "https://dashboard.stripe.com/subscriptions/sub_1"
    finally:
        await live.close()


def test_discounts_read_like_a_person_would_say_them() -> None:
    assert (
        describe_discount({"id": "X", "percent_off": 10.0, "duration": "forever"}, "WELCOME10")
        == "WELCOME10: 10% off, forever"
    )
    assert (
        describe_discount(
            {
                "id": "X",
                "name": "Spring",
                "amount_off": 500,
                "currency": "eur",
                "duration": "repeating",
                "duration_in_months": 1,
            }
        )
        == "Spring: €5.00 off, for 1 month"
    )
    assert (
        describe_discount({"id": "Y", "amount_off": 300, "currency": "jpy", "duration": "once"})
        == "Y: ¥300 off, once"
    )


async def test_the_localstripe_env_serves_lookups_refunds_and_voids() -> None:
    async with stripe_localstripe_env() as env:
        [profile] = await env.gateway.lookup(LookupQuery.parse(env.email))
        assert profile.customer.id == env.customer_id
        assert {c.id: c.status for c in profile.charges} == {
            env.charge_id: ChargeStatus.succeeded,
            env.authorized_ids[0]: ChargeStatus.authorized,
            env.authorized_ids[1]: ChargeStatus.authorized,
        }
        assert {s.status for s in profile.subscriptions} == {SubscriptionStatus.active}
        await env.gateway.refund(
            env.charge_id,
            Money(minor=4000, currency=env.currency),
            reason="r",
            idempotency_key="l-1",
        )
        again = await env.gateway.refund(
            env.charge_id,
            Money(minor=4000, currency=env.currency),
            reason="r",
            idempotency_key="l-1",
        )
        charge = await env.gateway.get_charge(env.charge_id)
        assert (charge.status, charge.amount_refunded) == (ChargeStatus.partially_refunded, 4000)
        assert again.amount == Money(minor=4000, currency=env.currency)
        assert (
            await env.gateway.void(env.authorized_ids[1], idempotency_key="l-2")
        ).status == ChargeStatus.voided
        assert "capture_and_void" in env.skips


async def test_a_subscription_on_a_declining_card_starts_incomplete(fake: FakeStripe) -> None:
    em = fake.emulator
    customer = em.add_customer("decline@example.com", payment_method="pm_card_chargeDeclined")
    price = em.add_price(1000)
    sub = await fake.gateway.create_subscription(customer["id"], price["id"], idempotency_key="d")
    assert sub.status == SubscriptionStatus.incomplete


async def test_huf_1999_50_from_stripe_loads_and_refunds_exactly(fake: FakeStripe) -> None:
    em, gw = fake.emulator, fake.gateway
    forint = em.add_payment(fake.env.customer_id, 199950, "huf")  # 1,999.50 HUF
    charge = await gw.get_charge(forint["id"])
    assert charge.amount == Money(minor=199950, currency="HUF")
    assert charge.amount.plain() == "1999.50 HUF"
    refund = await gw.refund(forint["id"], charge.amount, reason="r", idempotency_key="huf")
    assert refund.amount == charge.amount
    assert [r.params["amount"] for r in posts(em, "/v1/refunds")] == ["199950"]
    assert em.get(forint["id"])["amount_refunded"] == 199950
