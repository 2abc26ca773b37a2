"""Braintree's objects in our words: amounts, statuses, our key in a refund's order ID."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from types import SimpleNamespace as Obj

import pytest

from bot.gateways.base import ErrorCode
from bot.gateways.braintree.mapping import (
    ORDER_ID_MAX,
    ends_at_period_end,
    error_code,
    key_of_order,
    money_from_braintree,
    money_to_braintree,
    order_marker,
    parse_dispute,
    parse_subscription,
    parse_transaction,
)
from bot.models import ChargeStatus, DisputeStatus, SubscriptionStatus
from bot.money import Money, MoneyError


def sale(status: str = "settled", amount: str = "100.00", **fields: object) -> Obj:
    values: dict[str, object] = {
        "id": "abc12345",
        "type": "sale",
        "status": status,
        "amount": Decimal(amount),
        "currency_iso_code": "USD",
        "customer_details": Obj(id="123456789", email="jane@example.com"),
        "disputes": [],
        "created_at": datetime(2026, 11, 1, 10, 0),
    }
    values.update(fields)
    return Obj(**values)


def credit(amount: str, status: str = "submitted_for_settlement") -> Obj:
    return Obj(
        id="r", type="credit", status=status, amount=Decimal(amount), currency_iso_code="USD"
    )


@pytest.mark.parametrize(
    ("braintree", "currency", "minor"),
    [
        ("12.34", "USD", 1234),
        ("0.10", "EUR", 10),
        ("500", "JPY", 500),
        ("500.00", "JPY", 500),  # whole units written with zero decimals are still exact
        ("1.234", "KWD", 1234),
    ],
)
def test_amounts_convert_exactly_both_ways(braintree: str, currency: str, minor: int) -> None:
    money = money_from_braintree(braintree, currency)
    assert money == Money(minor=minor, currency=currency)
    assert money_from_braintree(money_to_braintree(money), currency) == money


def test_amounts_are_sent_with_the_currencys_own_digits() -> None:
    assert money_to_braintree(Money(minor=1050, currency="USD")) == "10.50"
    assert money_to_braintree(Money(minor=1000, currency="JPY")) == "1000"
    assert money_to_braintree(Money(minor=1500, currency="KWD")) == "1.500"


def test_an_amount_finer_than_the_currency_is_refused() -> None:
    with pytest.raises(MoneyError):
        money_from_braintree("10.5", "JPY")
    with pytest.raises(MoneyError):
        money_from_braintree("1.005", "USD")


def test_our_key_rides_in_the_order_id_and_comes_back() -> None:
    marker = order_marker("apr_0123456789ab")
    assert marker == "chargedesk:apr_0123456789ab"
    assert key_of_order(marker) == "apr_0123456789ab"
    # A merchant's own order ID, which Braintree copies onto refunds, is never read as ours.
    assert key_of_order("1234") is None


@pytest.mark.parametrize("key", ["x" * 300, "clé unique", "line\nbreak", "sha256:forged"])
def test_a_key_that_cannot_ride_whole_is_hashed_stably(key: str) -> None:
    marker = order_marker(key)
    assert marker == order_marker(key) and len(marker) <= ORDER_ID_MAX
    assert marker.startswith("chargedesk:sha256:") and key_of_order(marker) is None
    assert order_marker(key + "!") != marker


@pytest.mark.parametrize(
    ("status", "ours", "captured"),
    [
        ("authorized", ChargeStatus.authorized, 0),
        ("submitted_for_settlement", ChargeStatus.succeeded, 10000),
        ("settling", ChargeStatus.succeeded, 10000),
        ("settled", ChargeStatus.succeeded, 10000),
        ("voided", ChargeStatus.voided, 0),
        ("authorization_expired", ChargeStatus.voided, 0),
        ("processor_declined", ChargeStatus.failed, 0),
        ("gateway_rejected", ChargeStatus.failed, 0),
    ],
)
def test_transaction_statuses(status: str, ours: ChargeStatus, captured: int) -> None:
    charge = parse_transaction(sale(status), [])
    assert (charge.status, charge.amount_captured) == (ours, captured)


def test_refunds_count_unless_voided_or_failed() -> None:
    refunds = [credit("30.00"), credit("20.00", "settled"), credit("50.00", "voided")]
    charge = parse_transaction(sale(), refunds)
    assert (charge.status, charge.amount_refunded) == (ChargeStatus.partially_refunded, 5000)
    assert charge.refundable == Money(minor=5000, currency="USD")
    whole = parse_transaction(sale(), [credit("60.00"), credit("40.00")])
    assert whole.status == ChargeStatus.refunded


def test_a_disputed_payment_cannot_be_refunded_until_the_dispute_is_won() -> None:
    open_one = parse_transaction(sale(disputes=[Obj(status="open")]), [])
    won = parse_transaction(sale(disputes=[Obj(status="won")]), [])
    assert open_one.status == ChargeStatus.disputed and open_one.refundable.minor == 0
    assert won.status == ChargeStatus.succeeded


def test_a_declined_payment_says_why() -> None:
    charge = parse_transaction(
        sale("processor_declined", processor_response_text="Insufficient Funds"), []
    )
    assert charge.failure_message == "Insufficient Funds"


def test_a_guest_is_known_by_lowercased_email() -> None:
    charge = parse_transaction(sale(customer_details=Obj(id=None, email="Guest@Example.COM")), [])
    assert charge.customer_id == "guest@example.com"


def test_receipts_name_the_subscription_or_the_merchants_order() -> None:
    assert parse_transaction(sale(order_id="A-17"), []).description == "Order A-17"
    assert parse_transaction(sale(order_id="chargedesk:apr_1"), []).description is None
    billed = sale(subscription_id="sub1", plan_id="pro")
    assert parse_transaction(billed, []).description == "Subscription sub1 (pro)"


def subscription(**fields: object) -> Obj:
    values: dict[str, object] = {
        "id": "sub1",
        "status": "Active",
        "plan_id": "pro",
        "price": Decimal("20.00"),
        "next_billing_period_amount": Decimal("20.00"),
        "never_expires": True,
        "number_of_billing_cycles": None,
        "current_billing_cycle": 3,
        "trial_period": False,
        "next_billing_date": date(2026, 12, 1),
        "status_history": [],
    }
    values.update(fields)
    return Obj(**values)


def parse(sub: Obj, frequency: int | None = 1) -> object:
    return parse_subscription(sub, customer_id="c", currency="EUR", billing_frequency=frequency)


def test_a_subscription_ending_after_this_cycle_ends_at_period_end() -> None:
    ending = subscription(never_expires=False, number_of_billing_cycles=3)
    later = subscription(never_expires=False, number_of_billing_cycles=12)
    assert ends_at_period_end(ending) and not ends_at_period_end(later)
    assert not ends_at_period_end(subscription())
    parsed = parse(ending)
    assert parsed.status == SubscriptionStatus.active and parsed.cancel_at_period_end
    assert parsed.amount == Money(minor=2000, currency="EUR")
    assert parsed.current_period_end == datetime(2026, 12, 1, tzinfo=UTC)


def test_subscription_statuses_and_intervals() -> None:
    assert parse(subscription(status="Past Due")).status == SubscriptionStatus.past_due
    assert parse(subscription(status="Expired")).status == SubscriptionStatus.canceled
    trial = subscription(trial_period=True, current_billing_cycle=0)
    assert parse(trial).status == SubscriptionStatus.trialing
    assert parse(subscription(), 12).interval == "year"
    assert parse(subscription(), 3).interval == "3 months"
    canceled = subscription(
        status="Canceled",
        status_history=[Obj(status="Canceled", timestamp=datetime(2026, 11, 5, 8, 0))],
    )
    assert parse(canceled).canceled_at == datetime(2026, 11, 5, 8, 0, tzinfo=UTC)


def test_dispute_statuses() -> None:
    dispute = Obj(
        id="d1",
        amount=Decimal("9.00"),
        amount_disputed=Decimal("9.00"),
        currency_iso_code="USD",
        reason="fraud",
        status="open",
        reply_by_date=date(2026, 12, 20),
        transaction_details=Obj(id="abc12345"),
    )
    parsed = parse_dispute(dispute)
    assert (parsed.charge_id, parsed.status) == ("abc12345", DisputeStatus.needs_response)
    assert (
        parse_dispute(Obj(**{**vars(dispute), "status": "accepted"})).status == DisputeStatus.lost
    )


@pytest.mark.parametrize(
    ("code", "ours"),
    [
        ("91506", ErrorCode.not_settled),
        ("91574", ErrorCode.not_settled),
        ("91512", ErrorCode.already_refunded),
        ("91521", ErrorCode.amount_too_large),
        ("91504", ErrorCode.invalid_state),
        ("81905", ErrorCode.invalid_state),
        ("99999", ErrorCode.rejected),
    ],
)
def test_braintree_error_codes_map_to_ours(code: str, ours: ErrorCode) -> None:
    assert error_code(code) == ours
