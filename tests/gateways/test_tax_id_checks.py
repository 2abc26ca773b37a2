"""Tax IDs are typed like Stripe and checked (python-stdnum) before any gateway is asked."""

from __future__ import annotations

import pytest

from bot.gateways.base import ErrorCode, GatewayError
from bot.tax_ids import InvalidTaxId, checked_tax_id, tax_id_country


@pytest.mark.parametrize(
    ("text", "country", "checked"),
    [
        ("eu_vat:DE136695976", None, ("eu_vat", "DE136695976")),
        ("de 136 695 976", None, ("eu_vat", "DE136695976")),
        ("fr40303265045", "DE", ("eu_vat", "FR40303265045")),  # another state's number
        ("GR094259216", None, ("eu_vat", "EL094259216")),  # Greece writes EL
        ("094259216", "GR", ("eu_vat", "EL094259216")),
        ("U12345675", "AT", ("eu_vat", "ATU12345675")),  # prefix left out by an AT customer
        ("GB980780684", None, ("gb_vat", "GB980780684")),
        ("980 7806 84", "GB", ("gb_vat", "GB980780684")),
        ("ABN 51 824 753 556", None, ("au_abn", "51824753556")),
        ("AU51824753556", None, ("au_abn", "51824753556")),
        ("51 824 753 556", "AU", ("au_abn", "51824753556")),
        ("au_abn:51824753556", None, ("au_abn", "51824753556")),
        ("49-091-850", "NZ", ("nz_gst", "49091850")),
    ],
)
def test_valid_numbers_are_typed_and_normalized(
    text: str, country: str | None, checked: tuple[str, str]
) -> None:
    assert checked_tax_id(text, country=country, gateway="test") == checked


@pytest.mark.parametrize(
    ("text", "country", "message"),
    [
        ("DE123456789", None, "DE123456789 is not a valid EU VAT number for DE: check its digits"),
        ("EL123456789", None, "EL123456789 is not a valid EU VAT number for GR: check its digits"),
        ("gb_vat:DE136695976", None, "DE136695976 is not a valid UK VAT number for GB"),
        ("51824753557", "AU", "51824753557 is not a valid Australian Business Number (ABN) for AU"),
        ("123", "NZ", "123 is not a valid New Zealand GST number for NZ"),
        ("123456", "US", "123456 is not a tax ID that can be checked for US"),
        ("123456", None, "cannot tell what kind of tax ID 123456 is"),
        ("ch_vat:CHE-123.456.789 MWST", "CH", "cannot check CHE-123.456.789 MWST as ch_vat"),
    ],
)
def test_invalid_numbers_name_the_number_and_country(
    text: str, country: str | None, message: str
) -> None:
    with pytest.raises(InvalidTaxId) as info:
        checked_tax_id(text, country=country, gateway="test")
    assert info.value.code == ErrorCode.invalid_tax_id
    assert info.value.message.startswith(message)


def test_types_stdnum_cannot_check_pass_only_when_the_gateway_checks_them() -> None:
    text = "ch_vat: CHE-123.456.789 MWST"
    assert checked_tax_id(text, country=None, gateway="stripe", unchecked_types=True) == (
        "ch_vat",
        "CHE-123.456.789 MWST",
    )


@pytest.mark.parametrize("text", ["", "  ", "eu_vat:", " - "])
def test_nothing_is_not_a_tax_id(text: str) -> None:
    with pytest.raises(GatewayError) as info:
        checked_tax_id(text, country="DE", gateway="test")
    assert info.value.code == ErrorCode.invalid_tax_id


@pytest.mark.parametrize(
    ("kind", "number", "country"),
    [
        ("eu_vat", "DE136695976", "DE"),
        ("eu_vat", "EL094259216", "GR"),
        ("eu_vat", "XI980780684", None),
        ("gb_vat", "GB980780684", "GB"),
        ("au_abn", "51824753556", "AU"),
        ("us_ein", "12-3456789", None),
    ],
)
def test_a_tax_ids_country_is_the_one_stripe_reports(
    kind: str, number: str, country: str | None
) -> None:
    assert tax_id_country(kind, number) == country
