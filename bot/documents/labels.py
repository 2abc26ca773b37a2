"""Every word printed on a document, from the `document` messages of the catalogs.

The words themselves are in `bot/locales/<language>/LC_MESSAGES/chargedesk.po`
(`bot/translations.py`). Dates, amounts and percentages are not: the renderer
formats them with Babel in the document's locale. `{fields}` are filled in by `text`.
"""

from __future__ import annotations

from functools import cache

from bot.translations import FALLBACK, LANGUAGES, N_, gettext, messages

__all__ = ["FALLBACK", "LANGUAGES", "all_labels", "tax_name", "text"]

# Taxes whose name is translated on documents (VAT is USt. in German); any other name stays.
_TAX_NAMES = (N_("document", "VAT"), N_("document", "GST"))


def text(language: str, key: str, **fields: str) -> str:
    """The words for `key` in `language` (English if the language is not one of ours), filled in."""
    return gettext(language, "document", key, **fields)


def tax_name(language: str, name: str) -> str:
    """What a tax is called in `language`: VAT is USt. in German; names we do not know stay."""
    return text(language, name) if name in _TAX_NAMES else name


@cache
def all_labels(language: str) -> tuple[str, ...]:
    """Every label of `language`, unfilled (to know which fonts a document needs)."""
    return tuple(messages(language, "document").values())
