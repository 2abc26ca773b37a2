"""The catalogs (bot/locales): whole in six languages, the same placeholders, used by the code.

What the code asks for is found from its lookups: in bot/'s Python, calls with a literal key
(either side of `a if c else b` too) and `N_` marks of keys looked up by a computed name; in
the billing pages' templates, `t("key")` found by Babel's Jinja2 extractor.
"""

from __future__ import annotations

import ast
from pathlib import Path
from string import Formatter
from types import SimpleNamespace

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract

import bot
from bot import translations
from bot.documents.config import Entity
from bot.documents.labels import tax_name, text
from bot.portal import i18n, pages
from bot.translations import CONTEXTS, FALLBACK, LANGUAGES, catalog, gettext

BOT = Path(bot.__file__).parent

# Lookups that name their context, anywhere in bot/: (context argument, key argument), 0-based.
EXPLICIT = {"gettext": (1, 2), "ngettext": (1, 2), "N_": (0, 1)}
# Lookups bound to one context, in the files that use them: the key's argument.
BOUND = {
    "document": (["documents/render.py", "documents/labels.py"], {"label": 0, "text": 1}),
    "page": (["portal/*.py"], {"words": 0, "message": 3, "TaxIdProblem": 1}),
    "panel": (["panel/*.py"], {"say": 0}),
}


def served(language: str) -> dict[tuple[str, str], Message]:
    """(context, msgid) -> message of one catalog, obsolete entries left out."""
    return {(m.context, m.id): m for m in catalog(language) if m.id}


def literals(node: ast.expr | None) -> list[str]:
    """The strings an argument can be: a literal, or either side of `a if c else b`."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return literals(node.body) + literals(node.orelse)
    return []


def lookups(path: Path, keywords: dict[str, int | tuple[int, int]]):
    """(context or None, key) of every call to one of `keywords` with literal arguments."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if name not in keywords:
            continue
        where = keywords[name]
        context_at, key_at = where if isinstance(where, tuple) else (None, where)
        args: list[ast.expr | None] = [*node.args, None, None, None]
        contexts = literals(args[context_at]) if context_at is not None else [None]
        for context in contexts:
            for key in literals(args[key_at]):
                yield context, key


def used_by_the_code() -> set[tuple[str, str]]:
    used = set()
    for path in BOT.rglob("*.py"):
        used |= set(lookups(path, EXPLICIT))
    for context, (patterns, keywords) in BOUND.items():
        for pattern in patterns:
            for path in BOT.glob(pattern):
                used |= {(context, key) for _, key in lookups(path, keywords)}
    # The billing pages' templates, with Babel's Jinja2 extractor: t("key").
    for path in (BOT / "portal" / "templates").glob("*.html"):
        with path.open("rb") as handle:
            found = extract("jinja2.ext:babel_extract", handle, keywords={"t": (1,)})
            used |= {("page", msgid) for _, msgid, _, _ in found}
    # The agent panel's templates, the same way.
    for path in (BOT / "panel" / "templates").glob("*.html"):
        with path.open("rb") as handle:
            found = extract("jinja2.ext:babel_extract", handle, keywords={"t": (1,)})
            used |= {("panel", msgid) for _, msgid, _, _ in found}
    return used


def fields(text: str | tuple[str, ...]) -> set[str]:
    forms = text if isinstance(text, tuple) else (text,)
    return {name for form in forms for _, name, _, _ in Formatter().parse(form) if name}


def test_every_message_exists_in_all_six_languages():
    english = served(FALLBACK)
    assert {context for context, _ in english} == set(CONTEXTS)
    for language in LANGUAGES:
        assert not catalog(language).fuzzy, language
        messages = served(language)
        assert set(messages) == set(english), language
        for key, message in messages.items():
            forms = message.string if isinstance(message.string, tuple) else (message.string,)
            assert all(form.strip() for form in forms), (language, key)
            assert not message.fuzzy, (language, key)


def test_placeholders_match_in_every_language():
    english = served(FALLBACK)
    for language in LANGUAGES:
        for key, message in served(language).items():
            names = fields(english[key].string)
            assert fields(message.string) == names, (language, key)
            # Filled in the way the code fills it in: no stray brace, nothing missing.
            gettext(language, key[0], key[1], **dict.fromkeys(names, "x"))


def test_every_message_the_code_uses_is_in_the_catalogs():
    used = used_by_the_code()
    assert {context for context, _ in used} == set(CONTEXTS)
    assert used - set(served(FALLBACK)) == set()


def test_no_catalog_entry_is_unused():
    # Words no code prints today are kept as obsolete entries (#~), which are never served.
    assert set(served(FALLBACK)) - used_by_the_code() == set()
    assert catalog("de").obsolete and not any(
        gettext("de", "document", key) != key for key, _ in catalog("de").obsolete
    )


def test_unknown_language_falls_back_to_english():
    assert gettext("xx", "document", "invoice") == "Invoice"
    assert text("es", "page", n="1", total="2") == "Page 1 of 2"
    assert tax_name("pt", "VAT") == "VAT" and tax_name("de", "VAT") == "USt."
    assert i18n.Words("zz", "en_US")("history_title") == "Your billing"
    assert gettext("de", "verification", "subject") == "Ihr Bestätigungscode"


def test_a_fuzzy_or_empty_translation_is_not_served():
    draft = Catalog(locale="de", domain=translations.DOMAIN)
    draft.add("invoice", "Rechnung?", context="document", flags=["fuzzy"])
    draft.add("receipt", "", context="document")
    draft.add("credit_note", "Rechnungskorrektur", context="document")
    served_de = translations.compile_catalog(draft)
    assert served_de.pgettext("document", "invoice") == "invoice"
    assert served_de.pgettext("document", "receipt") == "receipt"
    assert served_de.pgettext("document", "credit_note") == "Rechnungskorrektur"


def test_plural_forms_follow_the_languages_rules():
    draft = Catalog(locale="pl", domain=translations.DOMAIN)
    draft.add(("days", "days"), ("{n} dzień", "{n} dni", "{n} dni"), context="page")
    served_pl = translations.compile_catalog(draft)
    assert served_pl.npgettext("page", "days", "days", 1).format(n=1) == "1 dzień"
    assert served_pl.npgettext("page", "days", "days", 5).format(n=5) == "5 dni"


def test_catalogs_are_read_once_per_language():
    translations.translations.cache_clear()
    translations.catalog.cache_clear()
    for _ in range(3):
        gettext("fr", "page", "billing")
    assert translations.catalog.cache_info().misses == 2  # French and English behind it


def test_a_translation_with_markup_is_escaped_on_the_page(monkeypatch: pytest.MonkeyPatch):
    hostile = Catalog(locale="de", domain=translations.DOMAIN)
    hostile.add("not_found_title", '<script>alert("x")</script> & Co', context="page")
    hostile.add("skip", "<b>Zum Inhalt</b>", context="page")
    german = translations.compile_catalog(hostile)
    monkeypatch.setattr(translations, "translations", lambda language: german)
    entity = Entity(legal_name="Seller GmbH")
    services = SimpleNamespace(branding=SimpleNamespace(entities={"e": entity}, default_entity="e"))
    request = SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(services=services)))
    words = i18n.Words("de", "de_DE")
    page = pages.message(request, words, 404, "not_found_title", words("skip")).body.decode()
    assert "<script>" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Co" in page
    assert "&lt;b&gt;Zum Inhalt&lt;/b&gt;" in page
