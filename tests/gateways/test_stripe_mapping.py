"""Stripe's JSON to our models, without a server: Stripe's own example objects, varied.

Each object starts as Stripe's published example (the emulator's fixtures.json, from
stripe/openapi) and changes only the fields a case is about, so the shapes stay Stripe's.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.gateways.base import ErrorCode, GatewayError
from bot.gateways.events import EventKind
from bot.gateways.stripe.mapping import (
    KEY_META,
    REASON_META,
    describe_discount,
    from_stripe_amount,
    parse_charge,
    parse_customer,
    parse_dispute,
    parse_invoice,
    parse_refund,
    parse_subscription,
    parse_tax_id,
    to_stripe_amount,
)
from bot.gateways.stripe.webhooks import parse_event
from bot.models import ChargeStatus, DisputeStatus, InvoiceStatus, SubscriptionStatus
from bot.money import Money
from chargedesk_emulators.stripe import FIXTURES_PATH

FIXTURES: dict[str, dict[str, Any]] = json.loads(FIXTURES_PATH.read_text())["resources"]


def stripe_object(kind: str, **fields: Any) -> dict[str, Any]:
    """Stripe's example `kind`, with `fields` replacing its own."""
    return {**copy.deepcopy(FIXTURES[kind]), **fields}


def captured_charge(amount: int, currency: str, **fields: Any) -> dict[str, Any]:
    captured = {"amount_captured": amount, "captured": True, "status": "succeeded"}
    return stripe_object("charge", amount=amount, currency=currency, **{**captured, **fields})


# --- charges -----------------------------------------------------------------------------


def test_partially_refunded_stripe_charge_maps_remaining_amount() -> None:
    charge = parse_charge(captured_charge(10000, "eur", amount_refunded=2500))
    assert charge.status == ChargeStatus.partially_refunded
    assert charge.amount == Money(minor=10000, currency="EUR")
    assert charge.amount_refunded == 2500
    assert charge.refundable == Money(minor=7500, currency="EUR")


def test_fully_refunded_stripe_charge_leaves_nothing_to_refund() -> None:
    charge = parse_charge(captured_charge(10000, "usd", amount_refunded=10000, refunded=True))
    assert charge.status == ChargeStatus.refunded
    assert charge.refundable == Money(minor=0, currency="USD")


def test_a_released_part_of_a_partial_capture_is_not_counted_as_refunded() -> None:
    # Stripe books the 40.00 it never took as refunded; we count only money given back.
    raw = captured_charge(10000, "usd", amount_captured=6000, amount_refunded=4000)
    charge = parse_charge(raw)
    assert charge.status == ChargeStatus.succeeded
    assert (charge.amount_captured, charge.amount_refunded) == (6000, 0)
    assert charge.refundable == Money(minor=6000, currency="USD")


def test_stripes_example_uncaptured_charge_is_an_authorization() -> None:
    charge = parse_charge(FIXTURES["charge"])
    assert charge.status == ChargeStatus.authorized
    assert charge.id == FIXTURES["charge"]["id"]
    assert charge.amount == Money(minor=100, currency="USD")
    assert charge.created == datetime(2009, 2, 13, 23, 31, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("fields", "intent_status"),
    [({"refunded": True}, None), ({}, "canceled")],
    ids=["released-by-refund", "intent-canceled"],
)
def test_a_released_hold_reads_as_voided(fields: dict[str, Any], intent_status: str | None) -> None:
    raw = stripe_object("charge", captured=False, amount_captured=0, **fields)
    assert parse_charge(raw, intent_status).status == ChargeStatus.voided


def test_failed_and_disputed_stripe_charges_keep_their_state() -> None:
    failed = parse_charge(
        stripe_object("charge", status="failed", failure_message="Your card was declined.")
    )
    assert failed.status == ChargeStatus.failed
    assert failed.failure_message == "Your card was declined."
    disputed = parse_charge(captured_charge(5000, "eur", disputed=True))
    assert disputed.status == ChargeStatus.disputed
    assert disputed.refundable == Money(minor=0, currency="EUR")


