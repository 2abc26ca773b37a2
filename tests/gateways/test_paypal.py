"""The PayPal gateway against the PayPal emulator: the real SDK and httpx over HTTP."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from bot.gateways.base import ErrorCode, GatewayError, LookupQuery, WebhookRejected
from bot.gateways.events import EventKind
from bot.gateways.paypal.gateway import PayPalGateway
from bot.gateways.paypal.mapping import money_from_paypal, money_to_paypal, paypal_decimals
from bot.models import ChargeStatus, InvoiceStatus, SubscriptionStatus
from bot.money import Money, MoneyError
from chargedesk_emulators.paypal import PayPalEmulator, paypal_api, schema_problems
from tests.fakes.emulated_gateway import fixtures
from tests.fakes.paypal_env import (
    EMAIL,
    Seeded,
    paypal_gateway,
    paypal_settings,
    seed_contract_payer,
)


def usd(minor: int) -> Money:
    return Money(minor=minor, currency="USD")


api, seeded, gateway = fixtures(paypal_api, seed_contract_payer, paypal_gateway)


def searches(api: PayPalEmulator) -> list[tuple[datetime, datetime]]:
    return [
        (
            datetime.fromisoformat(e.query["start_date"]),
            datetime.fromisoformat(e.query["end_date"]),
        )
        for e in api.requests_to("GET", "/v1/reporting/transactions")
    ]


# --- amounts -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("paypal", "minor", "currency"),
    [
        ({"currency_code": "USD", "value": "12.34"}, 1234, "USD"),
        ({"currency_code": "EUR", "value": "0.10"}, 10, "EUR"),
        ({"currency_code": "JPY", "value": "500"}, 500, "JPY"),
        # Whole units at PayPal, two decimals in ISO 4217 (and so in our Money).
        ({"currency_code": "HUF", "value": "1000"}, 100000, "HUF"),
        ({"currency_code": "TWD", "value": "30"}, 3000, "TWD"),
    ],
)
def test_amounts_convert_exactly_both_ways(
    paypal: dict[str, str], minor: int, currency: str
) -> None:
    money = money_from_paypal(paypal)
    assert money == Money(minor=minor, currency=currency)
    assert money_to_paypal(money) == paypal


def test_paypal_decimals_and_what_cannot_be_sent() -> None:
    assert [paypal_decimals(c) for c in ("USD", "JPY", "HUF", "TWD", "EUR")] == [2, 0, 0, 0, 2]
    assert money_from_paypal({"currency_code": "USD", "value": "-5.00"}).minor == -500
    # 0.1 + 0.2 in floats is 0.30000000000000004: decimal strings never go through float.
    parts = [money_from_paypal({"currency_code": "USD", "value": v}) for v in ("0.1", "0.2")]
    assert parts[0] + parts[1] == usd(30)
    with pytest.raises(MoneyError):
        money_from_paypal({"currency_code": "USD", "value": "1.005"})
    with pytest.raises(GatewayError) as refused:
        money_to_paypal(Money(minor=100050, currency="HUF"))
    assert refused.value.code == ErrorCode.rejected and "whole units" in refused.value.message
    assert money_to_paypal(Money(minor=123456789, currency="USD"))["value"] == "1234567.89"
    assert Decimal(money_to_paypal(usd(5))["value"]) == Decimal("0.05")


# --- OAuth -------------------------------------------------------------------------------


async def test_one_token_serves_the_sdk_and_httpx(
    api: PayPalEmulator, gateway: PayPalGateway, seeded: Seeded
) -> None:
    await gateway.lookup(LookupQuery.parse(EMAIL))  # SDK search + httpx invoice search
    await gateway.send_invoice(api.add_invoice(EMAIL, "10.00", status="DRAFT"), idempotency_key="s")
    assert api.tokens_issued == 1
    (token_request,) = api.requests_to("POST", "/v1/oauth2/token")
    basic = base64.b64encode(f"{api.client_id}:{api.client_secret}".encode()).decode()
    assert token_request.headers["authorization"] == f"Basic {basic}"
    assert token_request.body == b"grant_type=client_credentials"
    bearers = {
        e.headers.get("authorization") for e in api.exchanges if e.path != "/v1/oauth2/token"
    }
    assert len(bearers) == 1 and next(iter(bearers)).startswith("Bearer A21AA")


async def test_a_revoked_token_is_replaced_once(
    api: PayPalEmulator, gateway: PayPalGateway, seeded: Seeded
) -> None:
    await gateway.get_charge(seeded.charge_id)
    api.revoke_tokens()
    charge = await gateway.get_charge(seeded.charge_id)
    assert charge.id == seeded.charge_id
    assert api.tokens_issued == 2


async def test_an_expiring_token_is_renewed_before_paypal_refuses_it(seeded: Seeded) -> None:
    with paypal_api(token_ttl=1) as short:
        payer = short.add_payer("x@example.com")
        capture = short.add_capture(payer, "1.00")
        gw = PayPalGateway(paypal_settings(short), backoff=0.01)
        try:
            await gw.get_charge(capture)
            await asyncio.sleep(1.1)
            await gw.get_charge(capture)
        finally:
            await gw.close()
        assert short.tokens_issued >= 2
        assert all(e.status != 401 for e in short.exchanges)


async def test_wrong_credentials_say_which_settings_to_check(api: PayPalEmulator) -> None:
    gw = PayPalGateway(paypal_settings(api, client_secret="wrong"), backoff=0.01)
    try:
        with pytest.raises(GatewayError) as refused:
            await gw.lookup(LookupQuery.parse(EMAIL))
    finally:
        await gw.close()
    assert refused.value.code == ErrorCode.rejected
    assert "paypal.client_id" in refused.value.message
    assert refused.value.raw_code == "invalid_client"
    assert len(api.requests_to("POST", "/v1/oauth2/token")) >= 1
    assert api.requests_to("GET", "/v1/reporting/transactions") == []


# --- lookup ------------------------------------------------------------------------------


async def test_lookup_by_email_searches_the_whole_lookback_in_31_day_windows(
    api: PayPalEmulator, gateway: PayPalGateway
) -> None:
    old = api.add_payer("Old.Customer@Example.com", "Olga", "Old")
    capture = api.add_capture(old, "42.00", days_ago=200)
    api.add_capture(api.add_payer("someone@example.com"), "9.00", days_ago=200)

    (profile,) = await gateway.lookup(LookupQuery.parse("old.customer@example.com"))

    assert profile.customer.id == old
    assert profile.customer.email == "Old.Customer@Example.com"
    assert profile.customer.name == "Olga Old"
    assert [c.id for c in profile.charges] == [capture]
    windows = sorted(searches(api))
    assert len(windows) == 12  # 365 days
    assert all(end - start <= timedelta(days=31) for start, end in windows)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(windows))
    assert windows[-1][1] - windows[0][0] >= timedelta(days=364)
    search = api.requests_to("GET", "/v1/reporting/transactions")[0].query
    assert search["fields"] == "all" and search["balance_affecting_records_only"] == "N"


async def test_lookup_beyond_the_lookback_finds_nothing(api: PayPalEmulator) -> None:
    api.add_capture(api.add_payer("gone@example.com"), "5.00", days_ago=100)
    gw = PayPalGateway(paypal_settings(api, lookback_days=90), backoff=0.01)
    try:
        assert await gw.lookup(LookupQuery.parse("gone@example.com")) == []
    finally:
        await gw.close()
    assert len(searches(api)) == 3


async def test_profile_maps_paypal_objects(api: PayPalEmulator, gateway: PayPalGateway) -> None:
    payer = api.add_payer(EMAIL, "Jane", "Doe")
    partly = api.add_capture(payer, "100.00", days_ago=5)
    api.refund_outside(partly, "30.00")
    refunded = api.add_capture(payer, "10.00", days_ago=4)
    api.refund_outside(refunded, "10.00")
    pending = api.add_capture(payer, "7.00", days_ago=3, status="PENDING")
    declined = api.add_capture(payer, "8.00", days_ago=3, status="DECLINED")
    held = api.add_authorization(payer, "50.00", days_ago=2)
    voided = api.add_authorization(payer, "20.00", days_ago=2)
    api.authorizations[voided].status = "VOIDED"
    sub = api.add_subscription(
        payer, "20.00", days_ago=45, plan_name="Pro yearly", interval_unit="YEAR"
    )
    suspended = api.add_subscription(payer, "9.00", days_ago=20)
    api.subscriptions[suspended].status = "SUSPENDED"
    sent = api.add_invoice(EMAIL, "80.00", status="SENT")
    paid = api.add_invoice(EMAIL, "30.00", status="PAID")
    draft = api.add_invoice(EMAIL, "12.00", status="DRAFT")
    cancelled = api.add_invoice(EMAIL, "5.00", status="CANCELLED")

    (profile,) = await gateway.lookup(LookupQuery.parse(EMAIL))

    charges = {c.id: c for c in profile.charges}
    assert charges[partly].status == ChargeStatus.partially_refunded
    assert charges[partly].refunded == usd(3000) and charges[partly].refundable == usd(7000)
    assert charges[refunded].status == ChargeStatus.refunded
    assert charges[pending].status == ChargeStatus.succeeded
    assert charges[pending].amount_captured == 0 and "pending" in (
        charges[pending].description or ""
    )
    assert charges[declined].status == ChargeStatus.failed and charges[declined].failure_message
    assert charges[held].status == ChargeStatus.authorized and charges[held].amount == usd(5000)
    assert charges[voided].status == ChargeStatus.voided
    assert all(c.customer_id == payer for c in profile.charges)
    assert {r.charge_id for r in profile.refunds} == {partly, refunded}
    assert sum(r.amount.minor for r in profile.refunds) == 4000
    subs = {s.id: s for s in profile.subscriptions}
    assert subs[sub].status == SubscriptionStatus.active
    assert subs[sub].amount == usd(2000) and subs[sub].interval == "year"
    assert subs[sub].plan == "Pro yearly" and subs[sub].customer_id == payer
    assert subs[sub].current_period_end and subs[sub].current_period_end > datetime.now(UTC)
    assert subs[suspended].status == SubscriptionStatus.unpaid
    invoices = {i.id: i for i in profile.invoices}
    assert invoices[sent].status == InvoiceStatus.open and invoices[sent].amount_due == usd(8000)
    assert invoices[sent].hosted_url and invoices[sent].hosted_url.startswith("https://")
    assert invoices[paid].status == InvoiceStatus.paid and invoices[paid].amount_paid == usd(3000)
    assert invoices[paid].charge_id
    assert invoices[draft].status == InvoiceStatus.draft
    assert invoices[cancelled].status == InvoiceStatus.void
    assert all(i.customer_id == payer for i in profile.invoices)


async def test_lookup_by_each_kind_of_id(
    api: PayPalEmulator, gateway: PayPalGateway, seeded: Seeded
) -> None:
    invoice = api.add_invoice(EMAIL, "15.00")
    # A subscription's payment belongs to no order: its payer comes from its search row.
    (payment,) = [
        r.transaction_id for r in api.rows if r.reference_id == seeded.subscription_ids[0]
    ]
    for object_id in (
        seeded.charge_id,
        seeded.authorized_ids[0],
        seeded.subscription_ids[1],
        invoice,
        payment,
    ):
        (profile,) = await gateway.lookup(LookupQuery.parse(object_id))
        assert profile.customer.id == seeded.payer_id, object_id
        assert profile.customer.email == EMAIL
        assert seeded.charge_id in {c.id for c in profile.charges}
        assert invoice in {i.id for i in profile.invoices}
        assert set(seeded.subscription_ids) == {s.id for s in profile.subscriptions}
    assert await gateway.lookup(LookupQuery.parse("0NOSUCHPAYMENT0000")) == []
    assert await gateway.lookup(LookupQuery.parse("I-NOSUCHSUBSCR")) == []
    assert await gateway.lookup(LookupQuery.parse("INV2-NONE-NONE-NONE-NONE")) == []


async def test_an_id_lookup_shows_what_the_search_has_not_caught_up_on(api: PayPalEmulator) -> None:
    api.search_lag = timedelta(hours=3)
    payer = api.add_payer(EMAIL)
    old = api.add_capture(payer, "10.00", days_ago=2)
    fresh = api.add_capture(payer, "99.00")
    gw = PayPalGateway(paypal_settings(api), backoff=0.01)
    try:
        (by_email,) = await gw.lookup(LookupQuery.parse(EMAIL))
        (by_id,) = await gw.lookup(LookupQuery.parse(fresh))
    finally:
        await gw.close()
    assert [c.id for c in by_email.charges] == [old]
    assert {c.id for c in by_id.charges} == {old, fresh}


async def test_a_captured_authorization_is_shown_by_its_capture(
    api: PayPalEmulator, gateway: PayPalGateway, seeded: Seeded
) -> None:
    authorization = seeded.authorized_ids[0]
    captured = await gateway.capture(authorization, usd(3000), idempotency_key="cap-1")
    assert captured.id == authorization and captured.status == ChargeStatus.succeeded
    assert captured.amount_captured == 3000 and captured.amount == usd(5000)
    (capture_id,) = api.authorizations[authorization].captures
    assert captured.description == f"captured as {capture_id}"

    (profile,) = await gateway.lookup(LookupQuery.parse(EMAIL))
    ids = {c.id for c in profile.charges}
    assert capture_id in ids and authorization not in ids
    assert (
        sum(c.amount_captured for c in profile.charges if c.id in (capture_id, authorization))
        == 3000
    )

    refund = await gateway.refund(authorization, usd(1000), reason="x", idempotency_key="r-1")
    assert refund.charge_id == capture_id
    assert (await gateway.get_charge(authorization)).status == ChargeStatus.partially_refunded


# --- actions -----------------------------------------------------------------------------


async def test_the_request_id_makes_a_repeated_refund_one_refund(
    api: PayPalEmulator, gateway: PayPalGateway, seeded: Seeded
) -> None:
    first = await gateway.refund(seeded.charge_id, usd(2500), reason="dup", idempotency_key="apr-7")
    again = await gateway.refund(seeded.charge_id, usd(2500), reason="dup", idempotency_key="apr-7")
    assert first.id == again.id and len(api.refunds) == 1
    posts = api.requests_to("POST", f"/v2/payments/captures/{seeded.charge_id}/refund")
    assert [p.headers["paypal-request-id"] for p in posts] == ["apr-7", "apr-7"]
    assert json.loads(posts[0].body) == {"amount": {"currency_code": "USD", "value": "25.00"}}

    whole = await gateway.refund(seeded.charge_id, usd(7500), reason="x", idempotency_key="apr-8")
    # The charge now reads fully refunded; the same key still returns the same refund.
    assert (await gateway.get_charge(seeded.charge_id)).status == ChargeStatus.refunded
    assert (
        await gateway.refund(seeded.charge_id, usd(7500), reason="x", idempotency_key="apr-8")
    ).id == whole.id
    with pytest.raises(GatewayError) as refused:
        await gateway.refund(seeded.charge_id, usd(100), reason="x", idempotency_key="apr-9")
    assert refused.value.code == ErrorCode.already_refunded
    assert len(api.refunds) == 2


async def test_a_write_whose_answer_was_lost_is_retried_with_its_request_id(
    api: PayPalEmulator, gateway: PayPalGateway, seeded: Seeded
) -> None:
    api.fail_next(1, 500, after=True, method="POST")
    refund = await gateway.refund(seeded.charge_id, usd(1000), reason="x", idempotency_key="k")
    assert len(api.refunds) == 1 and refund.id in api.refunds
    posts = api.requests_to("POST", f"/v2/payments/captures/{seeded.charge_id}/refund")
    assert len(posts) == 2 and {p.headers["paypal-request-id"] for p in posts} == {"k"}


async def test_over_refund_names_what_remains(gateway: PayPalGateway, seeded: Seeded) -> None:
    await gateway.refund(seeded.charge_id, usd(3000), reason="x", idempotency_key="a")
    with pytest.raises(GatewayError) as refused:
        await gateway.refund(seeded.charge_id, usd(8000), reason="x", idempotency_key="b")
    assert refused.value.code == ErrorCode.amount_too_large
    assert "$70.00" in refused.value.message


async def test_paypal_refusals_keep_paypals_issue(api: PayPalEmulator) -> None:
    # The search lags, so a refund made in PayPal's dashboard a moment ago is not seen:
    # our check lets the refund through and PayPal refuses it.
    api.search_lag = timedelta(hours=3)
    payer = api.add_payer(EMAIL)
    sub = api.add_subscription(payer, "20.00", days_ago=3)
    (payment,) = [r.transaction_id for r in api.rows if r.reference_id == sub]
    api.refund_outside(payment, "5.00")
    gw = PayPalGateway(paypal_settings(api), backoff=0.01)
    try:
        with pytest.raises(GatewayError) as refused:
            await gw.refund(payment, usd(2000), reason="x", idempotency_key="k")
    finally:
        await gw.close()
    assert refused.value.code == ErrorCode.amount_too_large
    assert refused.value.raw_code == "REFUND_AMOUNT_EXCEEDED"
    assert refused.value.raw_message and "not yet been refunded" in refused.value.raw_message
    assert "debug ID" in refused.value.message


async def test_not_found_keeps_paypals_issue(gateway: PayPalGateway) -> None:
    with pytest.raises(GatewayError) as missing:
        await gateway.get_subscription("I-NOSUCHSUBSCR")
    assert missing.value.code == ErrorCode.not_found
    assert missing.value.raw_code == "INVALID_RESOURCE_ID"
    with pytest.raises(GatewayError) as no_charge:
        await gateway.get_charge("0NOSUCHPAYMENT000")
    assert no_charge.value.code == ErrorCode.not_found


async def test_pending_captures_cannot_be_refunded_yet(
    api: PayPalEmulator, gateway: PayPalGateway
) -> None:
    pending = api.add_capture(api.add_payer(EMAIL), "7.00", status="PENDING")
    with pytest.raises(GatewayError) as refused:
        await gateway.refund(pending, usd(700), reason="x", idempotency_key="k")
    assert refused.value.code == ErrorCode.not_settled
    assert api.requests_to("POST", f"/v2/payments/captures/{pending}/refund") == []


async def test_capture_and_void_are_idempotent_by_request_id(
    api: PayPalEmulator, gateway: PayPalGateway, seeded: Seeded
) -> None:
    first, second = seeded.authorized_ids
    with pytest.raises(GatewayError) as too_much:
        await gateway.capture(first, usd(6000), idempotency_key="c0")
    assert too_much.value.code == ErrorCode.amount_too_large
    await gateway.capture(first, usd(3000), idempotency_key="c1")
    again = await gateway.capture(first, usd(3000), idempotency_key="c1")
    assert again.amount_captured == 3000 and len(api.authorizations[first].captures) == 1
    body = json.loads(
        api.requests_to("POST", f"/v2/payments/authorizations/{first}/capture")[0].body
    )
    assert body == {"final_capture": True, "amount": {"currency_code": "USD", "value": "30.00"}}
    with pytest.raises(GatewayError) as twice:
        await gateway.capture(first, None, idempotency_key="c2")
    assert twice.value.code == ErrorCode.invalid_state

    assert (await gateway.void(second, idempotency_key="v1")).status == ChargeStatus.voided
    assert (await gateway.void(second, idempotency_key="v1")).status == ChargeStatus.voided
    with pytest.raises(GatewayError) as voided:
        await gateway.void(second, idempotency_key="v2")
    assert voided.value.code == ErrorCode.invalid_state
    with pytest.raises(GatewayError) as captured_void:
        await gateway.void(first, idempotency_key="v3")
    assert captured_void.value.code == ErrorCode.invalid_state
    with pytest.raises(GatewayError) as not_settled:
        await gateway.refund(second, usd(100), reason="x", idempotency_key="r")
    assert not_settled.value.code == ErrorCode.invalid_state


async def test_cancel_is_settled_by_a_reread(
    api: PayPalEmulator, gateway: PayPalGateway, seeded: Seeded
) -> None:
    first, second = seeded.subscription_ids
    api.fail_next(1, 500, after=True, method="POST")  # PayPal cancelled; the answer was lost
    with pytest.raises(GatewayError) as lost:
        await gateway.cancel_subscription(
            first, at_period_end=False, reason="asked", idempotency_key="x1"
        )
    assert lost.value.code == ErrorCode.unavailable
    assert len(api.requests_to("POST", f"/v1/billing/subscriptions/{first}/cancel")) == 1
    done = await gateway.cancel_subscription(
        first, at_period_end=False, reason="asked", idempotency_key="x1"
    )
    assert done.status == SubscriptionStatus.canceled and done.canceled_at is not None
    assert len(api.requests_to("POST", f"/v1/billing/subscriptions/{first}/cancel")) == 1
    assert api.subscriptions[first].status_change_note.startswith("asked (cd:")
    with pytest.raises(GatewayError) as other_key:
        await gateway.cancel_subscription(
            first, at_period_end=False, reason="asked", idempotency_key="x2"
        )
    assert other_key.value.code == ErrorCode.invalid_state

    with pytest.raises(GatewayError) as at_end:
        await gateway.cancel_subscription(
            second, at_period_end=True, reason="r", idempotency_key="x3"
        )
    assert at_end.value.code == ErrorCode.unsupported
    assert api.subscriptions[second].status == "ACTIVE"


async def test_send_invoice_sends_a_draft_once(api: PayPalEmulator, gateway: PayPalGateway) -> None:
    draft = api.add_invoice(EMAIL, "12.00", status="DRAFT")
    sent = await gateway.send_invoice(draft, idempotency_key="i1")
    assert sent.status == InvoiceStatus.open and api.invoices[draft].sends == 1
    assert (await gateway.send_invoice(draft, idempotency_key="i1")).status == InvoiceStatus.open
    assert api.invoices[draft].sends == 1
    with pytest.raises(GatewayError) as paid:
        await gateway.send_invoice(
            api.add_invoice(EMAIL, "1.00", status="PAID"), idempotency_key="i2"
        )
    assert paid.value.code == ErrorCode.invalid_state


# --- retries and timeouts ----------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 429, 503])
async def test_reads_are_retried(
    api: PayPalEmulator, gateway: PayPalGateway, seeded: Seeded, status: int
) -> None:
    api.fail_next(2, status)
    assert (
        await gateway.get_subscription(seeded.subscription_ids[0])
    ).id == seeded.subscription_ids[0]
    assert (
        len(api.requests_to("GET", f"/v1/billing/subscriptions/{seeded.subscription_ids[0]}")) == 3
    )


@pytest.mark.parametrize(
    ("status", "code"), [(500, ErrorCode.unavailable), (429, ErrorCode.rate_limited)]
)
async def test_retries_give_up(
    api: PayPalEmulator, gateway: PayPalGateway, seeded: Seeded, status: int, code: ErrorCode
) -> None:
    api.fail_next(3, status)
    with pytest.raises(GatewayError) as failed:
        await gateway.get_subscription(seeded.subscription_ids[0])
    assert failed.value.code == code
    assert failed.value.raw_code in ("INTERNAL_SERVER_ERROR", "RATE_LIMIT_REACHED")


async def test_a_slow_paypal_times_out(api: PayPalEmulator, seeded: Seeded) -> None:
    gw = PayPalGateway(paypal_settings(api, timeout=0.3, max_retries=0), backoff=0.01)
    try:
        await gw.get_subscription(seeded.subscription_ids[0])  # token fetched in time
        api.slow_next(1, 1.0)
        with pytest.raises(GatewayError) as slow:
            await gw.get_subscription(seeded.subscription_ids[0])
    finally:
        await gw.close()
    assert slow.value.code == ErrorCode.timeout


# --- webhooks ----------------------------------------------------------------------------


async def test_a_signed_delivery_is_verified_and_translated(
    api: PayPalEmulator, gateway: PayPalGateway, seeded: Seeded
) -> None:
    refund_id = api.refund_outside(seeded.charge_id, "10.00")
    body, headers = api.webhook_delivery(
        "PAYMENT.CAPTURE.REFUNDED", api.refund_json(refund_id), resource_type="refund"
    )
    (event,) = await gateway.parse_webhook(body, headers)
    assert event.kind == EventKind.refund and event.raw_type == "PAYMENT.CAPTURE.REFUNDED"
    assert event.object_id == refund_id and event.related_id == seeded.charge_id
    assert event.amount == usd(1000) and event.status == "COMPLETED"
    assert event.id == json.loads(body)["id"]
    (verify,) = api.requests_to("POST", "/v1/notifications/verify-webhook-signature")
    assert json.loads(verify.body)["webhook_id"] == api.webhook_id


async def test_forged_deliveries_are_rejected(
    api: PayPalEmulator, gateway: PayPalGateway, seeded: Seeded
) -> None:
    body, headers = api.webhook_delivery(
        "PAYMENT.CAPTURE.COMPLETED", api.capture_json(seeded.charge_id)
    )
    with pytest.raises(WebhookRejected):
        await gateway.parse_webhook(body.replace(b"100.00", b"999.00"), headers)
    with pytest.raises(WebhookRejected):
        await gateway.parse_webhook(body, {**headers, "PAYPAL-TRANSMISSION-SIG": "Zm9yZ2Vk"})
    without = {k: v for k, v in headers.items() if k != "PAYPAL-TRANSMISSION-SIG"}
    with pytest.raises(WebhookRejected) as unsigned:
        await gateway.parse_webhook(body, without)
    assert "PAYPAL-TRANSMISSION-SIG" in unsigned.value.message
    assert len(api.requests_to("POST", "/v1/notifications/verify-webhook-signature")) == 2


async def test_stale_deliveries_are_rejected_without_asking_paypal(
    api: PayPalEmulator, gateway: PayPalGateway, seeded: Seeded
) -> None:
    sent = datetime.now(UTC) - timedelta(minutes=6)
    body, headers = api.webhook_delivery(
        "PAYMENT.CAPTURE.COMPLETED", api.capture_json(seeded.charge_id), transmission_time=sent
    )
    with pytest.raises(WebhookRejected) as stale:
        await gateway.parse_webhook(body, headers)
    assert "stale" in stale.value.message
    assert api.requests_to("POST", "/v1/notifications/verify-webhook-signature") == []


async def test_without_a_webhook_id_nothing_is_accepted(
    api: PayPalEmulator, seeded: Seeded
) -> None:
    gw = PayPalGateway(paypal_settings(api, webhook_id=None), backoff=0.01)
    body, headers = api.webhook_delivery(
        "PAYMENT.CAPTURE.COMPLETED", api.capture_json(seeded.charge_id)
    )
    try:
        with pytest.raises(WebhookRejected) as rejected:
            await gw.parse_webhook(body, headers)
    finally:
        await gw.close()
    assert "webhook_id" in rejected.value.message


async def test_events_map_to_our_kinds(
    api: PayPalEmulator, gateway: PayPalGateway, seeded: Seeded
) -> None:
    authorization = seeded.authorized_ids[0]
    await gateway.capture(authorization, None, idempotency_key="c")
    (from_authorization,) = api.authorizations[authorization].captures
    paid_invoice = api.add_invoice(EMAIL, "30.00", status="PAID")
    created = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    cases = [
        (
            "PAYMENT.CAPTURE.COMPLETED",
            api.capture_json(seeded.charge_id),
            EventKind.payment_succeeded,
            seeded.charge_id,
        ),
        (
            "PAYMENT.CAPTURE.COMPLETED",
            api.capture_json(from_authorization),
            EventKind.capture,
            from_authorization,
        ),
        (
            "PAYMENT.CAPTURE.DENIED",
            api.capture_json(seeded.charge_id),
            EventKind.payment_failed,
            seeded.charge_id,
        ),
        (
            "CUSTOMER.DISPUTE.CREATED",
            {
                "dispute_id": "PP-D-27803",
                "reason": "MERCHANDISE_OR_SERVICE_NOT_RECEIVED",
                "status": "OPEN",
                "dispute_amount": {"currency_code": "USD", "value": "100.00"},
                "disputed_transactions": [{"seller_transaction_id": seeded.charge_id}],
            },
            EventKind.dispute_created,
            "PP-D-27803",
        ),
        (
            "INVOICING.INVOICE.PAID",
            {"invoice": api.invoice_json(paid_invoice)},
            EventKind.invoice_paid,
            paid_invoice,
        ),
        (
            "BILLING.SUBSCRIPTION.CANCELLED",
            api.subscription_json(seeded.subscription_ids[0]),
            EventKind.subscription_canceled,
            seeded.subscription_ids[0],
        ),
        (
            "BILLING.SUBSCRIPTION.UPDATED",
            api.subscription_json(seeded.subscription_ids[0]),
            EventKind.subscription_updated,
            seeded.subscription_ids[0],
        ),
        (
            "BILLING.SUBSCRIPTION.SUSPENDED",
            api.subscription_json(seeded.subscription_ids[1]),
            EventKind.subscription_updated,
            seeded.subscription_ids[1],
        ),
        (
            "BILLING.SUBSCRIPTION.PAYMENT.FAILED",
            api.subscription_json(seeded.subscription_ids[1]),
            EventKind.payment_failed,
            seeded.subscription_ids[1],
        ),
        (
            "CHECKOUT.ORDER.APPROVED",
            {"id": "5O190127TN364715T"},
            EventKind.other,
            "5O190127TN364715T",
        ),
    ]
    for event_type, resource, kind, object_id in cases:
        body, headers = api.webhook_delivery(event_type, resource, created=created)
        (event,) = await gateway.parse_webhook(body, headers)
        assert (event.kind, event.object_id) == (kind, object_id), event_type
        assert event.created == created
    dispute = (
        await gateway.parse_webhook(*api.webhook_delivery("CUSTOMER.DISPUTE.CREATED", cases[3][1]))
    )[0]
    assert dispute.related_id == seeded.charge_id and dispute.amount == usd(10000)
    captured = (await gateway.parse_webhook(*api.webhook_delivery(*cases[1][:2])))[0]
    assert captured.related_id == authorization
    invoice = (await gateway.parse_webhook(*api.webhook_delivery(*cases[4][:2])))[0]
    assert (
        invoice.amount == usd(3000)
        and invoice.related_id == api.invoices[paid_invoice].payment_ids[0]
    )
    cancelled = (await gateway.parse_webhook(*api.webhook_delivery(*cases[5][:2])))[0]
    assert cancelled.customer_id == seeded.payer_id


# --- the wire ----------------------------------------------------------------------------


async def test_what_the_gateway_sends_follows_paypals_descriptions(
    api: PayPalEmulator, gateway: PayPalGateway, seeded: Seeded
) -> None:
    await gateway.lookup(LookupQuery.parse(EMAIL))
    await gateway.lookup(LookupQuery.parse(seeded.charge_id))
    await gateway.refund(seeded.charge_id, usd(1000), reason="x", idempotency_key="r")
    await gateway.capture(seeded.authorized_ids[0], usd(1000), idempotency_key="c")
    await gateway.void(seeded.authorized_ids[1], idempotency_key="v")
    await gateway.cancel_subscription(
        seeded.subscription_ids[0], at_period_end=False, reason="asked", idempotency_key="s"
    )
    await gateway.send_invoice(api.add_invoice(EMAIL, "3.00", status="DRAFT"), idempotency_key="i")
    await gateway.parse_webhook(
        *api.webhook_delivery("PAYMENT.CAPTURE.COMPLETED", api.capture_json(seeded.charge_id))
    )
    problems = schema_problems(api.exchanges, requests=True)
    assert problems == [], "\n".join(problems)
    # 404s: a bare ID is tried as a capture and as an authorization at once.
    assert {e.status for e in api.exchanges} <= {200, 201, 204, 404}
