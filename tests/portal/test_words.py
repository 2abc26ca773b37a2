"""The pages' words in every language, the language a reader gets, and the tax ID form's check."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.documents.config import Entity
from bot.models import Address, Customer
from bot.money import Money
from bot.portal import i18n, tax_form
from bot.portal.pages import contrast, stylesheet

PLACEHOLDER = re.compile(r"\{(\w+)\}")
TEMPLATES = Path(i18n.__file__).parent / "templates"


@pytest.mark.parametrize("language", [lang for lang in i18n.LANGUAGES if lang != "en"])
def test_every_language_has_every_word_with_the_same_placeholders(language):
    english, other = i18n.table("en"), i18n.table(language)
    assert set(other) == set(english)
    for key, text in english.items():
        assert set(PLACEHOLDER.findall(other[key])) == set(PLACEHOLDER.findall(text)), key
        assert other[key].strip(), key


def test_every_word_the_pages_ask_for_exists_and_every_word_is_used():
    sources = [p.read_text() for p in TEMPLATES.glob("*.html")]
    sources += [p.read_text() for p in Path(i18n.__file__).parent.glob("*.py")]
    asked, quoted = set(), set()
    for source in sources:
        asked |= set(re.findall(r"""(?:\bt|words)\(\s*["']([a-z_]+)["']\s*[,)]""", source))
        quoted |= set(re.findall(r"""["']([a-z_]+)["']""", source))
    words = set(i18n.table("en"))
    assert asked - words == set()
    # Statuses, reasons, kinds and code errors are looked up by a computed key.
    computed = re.compile(r"^(charge|sub|invoice|reason|kind|err)_")
    assert {w for w in words - quoted if not computed.match(w)} == set()


def customer(locale: str | None = None, country: str | None = None) -> Customer:
    address = Address(country=country) if country else None
    return Customer(gateway="ledger", id="cus_x", locale=locale, address=address)


@pytest.mark.parametrize(
    ("picked", "who", "accept", "language", "locale"),
    [
        (None, None, None, "en", "en_US"),
        (None, None, "de-AT,de;q=0.9,en;q=0.8", "de", "de_AT"),
        (None, None, "es-ES,fr;q=0.5", "fr", "fr_FR"),  # Spanish: not ours, the next one is
        (None, None, "en;q=0.1, pl;q=0.9", "pl", "pl_PL"),
        (None, customer("en_IE"), "de", "en", "en_IE"),  # the customer's locale wins
        (None, customer(None, "JP"), None, "ja", "ja_JP"),  # else their country's language
        (None, customer(None, "KW"), "it-IT", "it", "it_IT"),  # Arabic is not ours
        ("de", customer("en_IE"), None, "de", "de_DE"),  # a choice wins over everything
        ("xx", None, "fr-CA", "fr", "fr_CA"),  # an unknown choice counts for nothing
    ],
)
def test_which_language_a_reader_gets(picked, who, accept, language, locale):
    words = i18n.choose(picked=picked, customer=who, accept_language=accept, default="en_US")
    assert (words.language, words.locale) == (language, locale)


def test_dates_amounts_and_countries_in_the_readers_locale():
    when = datetime(2026, 3, 12, 9, 30, tzinfo=UTC)
    de = i18n.Words("de", "de_DE")
    ja = i18n.Words("ja", "ja_JP")
    assert de.date(when) == "12.03.2026" and de.money(Money.of(12050, "EUR")) == "120,50\xa0€"
    assert ja.date(when) == "2026/03/12" and ja.country("DE") == "ドイツ"
    assert de.date(None) == "—"
    assert de("signed_in_as", email="a@b.example") == "Angemeldet als a@b.example"


@pytest.mark.parametrize(
    ("country", "typed", "expected"),
    [
        ("DE", "DE 136 695 976", ("eu_vat", "DE136695976")),
        ("DE", "136.695.976", ("eu_vat", "DE136695976")),  # the prefix is added
        ("PL", "526-025-02-74", ("eu_vat", "PL5260250274")),
        ("GR", "094259216", ("eu_vat", "EL094259216")),  # Greece's VAT prefix is EL
        ("GB", "980 7806 84", ("gb_vat", "GB980780684")),
        ("AU", "ABN 51 824 753 556", ("au_abn", "51824753556")),
    ],
)
def test_a_valid_tax_id_is_normalized(country, typed, expected):
    assert tax_form.check(country, typed) == expected


@pytest.mark.parametrize(
    ("country", "typed", "field", "key", "countries"),
    [
        ("DE", "DE136695975", "number", "err_tax_invalid", {"country": "DE"}),
        ("DE", "PL5260250274", "number", "err_tax_country", {"other": "PL", "country": "DE"}),
        ("FR", "EL094259216", "number", "err_tax_country", {"other": "GR", "country": "FR"}),
        ("DE", "XX123", "number", "err_tax_invalid", {"country": "DE"}),
        ("DE", " . ", "number", "err_tax_empty", {}),
        ("US", "12-3456789", "country", "err_country", {}),
        ("", "DE136695976", "country", "err_country", {}),
    ],
)
def test_an_invalid_tax_id_names_its_field_and_why(country, typed, field, key, countries):
    with pytest.raises(tax_form.TaxIdProblem) as caught:
        tax_form.check(country, typed)
    assert (caught.value.field, caught.value.key, caught.value.countries) == (field, key, countries)


def test_brand_colours_are_used_only_where_text_stays_readable():
    assert contrast("#FFFFFF", "#000000") == pytest.approx(21)
    readable = stylesheet(Entity(primary_colour="#1F3A5F", accent_colour="#E8EEF5"))
    assert "--brand: #1F3A5F;" in readable and "--brand-soft: #E8EEF5;" in readable
    pale = stylesheet(Entity(primary_colour="#FFD700", accent_colour="#333333"))
    assert "--brand: #1F3A5F;" in pale and "--brand-soft: #E8EEF5;" in pale
