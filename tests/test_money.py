"""Money is exact: integer minor units, the exponent from ISO 4217, never a float."""

from __future__ import annotations

import pytest

from bot.money import Money, MoneyError, exponent, parse_money


@pytest.mark.parametrize(
    ("currency", "digits"),
    [
        ("EUR", 2),
        ("USD", 2),
        ("JPY", 0),
        ("KRW", 0),
        ("KWD", 3),
        ("BHD", 3),
        ("HUF", 2),
        ("IQD", 3),
    ],
)
def test_exponent_comes_from_iso_4217(currency, digits):
    assert exponent(currency) == digits


@pytest.mark.parametrize(
    ("text", "currency", "minor", "code"),
    [
        ("12.50", "EUR", 1250, "EUR"),
        ("12,50", "EUR", 1250, "EUR"),
        ("12.50 EUR", None, 1250, "EUR"),
        ("EUR 12.50", None, 1250, "EUR"),
        ("12.50eur", None, 1250, "EUR"),
        ("€12.50", None, 1250, "EUR"),
        ("12,50 €", None, 1250, "EUR"),
        ("¥500", "JPY", 500, "JPY"),
        ("500 JPY", None, 500, "JPY"),
        ("1,000 JPY", None, 1000, "JPY"),
        ("1,234.56", "USD", 123456, "USD"),
        ("1.234,56", "EUR", 123456, "EUR"),
        ("1,000,000", "USD", 100000000, "USD"),
        ("$20", "CAD", 2000, "CAD"),
        ("1.250", "KWD", 1250, "KWD"),
        ("0.5", "EUR", 50, "EUR"),
        ("7", "EUR", 700, "EUR"),
    ],
)
def test_parse_accepts_what_people_type(text, currency, minor, code):
    assert parse_money(text, currency) == Money(minor=minor, currency=code)


@pytest.mark.parametrize(
    ("text", "currency", "words"),
    [
        ("500.5", "JPY", "JPY has no minor unit"),
        ("500.5 JPY", None, "JPY has no minor unit"),
        ("12.505", "EUR", None),  # ambiguous: three digits after a single mark
        ("12.5055", "EUR", "EUR has 2 decimals at most"),
        ("-5", "EUR", "negative"),
        ("0", "EUR", "greater than zero"),
        ("0.00", "EUR", "greater than zero"),
        ("abc", "EUR", "malformed"),
        ("12..5", "EUR", "malformed"),
        ("1e3", "EUR", "malformed"),
        ("99999999999999", "EUR", "too large"),
        ("12.50 USD", "EUR", "currency mismatch"),
        ("€12", "USD", "currency mismatch"),
        ("12.50", None, "no currency"),
        ("12 XYZ", None, "unknown currency"),
        ("$5", None, "could be USD"),
    ],
)
def test_parse_refuses_with_a_clear_message(text, currency, words):
    with pytest.raises(MoneyError) as info:
        parse_money(text, currency)
    if words:
        assert words in str(info.value)


def test_money_is_integer_minor_units_and_formats_per_locale():
    m = Money(minor=123456, currency="EUR")
    assert m.plain() == "1234.56 EUR"
    assert m.format("de_DE") == "1.234,56\xa0€"
    assert Money(minor=500, currency="JPY").format("ja_JP") == "￥500"
    assert Money(minor=1250, currency="KWD").plain() == "1.250 KWD"
    assert isinstance(m.minor, int)


def test_arithmetic_refuses_mixed_currencies():
    with pytest.raises(MoneyError):
        Money(minor=1, currency="EUR") + Money(minor=1, currency="USD")
    assert Money(minor=5, currency="EUR") + Money(minor=7, currency="EUR") == Money(
        minor=12, currency="EUR"
    )


def test_unknown_currency_is_refused():
    with pytest.raises(ValueError):
        Money(minor=1, currency="ABC")
