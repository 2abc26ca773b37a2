"""The billing pages' words in six languages, and dates, amounts and countries in the reader's locale.

The words are the `page` messages of the catalogs (`bot/translations.py`,
`bot/locales/<language>/LC_MESSAGES/chargedesk.po`); the templates ask for them
with `t(…)`, and Jinja2's autoescaping escapes them like any other text. Which
language a page speaks: the one the reader picked (`?lang=`, kept in the
session), else the customer's own locale, else the browser's Accept-Language,
else English.
"""

from __future__ import annotations

from datetime import datetime

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.languages import get_official_languages

from bot.models import Customer
from bot.money import Money
from bot.translations import LANGUAGES, gettext, language_of, messages

__all__ = ["LANGUAGES", "NAMES", "Words", "choose", "table"]
NAMES = {
    "en": "English",
    "de": "Deutsch",
    "fr": "Français",
    "it": "Italiano",
    "pl": "Polski",
    "ja": "日本語",
}
# Where neither the customer nor the browser names a region, amounts and dates look like this.
_DEFAULT_LOCALES = {
    "en": "en_US",
    "de": "de_DE",
    "fr": "fr_FR",
    "it": "it_IT",
    "pl": "pl_PL",
    "ja": "ja_JP",
}


def table(language: str) -> dict[str, str]:
    """All words of one language (English for an unknown one), unfilled."""
    return messages(language_of(language), "page")


def _parse(tag: str | None) -> Locale | None:
    if not tag:
        return None
    try:
        return Locale.parse(tag.strip().replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        return None


def browser_locales(header: str | None) -> list[Locale]:
    """The Accept-Language header's locales, most wanted first (q=0 and `*` dropped)."""
    ranked: list[tuple[float, int, Locale]] = []
    for position, part in enumerate((header or "").split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                continue
        locale = _parse(tag) if tag and tag != "*" else None
        if locale is not None and weight > 0:
            ranked.append((-weight, position, locale))
    return [locale for *_, locale in sorted(ranked, key=lambda r: (r[0], r[1]))]


def customer_locales(customer: Customer | None) -> list[Locale]:
    """The customer's own locale, then their country's official languages."""
    if customer is None:
        return []
    found = [_parse(customer.locale)]
    if customer.country:
        found += [
            _parse(f"{lang}_{customer.country}")
            for lang in get_official_languages(customer.country)
        ]
    return [locale for locale in found if locale is not None]


class Words:
    """One reader's language: `words(key, **values)`, plus dates, amounts and country names."""

    def __init__(self, language: str, locale: str) -> None:
        self.language = language_of(language)
        self.locale = locale

    def __call__(self, key: str, **values: object) -> str:
        return gettext(self.language, "page", key, **values)

    def money(self, amount: Money) -> str:
        return amount.format(self.locale)

    def date(self, value: datetime | None) -> str:
        return format_date(value, format="medium", locale=self.locale) if value else "—"

    def country(self, code: str) -> str:
        return Locale.parse(self.locale).territories.get(code, code)


def choose(
    *, picked: str | None, customer: Customer | None, accept_language: str | None, default: str
) -> Words:
    """The reader's words: picked, else the customer's, else the browser's, else English.

    The locale (for dates and amounts) is the most specific one of that language
    we know: the customer's (en_IE), else the browser's (de_AT), else the deployment's.
    """
    candidates = customer_locales(customer) + browser_locales(accept_language)
    if picked in LANGUAGES:
        language = picked
    else:
        language = next((c.language for c in candidates if c.language in LANGUAGES), "en")
    regional = [c for c in candidates if c.language == language and c.territory]
    fallback = _parse(default)
    if not regional and fallback is not None and fallback.language == language:
        regional = [fallback]
    locale = str(regional[0]) if regional else _DEFAULT_LOCALES[language]
    return Words(language, locale)
