"""Exact money: integer minor units plus an ISO 4217 currency.

The number of minor-unit digits comes from ISO 4217 itself (`bot/iso4217.py`:
JPY 0, EUR 2, KWD 3, HUF 2), never from a display library, and no float is
ever involved. Babel only writes amounts in a locale, with those ISO digits.
"""

from __future__ import annotations

import copy
import re
import unicodedata
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Self

from babel import Locale
from babel.numbers import NumberPattern
from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.iso4217 import DIGITS

# Larger than any single card payment any gateway accepts (Stripe caps at
# 99,999,999 minor units); anything above is a typo, not a refund.
MAX_MINOR_DIGITS = 12

# A symbol names a family of currencies; the charge being acted on picks one.
_SYMBOLS: dict[str, tuple[str, ...]] = {
    "€": ("EUR",),
    "£": ("GBP", "EGP", "GIP", "FKP", "SHP"),
    "¥": ("JPY", "CNY"),
    "₩": ("KRW",),
    "₹": ("INR",),
    "$": ("USD", "CAD", "AUD", "NZD", "SGD", "HKD", "MXN"),
    "CHF": ("CHF",),
}
_AMOUNT = re.compile(r"^[0-9][0-9.,]*$")
# Longer than any amount written by hand (`1,000,000,000.00 EUR` is 20): refused before parsing.
MAX_AMOUNT_CHARS = 40
# Decimal and group marks of other scripts, for the hint that says how to type an amount.
_MARKS = {"\u066b": ".", "\u066c": ",", "\uff0e": ".", "\uff0c": ","}


def _echo(text: str) -> str:
    """What was typed, quoted for an error: clipped, so an error never repeats a wall of input."""
    return repr(text if len(text) <= MAX_AMOUNT_CHARS else text[:MAX_AMOUNT_CHARS] + "…")


class MoneyError(ValueError):
    """An amount or currency that cannot be turned into exact money."""


def exponent(currency: str) -> int:
    """Minor-unit digits of an ISO 4217 currency (JPY 0, EUR 2, KWD 3, HUF 2)."""
    return DIGITS[normalize_currency(currency)]


@lru_cache(maxsize=1024)
def normalize_currency(code: str) -> str:
    """Upper-case an ISO 4217 code, refusing anything that is not a currency of payment."""
    upper = code.strip().upper()
    if upper not in DIGITS:
        raise MoneyError(f"unknown currency {_echo(code)}: use an ISO 4217 code such as EUR or USD")
    return upper


@lru_cache(maxsize=512)
def _currency_pattern(locale: str, currency: str) -> tuple[NumberPattern, Locale]:
    """The locale's currency pattern with exactly the ISO digits of `currency`.

    Babel would otherwise round to CLDR's display digits: HUF 1,999.50 shown
    as "2,000" on an invoice, and differently after a Babel upgrade.
    """
    where = Locale.parse(locale)
    pattern = copy.copy(where.currency_formats["standard"])
    digits = exponent(currency)
    pattern.frac_prec = (digits, digits)
    return pattern, where


Currency = Annotated[str, Field(min_length=3, max_length=3)]


