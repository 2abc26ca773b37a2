"""PayPal's JSON to our models, without a server.

Every sample is shaped as PayPal's published API describes it, and the first test holds
each one against those descriptions (the emulator's copies of PayPal's OpenAPI files),
so a sample cannot drift from what PayPal really sends.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import SecretStr

from bot.gateways.base import ErrorCode, GatewayError
from bot.gateways.paypal.gateway import PayPalGateway
from bot.gateways.paypal.mapping import (
    money_from_paypal,
    money_to_paypal,
    parse_authorization,
    parse_capture,
    parse_invoice,
    parse_refund,
    parse_row_charge,
    parse_subscription,
    payers_from_rows,
    refund_json_from_row,
)
from bot.models import ChargeStatus, InvoiceStatus, SubscriptionStatus
from bot.money import Money, MoneyError
from bot.settings import PayPalSettings
from chargedesk_emulators.paypal import Exchange, schema_problems

API = "https://api-m.sandbox.paypal.com"
CAPTURE_ID = "2GG279541U471931P"
AUTHORIZATION_ID = "0VF52814937998046"
ORDER_ID = "5O190127TN364715T"


def money(value: str, currency: str = "USD") -> dict[str, str]:
    return {"currency_code": currency, "value": value}


def link(kind: str, object_id: str, rel: str) -> dict[str, str]:
    return {"href": f"{API}/v2/payments/{kind}/{object_id}", "rel": rel, "method": "GET"}


def capture(
    value: str, status: str = "COMPLETED", currency: str = "USD", **fields: Any
) -> dict[str, Any]:
    """A capture as GET /v2/payments/captures/{id} answers it."""
    return {
        "id": CAPTURE_ID,
        "status": status,
        "amount": money(value, currency),
        "final_capture": True,
        "seller_protection": {"status": "ELIGIBLE"},
        "supplementary_data": {"related_ids": {"order_id": ORDER_ID}},
        "create_time": "2026-11-02T10:00:00Z",
        "update_time": "2026-11-02T10:00:05Z",
        "links": [link("captures", CAPTURE_ID, "self")],
        **fields,
    }


def refund(
    refund_id: str, value: str, status: str = "COMPLETED", currency: str = "USD"
) -> dict[str, Any]:
    """A refund as GET /v2/payments/refunds/{id} answers it: its `up` link names the capture."""
    return {
        "id": refund_id,
        "status": status,
        "amount": money(value, currency),
        "create_time": "2026-11-03T09:00:00Z",
        "update_time": "2026-11-03T09:00:00Z",
        "links": [link("refunds", refund_id, "self"), link("captures", CAPTURE_ID, "up")],
    }


def authorization(value: str, status: str, **fields: Any) -> dict[str, Any]:
    """An authorization as GET /v2/payments/authorizations/{id} answers it."""
    return {
        "id": AUTHORIZATION_ID,
        "status": status,
        "amount": money(value),
        "expiration_time": "2026-12-01T10:00:00Z",
        "create_time": "2026-11-02T10:00:00Z",
        "links": [link("authorizations", AUTHORIZATION_ID, "self")],
        **fields,
    }


def subscription(status: str = "ACTIVE", **billing: Any) -> dict[str, Any]:
    """A subscription as GET /v1/billing/subscriptions/{id}?fields=plan answers it."""
    return {
        "id": "I-BW452GLLEP1G",
        "plan_id": "P-5ML4271244454362WXNWU5NQ",
        "status": status,
        "status_update_time": "2026-11-05T08:00:00Z",
        "quantity": "2",
        "subscriber": {
            "payer_id": "2J6QB8YJQSJRJ",
            "email_address": "customer@example.com",
            "name": {"given_name": "John", "surname": "Doe"},
        },
        "billing_info": {
            "outstanding_balance": money("0.00"),
            "cycle_executions": [
                {
                    "tenure_type": "REGULAR",
                    "sequence": 1,
                    "cycles_completed": 1,
                    "cycles_remaining": 0,
                    "total_cycles": 0,
                }
            ],
            "next_billing_time": "2026-12-01T10:00:00Z",
            "failed_payments_count": 0,
            **billing,
        },
        "plan": {
            "name": "Video Streaming Service Plan",
            "billing_cycles": [
                {
                    "frequency": {"interval_unit": "MONTH", "interval_count": 1},
                    "tenure_type": "REGULAR",
                    "sequence": 1,
                    "total_cycles": 0,
                    "pricing_scheme": {"fixed_price": money("10.00")},
                }
            ],
        },
        "create_time": "2026-10-01T10:00:00Z",
    }


def invoice(status: str, total: str, paid: str | None = None) -> dict[str, Any]:
    """An invoice as GET /v2/invoicing/invoices/{id} answers it."""
    body: dict[str, Any] = {
        "id": "INV2-Z56S-5LLA-Q52L-CPZ5",
        "status": status,
        "detail": {
            "invoice_number": "#123",
            "currency_code": "USD",
            "payment_term": {"term_type": "NET_10", "due_date": "2026-11-22"},
            "metadata": {
                "create_time": "2026-11-12T08:00:20Z",
                "recipient_view_url": "https://www.sandbox.paypal.com/invoice/p/#Z56S5LLAQ52LCPZ5",
            },
        },
        "primary_recipients": [
            {
                "billing_info": {
                    "name": {"given_name": "Stephanie", "surname": "Meyers"},
                    "email_address": "bill-me@example.com",
                }
            }
        ],
        "amount": money(total),
    }
    if paid is not None:
        body["payments"] = {
            "paid_amount": money(paid),
            "transactions": [{"payment_id": CAPTURE_ID, "amount": money(paid), "method": "PAYPAL"}],
        }
    return body


def search_row(
    transaction_id: str, code: str, value: str, *, reference: str | None = None
) -> dict[str, Any]:
    """One row of GET /v1/reporting/transactions (fields=all)."""
    info: dict[str, Any] = {
        "transaction_id": transaction_id,
        "transaction_event_code": code,
        "transaction_initiation_date": "2026-11-02T10:00:00Z",
        "transaction_amount": money(value),
        "transaction_status": "S",
        "transaction_subject": "Order 1001",
    }
    if reference:
        info |= {"paypal_reference_id": reference, "paypal_reference_id_type": "TXN"}
    return {
        "transaction_info": info,
        "payer_info": {
            "account_id": "2J6QB8YJQSJRJ",
            "email_address": "Customer@Example.com",
            "payer_name": {"given_name": "John", "surname": "Doe"},
        },
    }


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (f"/v2/payments/captures/{CAPTURE_ID}", capture("100.00", "PARTIALLY_REFUNDED")),
        ("/v2/payments/refunds/1JU08902781691411", refund("1JU08902781691411", "30.00")),
        (f"/v2/payments/authorizations/{AUTHORIZATION_ID}", authorization("50.00", "CREATED")),
        ("/v1/billing/subscriptions/I-BW452GLLEP1G", subscription()),
        ("/v2/invoicing/invoices/INV2-Z56S-5LLA-Q52L-CPZ5", invoice("PAID", "120.00", "120.00")),
        (
            "/v1/reporting/transactions",
            {
                "transaction_details": [search_row("5TY05013RG002845M", "T0006", "100.00")],
                "account_number": "XZXSPECPDZHZU",
                "page": 1,
                "total_items": 1,
                "total_pages": 1,
            },
        ),
    ],
    ids=["capture", "refund", "authorization", "subscription", "invoice", "search"],
)
def test_the_samples_are_what_paypals_api_descriptions_allow(
    path: str, body: dict[str, Any]
) -> None:
    query = (
        {"start_date": "2026-11-01T00:00:00Z", "end_date": "2026-11-30T00:00:00Z"}
        if path.startswith("/v1/reporting/")
        else {}
    )
    answer = Exchange("GET", path, query, {}, b"", 200, json.dumps(body).encode())
    assert schema_problems([answer]) == []


# --- captures ----------------------------------------------------------------------------


def test_partially_refunded_paypal_capture_maps_remaining_amount() -> None:
    refunds = [refund("1JU08902781691411", "30.00"), refund("2KU18902781691412", "5.50")]
    charge = parse_capture(capture("100.00", "PARTIALLY_REFUNDED"), refunds, "2J6QB8YJQSJRJ")
    assert charge.status == ChargeStatus.partially_refunded
    assert charge.amount == Money(minor=10000, currency="USD")
    assert (charge.amount_captured, charge.amount_refunded) == (10000, 3550)
    assert charge.refundable == Money(minor=6450, currency="USD")
    assert charge.created == datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


def test_a_failed_refund_gives_nothing_back() -> None:
    refunds = [refund("1JU08902781691411", "30.00", status="FAILED")]
    charge = parse_capture(capture("100.00", "PARTIALLY_REFUNDED"), refunds, None)
    assert charge.amount_refunded == 0


def test_a_refunded_capture_leaves_nothing_to_refund() -> None:
    charge = parse_capture(capture("100.00", "REFUNDED"), [], None)
    assert charge.status == ChargeStatus.refunded
    assert charge.amount_refunded == 10000
    assert charge.refundable == Money(minor=0, currency="USD")


def test_a_pending_capture_shows_as_paid_with_nothing_captured_yet() -> None:
    body = capture("100.00", "PENDING", status_details={"reason": "ECHECK"})
    charge = parse_capture(body, [], None)
    assert charge.status == ChargeStatus.succeeded
    assert charge.amount_captured == 0
    assert charge.description == "pending at PayPal (ECHECK)"


def test_a_declined_capture_is_failed_with_paypals_reason() -> None:
    charge = parse_capture(capture("100.00", "DECLINED"), [], None)
    assert charge.status == ChargeStatus.failed
    assert charge.failure_message == "declined at PayPal"


def test_a_refund_keeps_our_reason_and_paypals_status_in_our_words() -> None:
    mapped = parse_refund(refund("1JU08902781691411", "30.00", "PENDING"), CAPTURE_ID, "late")
    assert mapped.amount == Money(minor=3000, currency="USD")
    assert (mapped.charge_id, mapped.status, mapped.reason) == (CAPTURE_ID, "pending", "late")


# --- money: PayPal's exponents -----------------------------------------------------------


def test_a_forint_capture_is_whole_forints_at_paypal_and_two_digits_here() -> None:
    # ISO 4217 gives HUF two digits; PayPal takes and sends HUF in whole units only.
    refunds = [refund("1JU08902781691411", "1500", currency="HUF")]
    charge = parse_capture(capture("5000", "PARTIALLY_REFUNDED", "HUF"), refunds, None)
    assert charge.amount == Money(minor=500000, currency="HUF")
    assert charge.refundable == Money(minor=350000, currency="HUF")
    assert money_to_paypal(Money(minor=350000, currency="HUF")) == money("3500", "HUF")
    with pytest.raises(GatewayError) as fraction:
        money_to_paypal(Money(minor=350050, currency="HUF"))
    assert fraction.value.code == ErrorCode.rejected


def test_a_yen_capture_is_whole_yen_and_refuses_a_fraction() -> None:
    charge = parse_capture(capture("500", currency="JPY"), [], None)
    assert charge.amount == Money(minor=500, currency="JPY")
    assert money_to_paypal(charge.amount) == money("500", "JPY")
    with pytest.raises(MoneyError):
        money_from_paypal(money("500.5", "JPY"))


def test_three_digit_currencies_keep_all_three() -> None:
    # PayPal serves no three-digit currency today; ISO's digits still hold if it does.
    assert money_from_paypal(money("12.345", "KWD")) == Money(minor=12345, currency="KWD")
    assert money_to_paypal(Money(minor=12345, currency="KWD")) == money("12.345", "KWD")


# --- authorizations ----------------------------------------------------------------------


def test_a_new_authorization_is_authorized_for_its_whole_amount() -> None:
    charge = parse_authorization(authorization("50.00", "CREATED"), [], {}, None)
    assert charge.status == ChargeStatus.authorized
    assert charge.amount == Money(minor=5000, currency="USD")


def test_a_partly_captured_authorization_shows_what_is_left_to_capture() -> None:
    part = capture("20.00", links=[link("authorizations", AUTHORIZATION_ID, "up")])
    charge = parse_authorization(authorization("50.00", "PARTIALLY_CAPTURED"), [part], {}, None)
    assert charge.status == ChargeStatus.authorized
    assert charge.amount == Money(minor=3000, currency="USD")
    assert charge.description == f"partly captured as {CAPTURE_ID}"


def test_a_captured_authorization_reads_as_its_captures_refunds() -> None:
    part = capture("50.00", links=[link("authorizations", AUTHORIZATION_ID, "up")])
    refunds = {CAPTURE_ID: [refund("1JU08902781691411", "50.00")]}
    charge = parse_authorization(authorization("50.00", "CAPTURED"), [part], refunds, None)
    assert charge.status == ChargeStatus.refunded
    assert (charge.amount_captured, charge.amount_refunded) == (5000, 5000)


@pytest.mark.parametrize(
    ("status", "ours"), [("VOIDED", "voided"), ("EXPIRED", "voided"), ("DENIED", "failed")]
)
def test_an_authorization_that_ended_uncaptured_keeps_its_end(status: str, ours: str) -> None:
    assert parse_authorization(authorization("50.00", status), [], {}, None).status == ours


# --- subscriptions and invoices ----------------------------------------------------------


def test_a_subscription_is_priced_from_its_regular_cycle_times_quantity() -> None:
    sub = parse_subscription(subscription())
    assert sub.status == SubscriptionStatus.active
    assert sub.amount == Money(minor=2000, currency="USD")  # 10.00 x quantity 2
    assert (sub.interval, sub.plan, sub.customer_id) == (
        "month",
        "Video Streaming Service Plan",
        "2J6QB8YJQSJRJ",
    )
    assert sub.current_period_end == datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    assert sub.canceled_at is None


def test_a_subscription_in_its_trial_or_behind_on_payments_says_so() -> None:
    trial = [{"tenure_type": "TRIAL", "sequence": 1, "cycles_completed": 0, "cycles_remaining": 1}]
    assert parse_subscription(subscription(cycle_executions=trial)).status == "trialing"
    assert parse_subscription(subscription(failed_payments_count=2)).status == "past_due"


def test_a_cancelled_subscription_is_canceled_when_paypal_changed_its_status() -> None:
    sub = parse_subscription(subscription("CANCELLED"))
    assert sub.status == SubscriptionStatus.canceled
    assert sub.canceled_at == datetime(2026, 11, 5, 8, 0, tzinfo=UTC)


def test_a_paid_invoice_maps_amounts_payment_and_recipient_page() -> None:
    mapped = parse_invoice(invoice("PAID", "120.00", "120.00"), "bill-me@example.com")
    assert mapped.status == InvoiceStatus.paid
    assert mapped.amount_due == Money(minor=12000, currency="USD")
    assert mapped.amount_paid == Money(minor=12000, currency="USD")
    assert (mapped.number, mapped.charge_id) == ("#123", CAPTURE_ID)
    assert mapped.hosted_url is not None and mapped.hosted_url.startswith("https://www.sandbox")


def test_a_sent_invoice_is_open_with_nothing_paid() -> None:
    mapped = parse_invoice(invoice("SENT", "120.00"), "bill-me@example.com")
    assert mapped.status == InvoiceStatus.open
    assert mapped.amount_paid == Money(minor=0, currency="USD")


# --- transaction search rows -------------------------------------------------------------


def test_search_rows_group_a_payers_payments_and_refunds_by_email_in_any_case() -> None:
    rows = [
        search_row("5TY05013RG002845M", "T0006", "100.00"),
        search_row("1RE28450RG002845N", "T1107", "-30.00", reference="5TY05013RG002845M"),
    ]
    (found,) = payers_from_rows(rows, "customer@example.com")
    assert found.payer.id == "2J6QB8YJQSJRJ"
    assert found.payer.name == "John Doe"
    assert list(found.captures) == ["5TY05013RG002845M"]
    refund_json = refund_json_from_row(found.row_refunds["5TY05013RG002845M"][0])
    assert money_from_paypal(refund_json["amount"]) == Money(minor=3000, currency="USD")


def test_an_older_sale_is_read_from_its_search_row() -> None:
    charge = parse_row_charge(search_row("5TY05013RG002845M", "T0006", "100.00"), "2J6QB8YJQSJRJ")
    assert charge.status == ChargeStatus.succeeded
    assert charge.amount == Money(minor=10000, currency="USD")
    assert charge.description == "Order 1001"


# --- dashboard links ---------------------------------------------------------------------


def settings(environment: str) -> PayPalSettings:
    return PayPalSettings(
        client_id="client", client_secret=SecretStr("secret"), environment=environment
    )


@pytest.mark.parametrize(
    ("environment", "host"),
    [("sandbox", "https://www.sandbox.paypal.com"), ("live", "https://www.paypal.com")],
)
async def test_a_capture_links_to_paypals_activity_page_of_its_environment(
    environment: str, host: str
) -> None:
    gateway = PayPalGateway(settings(environment))
    try:
        assert gateway.dashboard_url(CAPTURE_ID) == f"{host}/activity/payment/{CAPTURE_ID}"
        assert gateway.dashboard_url("I-BW452GLLEP1G") is None  # subscriptions have no such page
    finally:
        await gateway.close()
