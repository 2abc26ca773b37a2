"""Tax treatment rules and exact per-line arithmetic."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot.documents.config import TaxConfig
from bot.documents.model import TaxTreatment
from bot.documents.tax import allocate, line, summarize, treatment
from bot.tax_ids import eu_vat_country, normalize_tax_id, tax_id_type, valid_tax_id

CONFIG = TaxConfig(
    rates={"DE": Decimal(19), "FR": Decimal(20), "PL": Decimal(23), "AU": Decimal(10)},
)
VALID_FR = "FR40303265045"
VALID_PL = "PL5260250274"


def rule(country: str | None, tax_id: str | None = None, exempt: bool = False):  # type: ignore[no-untyped-def]
    return treatment(
        CONFIG, seller_country="DE", buyer_country=country, buyer_tax_id=tax_id, exempt=exempt
    )


def test_domestic_sale_is_taxed_at_the_sellers_rate_even_to_a_business():
    applied = rule("DE", "DE136695976")
    assert (applied.kind, applied.rate, applied.name) == (TaxTreatment.standard, 19, "VAT")


def test_eu_consumer_abroad_pays_their_own_countrys_rate():
    applied = rule("FR")
    assert (applied.kind, applied.rate) == (TaxTreatment.standard, 20)


def test_eu_business_abroad_with_a_valid_vat_id_gets_the_reverse_charge():
    applied = rule("PL", VALID_PL)
    assert (applied.kind, applied.rate) == (TaxTreatment.reverse_charge, 0)


def test_a_vat_id_with_a_wrong_check_digit_is_no_reverse_charge():
    applied = rule("PL", "PL5260250275")
    assert (applied.kind, applied.rate) == (TaxTreatment.standard, 23)


def test_exempt_customer_pays_no_tax_wherever_they_are():
    assert rule("DE", exempt=True).kind == TaxTreatment.exempt
    assert rule("DE", exempt=True).rate == 0


def test_country_without_a_configured_rate_is_outside_scope():
    applied = rule("US")
    assert (applied.kind, applied.rate) == (TaxTreatment.outside_scope, 0)


def test_australia_is_charged_gst_under_its_name():
    applied = rule("AU")
    assert (applied.kind, applied.rate, applied.name) == (TaxTreatment.standard, 10, "GST")


def test_unknown_country_is_taxed_as_a_domestic_sale():
    assert rule(None).rate == 19


@pytest.mark.parametrize(
    ("gross", "rate", "net", "tax"),
    [
        (11900, "19", 10000, 1900),
        (100, "19", 84, 16),  # 15.966... rounds half up to 16
        (5500, "10", 5000, 500),  # JPY has no minor unit: the same integers
        (12500, "25.5", 9960, 2540),  # 2540.2390... -> 2540
        (1, "23", 1, 0),
    ],
)
def test_tax_is_the_part_of_the_gross_at_the_rate_rounded_half_up(gross, rate, net, tax):
    item = line("x", gross, Decimal(rate))
    assert (item.net, item.tax, item.gross) == (net, tax, gross)
    assert item.net + item.tax == item.gross


def test_tax_lines_are_sums_of_rounded_lines_so_the_document_adds_up():
    lines = [line("a", 100, Decimal(19)), line("b", 100, Decimal(19)), line("c", 107, Decimal(7))]
    (nineteen, seven) = summarize(lines)
    assert (nineteen.rate, nineteen.net, nineteen.tax) == (19, 168, 32)
    assert (seven.rate, seven.net, seven.tax) == (7, 100, 7)
    assert sum(t.net + t.tax for t in (nineteen, seven)) == 307


def test_allocation_is_exact_and_proportional():
    assert allocate(1000, [108000, 36000]) == [750, 250]
    assert allocate(100, [1, 1, 1]) == [34, 33, 33]
    assert sum(allocate(99999, [7, 13, 80])) == 99999


@pytest.mark.parametrize(
    ("number", "country", "kind"),
    [
        ("de 136 695 976", None, "eu_vat"),
        ("EL094259216", None, "eu_vat"),
        ("GB980780684", None, "gb_vat"),
        ("51 824 753 556", "AU", "au_abn"),
        ("PL5260250275", None, None),
        ("12345", "US", None),
    ],
)
def test_tax_ids_are_typed_like_stripe_or_refused(number, country, kind):
    assert tax_id_type(number, country) == kind
    assert valid_tax_id(number, country) is (kind is not None)


def test_greek_vat_ids_belong_to_greece_and_are_normalized():
    assert eu_vat_country("EL094259216") == "GR"
    assert normalize_tax_id("fr 40-303 265 045") == VALID_FR