class Money(BaseModel):
    """An amount in integer minor units of one currency."""

    model_config = ConfigDict(frozen=True)

    minor: int
    currency: Currency

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        return normalize_currency(value)

    @classmethod
    def of(cls, minor: int, currency: str) -> Self:
        return cls(minor=minor, currency=currency)

    @property
    def decimal(self) -> Decimal:
        """The amount as an exact Decimal in major units."""
        return Decimal(self.minor).scaleb(-exponent(self.currency))

    def plain(self) -> str:
        """Machine-friendly text: `12.50 EUR`, `500 JPY`, `1.250 KWD`."""
        digits = exponent(self.currency)
        return f"{self.decimal:.{digits}f} {self.currency}"

    def format(self, locale: str = "en_US") -> str:
        """Human text in a locale, with the ISO digits: `€12.50`, `12,50 €`, `¥500`, `HUF 1,999.50`."""
        pattern, where = _currency_pattern(locale, self.currency)
        return pattern.apply(self.decimal, where, currency=self.currency, currency_digits=False)

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise MoneyError(f"currency mismatch: {self.currency} and {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(minor=self.minor + other.minor, currency=self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(minor=self.minor - other.minor, currency=self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.minor < other.minor

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.minor <= other.minor

    def __str__(self) -> str:
        return self.plain()


def zero(currency: str) -> Money:
    return Money(minor=0, currency=currency)


def parse_money(text: str, currency: str | None = None) -> Money:
    """Parse what a person types: `12.50`, `12,50`, `12.50 EUR`, `EUR 12.50`, `€12.50`, `¥500`.

    `currency` is the currency expected (the charge's); a different one in the
    text is a mismatch. Separators: with both `.` and `,` the last one is the
    decimal mark; one mark repeated is grouping (`1,000,000`); a single mark
    followed by exactly three digits is refused as ambiguous unless the
    currency has no minor unit or three of them.
    """
    raw = text.strip()
    if not raw:
        raise MoneyError("amount is empty")
    if len(raw) > MAX_AMOUNT_CHARS:
        raise MoneyError(f"amount {_echo(raw)} is too long: write it like 12.50 or 12.50 EUR")
    if any(char.isdigit() and not char.isascii() for char in raw):
        # `١٢` or `１２` would parse as 12: refused, so nobody refunds an amount they misread.
        typed = "".join(str(unicodedata.digit(c)) if c.isdigit() else _MARKS.get(c, c) for c in raw)
        raise MoneyError(
            f"amount {_echo(raw)} uses other digits than 0-9: type it as {_echo(typed)}"
        )
    if raw.startswith("-") or raw.startswith("−"):
        raise MoneyError(f"amount {_echo(text)} is negative: amounts are always positive")
    number, named = _split_currency(raw)
    code = _resolve_currency(named, currency, text)
    minor = _to_minor(number, code, text)
    if minor <= 0:
        raise MoneyError(f"amount {_echo(text)} must be greater than zero")
    return Money(minor=minor, currency=code)


def _split_currency(raw: str) -> tuple[str, tuple[str, ...]]:
    for symbol, codes in _SYMBOLS.items():
        if raw.startswith(symbol) or raw.endswith(symbol):
            rest = raw.removeprefix(symbol) if raw.startswith(symbol) else raw.removesuffix(symbol)
            return rest.strip(), codes
    parts = raw.split()
    if len(parts) == 2:
        code_first = parts[0].isalpha()
        code, number = (parts[0], parts[1]) if code_first else (parts[1], parts[0])
        return number, (normalize_currency(code),)
    if len(parts) == 1:
        match = re.fullmatch(r"([A-Za-z]{3})?([0-9.,\-]+)([A-Za-z]{3})?", raw)
        if match and (match.group(1) or match.group(3)):
            return match.group(2), (normalize_currency(match.group(1) or match.group(3)),)
        return raw, ()
    raise MoneyError(f"malformed amount {_echo(raw)}: write it like 12.50 or 12.50 EUR")


def _resolve_currency(named: tuple[str, ...], expected: str | None, text: str) -> str:
    if expected is not None:
        expected = normalize_currency(expected)
        if named and expected not in named:
            raise MoneyError(
                f"currency mismatch: {_echo(text)} is in {named[0]} but the charge is in {expected}"
            )
        return expected
    if len(named) == 1:
        return named[0]
    if named:
        raise MoneyError(f"{_echo(text)} could be {', '.join(named)}: add the currency code")
    raise MoneyError(f"amount {_echo(text)} has no currency: add one, e.g. {text.strip()} EUR")


def _to_minor(number: str, currency: str, text: str) -> int:
    if not _AMOUNT.match(number):
        raise MoneyError(f"malformed amount {_echo(text)}: write it like 12.50 or 12.50 {currency}")
    digits = exponent(currency)
    whole, fraction = _split_decimal(number, digits, text)
    if len(fraction) > digits:
        if digits == 0:
            raise MoneyError(f"{currency} has no minor unit: {_echo(text)} cannot have decimals")
        raise MoneyError(
            f"{currency} has {digits} decimals at most: {_echo(text)} has {len(fraction)}"
        )
    if len(whole.lstrip("0")) + digits > MAX_MINOR_DIGITS:
        raise MoneyError(f"amount {_echo(text)} is too large")
    return int(whole or "0") * 10**digits + int(fraction.ljust(digits, "0") or "0")


def _split_decimal(number: str, digits: int, text: str) -> tuple[str, str]:
    marks = [c for c in number if c in ".,"]
    if not marks:
        return number, ""
    if len(set(marks)) == 2:
        decimal_mark = number[max(number.rfind("."), number.rfind(","))]
        whole, fraction = number.rsplit(decimal_mark, 1)
        return _ungroup(whole, text), fraction
    mark = marks[0]
    if len(marks) > 1:
        return _ungroup(number, text), ""
    whole, fraction = number.split(mark)
    if len(fraction) == 3 and digits != 3:
        if digits == 0:
            return whole + fraction, ""
        raise MoneyError(
            f"ambiguous amount {_echo(text)}: write {whole}{fraction} or {whole}.{fraction[:digits]}"
        )
    if not whole or not fraction:
        raise MoneyError(f"malformed amount {_echo(text)}: write it like 12.50")
    return whole, fraction


def _ungroup(number: str, text: str) -> str:
    groups = re.split(r"[.,]", number)
    if not groups[0] or len(groups[0]) > 3 or any(len(g) != 3 for g in groups[1:]):
        raise MoneyError(f"malformed amount {_echo(text)}: digit groups must have three digits")
    return "".join(groups)
