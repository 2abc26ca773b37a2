"""Minor-unit digits come from ISO 4217 itself, the same whatever Babel release is installed."""

from __future__ import annotations

from decimal import Decimal

import babel.core
import iso4217
import pytest

from bot.iso4217 import MINOR_UNITS, PUBLISHED, WITHDRAWN
from bot.money import Money, MoneyError, exponent, normalize_currency, parse_money

# Where CLDR (Babel) display digits and ISO 4217 minor units disagree, in one Babel
# release or another: the currencies a display-digit table would misread.
CLDR_DIFFERS = ["HUF", "COP", "IDR", "RSD", "IQD", "AFN", "ALL", "IRR", "KPW", "LAK", "LBP",
                "MMK", "SOS", "SYP", "YER", "MGA"]  # fmt: skip


def test_every_active_iso_code_has_the_digits_six_publishes() -> None:
    published = {c.code: c.exponent for c in iso4217.Currency if c.exponent is not None}
    assert published == MINOR_UNITS, (
        f"bot/iso4217.py ({PUBLISHED}) differs from the iso4217 package "
        f"({iso4217.__published__}): copy the new list and say so in the README"
    )


@pytest.mark.parametrize("code", sorted(MINOR_UNITS))
def test_every_iso_code_converts_exactly_both_ways(code: str) -> None:
    digits = MINOR_UNITS[code]
    text = "1" + ("." + "5" * digits if digits else "") + f" {code}"
    money = parse_money(text)
    assert money.minor == int("1" + "5" * digits)
    assert money.plain() == text
    assert money.decimal == Decimal(text.split()[0])


def test_codes_without_minor_units_are_not_currencies_of_payment() -> None:
    for code in ("XAU", "XTS", "XXX", "XDR"):
        with pytest.raises(MoneyError, match="unknown currency"):
            normalize_currency(code)


def test_iqd_1_250_means_one_dinar_and_a_quarter() -> None:
    dinar = parse_money("1.250 IQD")
    assert dinar == Money(minor=1250, currency="IQD")
    assert dinar.decimal == Decimal("1.250")
    assert dinar.format() == "IQD1.250"


@pytest.fixture
def babel_with_other_digits(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Babel release whose CLDR data gives every disagreeing currency other digits."""
    fractions = dict(babel.core.get_global("currency_fractions"))
    for code in CLDR_DIFFERS:
        fractions[code] = (7, 0, 7, 0)
    monkeypatch.setitem(babel.core._global_data, "currency_fractions", fractions)
    from babel.numbers import get_currency_precision

    assert get_currency_precision("HUF") == 7  # the fixture did change what Babel says


@pytest.mark.usefixtures("babel_with_other_digits")
@pytest.mark.parametrize("code", CLDR_DIFFERS)
def test_money_holds_whatever_babel_release_is_installed(code: str) -> None:
    assert exponent(code) == MINOR_UNITS[code]
    minor = 199950 * 10 ** max(MINOR_UNITS[code] - 2, 0)
    money = Money(minor=minor, currency=code)
    assert money.plain() == f"{Decimal(minor).scaleb(-MINOR_UNITS[code])} {code}"


@pytest.mark.usefixtures("babel_with_other_digits")
def test_amounts_are_written_with_iso_digits_in_every_locale() -> None:
    forint = Money(minor=199950, currency="HUF")
    assert forint.format("en_US") == "HUF1,999.50"
    assert forint.format("hu_HU") == "1\xa0999,50\xa0Ft"
    assert forint.format("de_DE") == "1.999,50\xa0HUF"
    assert Money(minor=500, currency="JPY").format("ja_JP") == "￥500"


def test_withdrawn_codes_are_read_with_list_three_digits_and_are_not_active() -> None:
    active = {c.code for c in iso4217.Currency}
    assert not set(WITHDRAWN) & active, "a withdrawn code is active again: move it"
    kuna = parse_money("120.50 HRK")  # a 2022 charge in Croatian kuna
    assert kuna == Money(minor=12050, currency="HRK")
    assert exponent("SLL") == 2  # CLDR says 0
