"""Every translated word of the bot, in one format: gettext catalogs read with Babel.

One catalog per language, `bot/locales/<language>/LC_MESSAGES/chargedesk.po`
(one domain, `chargedesk`). A message's `msgctxt` says where it appears:
`document` (printed on invoices, receipts and credit notes), `email` (the
emails carrying them), `verification` (the one-time code email), `page`
(the billing pages) and `panel` (the agent panel). Its `msgid` is a key
(`invoice`, `history_title`); the English catalog holds the source text. `{name}` placeholders are filled in
with `str.format` from the lookup's keyword arguments.

Catalogs are read from the .po files at first use (there is no build step to
compile .mo files), compiled in memory once per language, and served by
`babel.support.Translations`: a message missing (or fuzzy) in a language, or a
language we do not have, gets the English words.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from io import BytesIO

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

DOMAIN = "chargedesk"
LANGUAGES = ("en", "de", "fr", "it", "pl", "ja")
FALLBACK = "en"
CONTEXTS = ("document", "email", "verification", "page", "panel")


def N_(context: str, msgid: str) -> str:
    """Mark a message that is looked up by a computed key; returns the key unchanged.

    The tests find every message the code uses by these marks and the lookups' literals.
    """
    return msgid


def catalog_file(language: str) -> Traversable:
    return resources.files("bot").joinpath("locales", language, "LC_MESSAGES", f"{DOMAIN}.po")


@cache
def catalog(language: str) -> Catalog:
    """The catalog of one of our languages, as written (for the tests and tools)."""
    if language not in LANGUAGES:
        raise LookupError(f"no catalog for {language!r}")
    with catalog_file(language).open("rb") as handle:
        return read_po(handle, locale=language, domain=DOMAIN)


def compile_catalog(source: Catalog) -> Translations:
    """What a .mo file of `source` would serve (fuzzy and empty messages left out)."""
    buffer = BytesIO()
    write_mo(buffer, source, use_fuzzy=False)
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


@cache
def translations(language: str) -> NullTranslations:
    """The messages of `language` with English behind them; English for a language not ours."""
    english = compile_catalog(catalog(FALLBACK))
    if language == FALLBACK or language not in LANGUAGES:
        return english
    served = compile_catalog(catalog(language))
    served.add_fallback(english)
    return served


def gettext(language: str, context: str, msgid: str, /, **values: object) -> str:
    """The words of `msgid` in `language`, placeholders filled in from `values`."""
    text = translations(language).pgettext(context, msgid)
    return text.format(**values) if values else text


def ngettext(
    language: str, context: str, singular: str, plural: str, n: int, /, **values: object
) -> str:
    """The form of a message for the count `n` (which `{n}` names), by the language's rules."""
    text = translations(language).npgettext(context, singular, plural, n)
    return text.format(n=n, **values)


def messages(language: str, context: str) -> dict[str, str]:
    """Every message of `context` in `language` (English where it has none), unfilled."""
    keys = [m.id for m in catalog(FALLBACK) if m.id and m.context == context]
    return {key: gettext(language, context, key) for key in keys if isinstance(key, str)}


def language_of(language: str | None) -> str:
    """`language` if it is one of ours, else English."""
    return language if language in LANGUAGES else FALLBACK