def test_an_expanded_customer_and_intent_map_to_their_ids() -> None:
    raw = captured_charge(
        1000, "usd", customer={"id": "cus_123", "object": "customer"}, payment_intent="pi_456"
    )
    charge = parse_charge(raw)
    assert (charge.customer_id, charge.payment_intent_id) == ("cus_123", "pi_456")


# --- money: Stripe's exponents -----------------------------------------------------------


def test_a_yen_charge_is_whole_yen() -> None:
    charge = parse_charge(captured_charge(5000, "jpy", amount_refunded=1200))
    assert charge.amount == Money(minor=5000, currency="JPY")
    assert charge.refundable == Money(minor=3800, currency="JPY")
    assert to_stripe_amount(Money(minor=3800, currency="JPY")) == 3800


def test_a_forint_charge_travels_with_two_digits() -> None:
    # HUF: ISO 4217 gives two digits and Stripe sends them, so 5,000 Ft is 500000 both ways.
    charge = parse_charge(captured_charge(500000, "huf", amount_refunded=150000))
    assert charge.amount == Money(minor=500000, currency="HUF")
    assert charge.refundable == Money(minor=350000, currency="HUF")
    assert to_stripe_amount(Money(minor=350000, currency="HUF")) == 350000


def test_a_kuwaiti_dinar_charge_has_three_digits_and_moves_in_steps_of_ten_fils() -> None:
    charge = parse_charge(captured_charge(12340, "kwd", amount_refunded=2340))
    assert charge.amount == Money(minor=12340, currency="KWD")
    assert charge.refundable == Money(minor=10000, currency="KWD")
    assert to_stripe_amount(Money(minor=10000, currency="KWD")) == 10000
    with pytest.raises(GatewayError) as refused:
        to_stripe_amount(Money(minor=12345, currency="KWD"))
    assert refused.value.code == ErrorCode.rejected


def test_krona_amounts_lose_stripes_two_zero_digits_and_refuse_a_fraction() -> None:
    assert from_stripe_amount(500, "isk") == Money(minor=5, currency="ISK")
    assert to_stripe_amount(Money(minor=5, currency="ISK")) == 500
    with pytest.raises(GatewayError) as fraction:
        from_stripe_amount(550, "isk")
    assert fraction.value.code == ErrorCode.invalid_state


# --- refunds, subscriptions, invoices, disputes, tax IDs, customers ------------------------


def test_a_refund_keeps_our_reason_over_stripes_word() -> None:
    raw = stripe_object(
        "refund",
        amount=2500,
        currency="eur",
        reason="requested_by_customer",
        metadata={KEY_META: "apr_1", REASON_META: "requested_by_customer: wrong size"},
    )
    refund = parse_refund(raw)
    assert refund.amount == Money(minor=2500, currency="EUR")
    assert refund.charge_id == FIXTURES["refund"]["charge"]
    assert refund.reason == "requested_by_customer: wrong size"
    assert refund.status == "succeeded"


def test_stripes_example_subscription_is_priced_from_its_items() -> None:
    sub = parse_subscription(FIXTURES["subscription"])
    assert sub.status == SubscriptionStatus.active
    assert sub.amount == Money(minor=2000, currency="USD")
    assert sub.interval == "month"
    assert sub.cancel_at_period_end is True
    # Since API 2025-03-31 the period end sits on the items.
    assert sub.current_period_end == datetime.fromtimestamp(976287773, UTC)


def test_a_subscription_item_quantity_multiplies_its_price() -> None:
    raw = stripe_object("subscription")
    raw["items"]["data"][0]["quantity"] = 3
    raw["items"]["data"][0]["price"]["recurring"]["interval_count"] = 3
    sub = parse_subscription(raw)
    assert sub.amount == Money(minor=6000, currency="USD")
    assert sub.interval == "3 months"


