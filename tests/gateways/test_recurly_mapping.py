"""Recurly's JSON as our models, and Recurly's money rules: pure, no server."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from bot.gateways.base import ErrorCode, GatewayError
from bot.gateways.recurly.client import parse_json
from bot.gateways.recurly.mapping import (
    amount_to_recurly,
    describe_coupon,
    is_object_id,
    money_from_recurly,
    parse_charge,
    parse_customer,
    parse_invoice,
    parse_refund,
    parse_subscription,
    plan_interval,
    recurly_decimals,
    refund_note,
    refund_reference,
)
from bot.models import ChargeStatus, InvoiceStatus, SubscriptionStatus
from bot.money import Money, MoneyError

ACCOUNT = {"id": "acct00000001", "object": "account", "code": "jane"}


def txn(**fields: Any) -> dict[str, Any]:
    base = {
        "id": "txn000000001",
        "object": "transaction",
        "type": "purchase",
        "status": "success",
        "currency": "USD",
        "amount": Decimal("100.00"),
        "account": ACCOUNT,
        "invoice": {"id": "inv000000001", "number": "1001"},
        "created_at": "2026-11-01T10:00:00Z",
    }
    return base | fields


def refund(amount: str, status: str = "success", original: str = "txn000000001") -> dict[str, Any]:
    return {
        "id": f"ref{amount.replace('.', '')}00000"[:12],
        "type": "refund",
        "status": status,
        "currency": "USD",
        "amount": Decimal(amount),
        "original_transaction_id": original,
        "created_at": "2026-11-02T10:00:00Z",
    }


# --- money -------------------------------------------------------------------------------


def test_numbers_are_read_from_the_json_text_never_as_floats() -> None:
    parsed = parse_json(b'{"a": 0.1, "b": 1234567890.12, "c": 500, "d": [19.99]}')
    assert parsed == {
        "a": Decimal("0.1"),
        "b": Decimal("1234567890.12"),
        "c": 500,
        "d": [Decimal("19.99")],
    }
    assert not any(isinstance(v, float) for v in (parsed["a"], parsed["b"], *parsed["d"]))


@pytest.mark.parametrize(
    ("value", "currency", "minor"),
    [
        (Decimal("12.34"), "USD", 1234),
        (Decimal("0.10"), "EUR", 10),
        (Decimal("100.0"), "USD", 10000),
        (500, "JPY", 500),
        (Decimal("500.0"), "JPY", 500),  # Recurly may write a whole yen as 500.0
        # ISO 4217 gives KWD three decimals; Recurly keeps two.
        (Decimal("12.34"), "KWD", 12340),
        (Decimal("-30.00"), "USD", -3000),  # a credit invoice's total
        ("19.99", "USD", 1999),  # unit_amount_decimal comes as a string
    ],
)
def test_recurly_amounts_become_exact_minor_units(value: Any, currency: str, minor: int) -> None:
    assert money_from_recurly(value, currency) == Money(minor=minor, currency=currency)


@pytest.mark.parametrize(
    ("value", "currency"),
    [
        (Decimal("500.5"), "JPY"),
        (Decimal("1.001"), "USD"),
        (0.1, "USD"),
        (True, "USD"),
        ("x", "USD"),
    ],
)
def test_what_is_not_an_exact_amount_is_refused(value: Any, currency: str) -> None:
    with pytest.raises(MoneyError):
        money_from_recurly(value, currency)


def test_recurly_keeps_two_decimals_at_most() -> None:
    assert [recurly_decimals(c) for c in ("USD", "JPY", "KWD", "BHD", "HUF")] == [2, 0, 2, 2, 2]


@pytest.mark.parametrize(
    ("money", "sent"),
    [
        (Money(minor=1234, currency="USD"), 12.34),
        (Money(minor=10, currency="EUR"), 0.1),
        (Money(minor=99999999999, currency="USD"), 999999999.99),
        (Money(minor=5000, currency="JPY"), 5000),
        (Money(minor=12340, currency="KWD"), 12.34),
    ],
)
def test_amounts_are_sent_as_numbers_that_print_back_exactly(money: Money, sent: float) -> None:
    number = amount_to_recurly(money)
    assert number == sent and type(number) is type(sent)
    assert Decimal(repr(number)) == money.decimal


def test_an_amount_finer_than_recurly_keeps_is_not_sent() -> None:
    with pytest.raises(GatewayError) as fils:
        amount_to_recurly(Money(minor=12345, currency="KWD"))  # 12.345 KWD
    assert fils.value.code == ErrorCode.rejected
    assert "at most 2 decimals" in fils.value.message


# --- charges and refunds -----------------------------------------------------------------


def test_a_payment_with_refunds_is_partly_refunded() -> None:
    charge = parse_charge(txn(), [refund("30.00"), refund("5.00", "declined")])
    assert (charge.status, charge.amount_captured, charge.amount_refunded) == (
        ChargeStatus.partially_refunded,
        10000,
        3000,
    )
    assert (charge.customer_id, charge.invoice_id) == ("acct00000001", "inv000000001")


def test_what_a_payment_may_refund_is_capped_by_its_invoice() -> None:
    # The invoice gave 20.00 back as account credit: only 80.00 of the payment remains.
    invoice = {"id": "inv000000001", "type": "charge", "refundable_amount": Decimal("80.00")}
    charge = parse_charge(txn(), [], invoice)
    assert charge.refundable == Money(minor=8000, currency="USD")
    assert "partly refunded otherwise" in (charge.description or "")
    # And the payment's own refunds cap it when they are the smaller.
    assert parse_charge(txn(), [refund("90.00")], invoice).refundable.minor == 1000


@pytest.mark.parametrize(
    ("fields", "status", "captured"),
    [
        ({"status": "processing"}, ChargeStatus.succeeded, 0),
        ({"status": "declined", "status_message": "Card declined"}, ChargeStatus.failed, 0),
        ({"status": "void"}, ChargeStatus.voided, 0),
        ({"status": "chargeback"}, ChargeStatus.disputed, 10000),
        ({"type": "authorization", "invoice": None}, ChargeStatus.authorized, 0),
        ({"type": "authorization", "status": "void"}, ChargeStatus.voided, 0),
    ],
)
def test_payment_states(fields: dict[str, Any], status: ChargeStatus, captured: int) -> None:
    charge = parse_charge(txn(**fields))
    assert (charge.status, charge.amount_captured) == (status, captured)
    assert charge.refundable.minor == 0 or status == ChargeStatus.succeeded


def test_an_unsettled_payment_says_so_and_has_nothing_refundable() -> None:
    charge = parse_charge(txn(status="processing"))
    assert charge.refundable.minor == 0
    assert "not settled yet" in (charge.description or "")
    assert parse_charge(
        txn(status="declined", status_message="Insufficient funds")
    ).failure_message == ("Insufficient funds")


def test_a_refund_names_its_payment() -> None:
    ours = parse_refund(refund("12.50"), "goodwill")
    assert (ours.charge_id, ours.amount, ours.status, ours.reason) == (
        "txn000000001",
        Money(minor=1250, currency="USD"),
        "succeeded",
        "goodwill",
    )
    assert parse_refund(refund("1.00", "processing")).status == "pending"


# --- accounts, invoices, subscriptions, coupons --------------------------------------------


def test_an_account_becomes_a_customer() -> None:
    customer = parse_customer({
        **ACCOUNT, "email": "jane@example.com", "first_name": "Jane", "last_name": "Doe",
        "preferred_locale": "de-DE", "created_at": "2026-01-01T00:00:00Z",
        "address": {"street1": "Hauptstraße 5", "postal_code": "80331", "city": "München", "country": "DE"},
    })  # fmt: skip
    assert (customer.id, customer.name, customer.locale, customer.country) == (
        "acct00000001",
        "Jane Doe",
        "de_DE",
        "DE",
    )
    assert parse_customer({**ACCOUNT, "company": "Acme Ltd"}).name == "Acme Ltd"


def test_an_invoice_with_credit_applied_is_paid_in_full() -> None:
    invoice = parse_invoice({
        "id": "inv000000001", "object": "invoice", "type": "charge", "state": "paid",
        "number": "1001", "currency": "USD", "account": ACCOUNT,
        "total": Decimal("100.00"), "paid": Decimal("80.00"), "balance": Decimal("0.00"),
        "line_items": [
            {"description": "Pro", "quantity": 2, "subtotal": Decimal("90.00"),
             "discount": Decimal("5.00"), "tax": Decimal("15.00"), "currency": "USD"},
        ],
        "transactions": [txn(), txn(id="txn000000002", status="declined")],
        "created_at": "2026-11-01T10:00:00Z", "closed_at": "2026-11-01T10:00:01Z",
    })  # fmt: skip
    assert (invoice.status, invoice.amount_paid.minor, invoice.charge_id) == (
        InvoiceStatus.paid,
        10000,
        "txn000000001",
    )
    (line,) = invoice.lines
    assert (line.description, line.quantity, line.amount.minor) == ("Pro", 2, 10000)
    assert invoice.paid_at is not None


def test_an_invoice_whose_lines_did_not_all_come_has_none() -> None:
    invoice = parse_invoice({
        "id": "inv1", "currency": "USD", "state": "past_due", "total": Decimal("5.00"),
        "balance": Decimal("5.00"), "has_more_line_items": True,
        "line_items": [{"description": "one of many", "subtotal": Decimal("1.00")}],
    })  # fmt: skip
    assert invoice.lines == () and invoice.status == InvoiceStatus.open
    assert invoice.amount_paid.minor == 0


def sub(**fields: Any) -> dict[str, Any]:
    base = {
        "id": "sub000000001", "object": "subscription", "account": ACCOUNT, "state": "active",
        "plan": {"id": "plan00000001", "code": "pro", "name": "Pro"}, "currency": "EUR",
        "unit_amount": Decimal("10.00"), "quantity": 3, "subtotal": Decimal("30.00"),
        "current_period_ends_at": "2026-12-01T00:00:00Z",
    }  # fmt: skip
    return base | fields


def test_subscription_states() -> None:
    plan = {"interval_unit": "months", "interval_length": 12}
    active = parse_subscription(sub(), plan)
    assert (active.status, active.amount.minor, active.interval, active.plan) == (
        SubscriptionStatus.active,
        3000,
        "year",
        "Pro",
    )
    ending = parse_subscription(
        sub(state="canceled", canceled_at="2026-11-05T00:00:00Z", expires_at="2027-01-01T00:00:00Z")
    )
    assert ending.status == SubscriptionStatus.active and ending.cancel_at_period_end
    assert ending.current_period_end is not None and ending.current_period_end.year == 2027
    ended = parse_subscription(sub(state="expired", expires_at="2026-11-05T00:00:00Z"))
    assert ended.status == SubscriptionStatus.canceled and not ended.cancel_at_period_end
    assert ended.canceled_at is not None
    trial = sub(trial_ends_at="2026-12-01T00:00:00Z")
    assert parse_subscription(trial).status == SubscriptionStatus.trialing
    no_subtotal = {k: v for k, v in sub().items() if k != "subtotal"}
    assert parse_subscription(no_subtotal).amount.minor == 3000


@pytest.mark.parametrize(
    ("unit", "length", "words"),
    [
        ("months", 1, "month"),
        ("months", 3, "3 months"),
        ("months", 24, "2 years"),
        ("days", 7, "week"),
        ("days", 14, "2 weeks"),
        ("days", 10, "10 days"),
    ],
)
def test_plan_intervals(unit: str, length: int, words: str) -> None:
    assert plan_interval({"interval_unit": unit, "interval_length": length}) == words


def test_coupons_are_described_like_every_gateway_does() -> None:
    percent = {
        "code": "WELCOME10",
        "discount": {"type": "percent", "percent": 10},
        "duration": "forever",
    }
    fixed = {
        "code": "SPRING",
        "discount": {"type": "fixed", "currencies": [
            {"currency": "USD", "amount": Decimal("5.00")}, {"currency": "EUR", "amount": Decimal("4.50")},
        ]},
        "duration": "temporal", "temporal_amount": 3, "temporal_unit": "month",
    }  # fmt: skip
    trial = {"code": "TRY", "discount": {"type": "free_trial", "trial": {"unit": "week", "length": 2}},
             "duration": "single_use"}  # fmt: skip
    assert describe_coupon(percent) == "WELCOME10: 10% off, forever"
    assert describe_coupon(fixed, "EUR") == "SPRING: €4.50 off, for 3 months"
    assert describe_coupon(trial) == "TRY: 2 weeks free, once"


def test_the_refund_reference_is_stable_and_reveals_neither_key_nor_reason() -> None:
    assert refund_reference("apr_123") == refund_reference("apr_123")
    assert refund_reference("apr_123") != refund_reference("apr_124")
    assert "apr_123" not in refund_note("apr_123")
    assert refund_note("apr_123") == f"Refund reference {refund_reference('apr_123')}"


def test_only_recurly_shaped_ids_are_asked_for() -> None:
    assert is_object_id("e28zov4fw0v2") and is_object_id("uuid-" + "a" * 32)
    assert not any(is_object_id(x) for x in ("ch_123", "cus_abc", "I-ABC", "", "E28ZOV4FW0V2"))
