"""Each gateway's own currency rules, held against the lists the provider publishes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.gateways.paypal.mapping import (
    ZERO_DECIMAL_AT_PAYPAL,
    money_from_paypal,
    paypal_decimals,
)
from bot.gateways.stripe.mapping import THREE_DECIMAL, ZERO_DECIMAL, stripe_exponent
from bot.iso4217 import MINOR_UNITS
from bot.money import Money

DATA = Path(__file__).parent / "data" / "currencies"
STRIPE = json.loads((DATA / "stripe.json").read_text())
PAYPAL = json.loads((DATA / "paypal.json").read_text())


def test_stripe_zero_and_three_decimal_lists_are_stripes_published_ones() -> None:
    two_digits_at_stripe = {"ISK", "UGX"}  # published as zero-decimal, sent with 00
    assert set(STRIPE["zero_decimal"]) - two_digits_at_stripe == ZERO_DECIMAL
    assert set(STRIPE["three_decimal"]) == THREE_DECIMAL


@pytest.mark.parametrize("code", sorted(STRIPE["special_cases"]))
def test_stripes_special_cases_travel_with_two_digits(code: str) -> None:
    assert stripe_exponent(code) == 2


@pytest.mark.parametrize("code", sorted(MINOR_UNITS))
def test_stripe_digits_differ_from_iso_only_where_stripe_says_so(code: str) -> None:
    published = set(STRIPE["zero_decimal"]) | set(STRIPE["three_decimal"])
    if code not in published and code not in STRIPE["special_cases"]:
        assert stripe_exponent(code) == 2, code  # Stripe's default: two decimals


def test_paypal_no_decimal_currencies_are_paypals_published_ones() -> None:
    assert set(PAYPAL["no_decimals"]) == ZERO_DECIMAL_AT_PAYPAL


@pytest.mark.parametrize("code", PAYPAL["currencies"])
def test_paypal_takes_iso_digits_except_its_no_decimal_currencies(code: str) -> None:
    expected = 0 if code in PAYPAL["no_decimals"] else MINOR_UNITS[code]
    assert paypal_decimals(code) == expected
    whole = money_from_paypal({"currency_code": code, "value": "12"})
    assert whole == Money(minor=12 * 10 ** MINOR_UNITS[code], currency=code)