@pytest.mark.parametrize(
    ("stripe_status", "ours"),
    [
        ("trialing", SubscriptionStatus.trialing),
        ("past_due", SubscriptionStatus.past_due),
        ("paused", SubscriptionStatus.unpaid),
        ("incomplete_expired", SubscriptionStatus.canceled),
    ],
)
def test_subscription_statuses_map_to_ours(stripe_status: str, ours: SubscriptionStatus) -> None:
    assert parse_subscription(stripe_object("subscription", status=stripe_status)).status == ours


def test_stripes_example_invoice_keeps_lines_that_add_up() -> None:
    invoice = parse_invoice(FIXTURES["invoice"])
    assert invoice.status == InvoiceStatus.draft
    assert invoice.amount_due == Money(minor=1000, currency="USD")
    assert invoice.amount_paid == Money(minor=0, currency="USD")
    assert [line.amount for line in invoice.lines] == [Money(minor=1000, currency="USD")]


def test_invoice_lines_that_leave_out_tax_give_way_to_one_total() -> None:
    taxed = stripe_object("invoice", amount_due=1190, status="paid", amount_paid=1190)
    invoice = parse_invoice(taxed)
    assert invoice.status == InvoiceStatus.paid
    assert invoice.amount_paid == Money(minor=1190, currency="USD")
    assert invoice.lines == ()


def test_stripes_example_dispute_needs_a_response_by_its_due_date() -> None:
    dispute = parse_dispute(FIXTURES["dispute"])
    assert dispute.status == DisputeStatus.needs_response
    assert dispute.amount == Money(minor=1000, currency="USD")
    assert dispute.evidence_due_by == datetime.fromtimestamp(1723679999, UTC)


@pytest.mark.parametrize(
    ("status", "verified"), [("pending", None), ("verified", True), ("unverified", False)]
)
def test_a_tax_ids_verification_maps_to_yes_no_or_unknown(
    status: str, verified: bool | None
) -> None:
    raw = stripe_object("tax_id", verification={"status": status})
    tax_id = parse_tax_id(raw)
    assert (tax_id.type, tax_id.value, tax_id.country) == ("eu_vat", "DE123456789", "DE")
    assert tax_id.verified is verified


def test_a_customer_keeps_address_locale_and_exemption() -> None:
    raw = stripe_object(
        "customer",
        email="jenny@example.com",
        name="Jenny Rosen",
        address={"line1": "1 Main St", "city": "Berlin", "country": "DE", "postal_code": "10115"},
        preferred_locales=["de-DE", "en"],
        tax_exempt="exempt",
    )
    customer = parse_customer(raw["id"], raw)
    assert (customer.email, customer.name, customer.locale) == (
        "jenny@example.com",
        "Jenny Rosen",
        "de-DE",
    )
    assert customer.address is not None and customer.address.country == "DE"
    assert customer.tax_exempt is True


def test_a_coupon_is_described_in_the_customers_money() -> None:
    off = {"id": "SPRING", "amount_off": 500, "currency": "eur", "duration": "repeating"}
    assert describe_discount({**off, "duration_in_months": 3}) == (
        "SPRING: €5.00 off, for 3 months"
    )
    assert describe_discount(
        {"id": "X", "percent_off": 12.5, "duration": "forever"}, "WELCOME"
    ) == ("WELCOME: 12.5% off, forever")


# --- events ------------------------------------------------------------------------------


def test_a_charge_refunded_event_names_the_latest_refund_and_the_running_total() -> None:
    refunds = [
        stripe_object("refund", id="re_old", amount=1000, currency="eur", created=100),
        stripe_object("refund", id="re_new", amount=1500, currency="eur", created=200),
    ]
    charge = captured_charge(
        10000, "eur", amount_refunded=2500, refunds={"object": "list", "data": refunds}
    )
    event = parse_event(
        stripe_object("event", type="charge.refunded", data={"object": charge}, livemode=False)
    )
    assert event.kind == EventKind.refund
    assert (event.object_id, event.related_id) == ("re_new", charge["id"])
    assert event.amount == Money(minor=1500, currency="EUR")
    assert event.detail["amount_refunded"] == Money(minor=2500, currency="EUR")
    assert event.status == ChargeStatus.partially_refunded.value
