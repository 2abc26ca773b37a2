"""VAT and GST registration numbers: normalized, checked (python-stdnum), typed like Stripe.

Only format and check digits are checked here; whether a number is registered
is the tax office's answer (VIES for the EU), which gateways like Stripe report.
"""

from __future__ import annotations

from stdnum import exceptions as stdnum_errors
from stdnum.au import abn
from stdnum.eu import vat as eu_vat
from stdnum.gb import vat as gb_vat
from stdnum.nz import ird
from stdnum.sg import uen

EU = frozenset(
    [
        "AT",
        "BE",
        "BG",
        "CY",
        "CZ",
        "DE",
        "DK",
        "EE",
        "ES",
        "FI",
        "FR",
        "GR",
        "HR",
        "HU",
        "IE",
        "IT",
        "LT",
        "LU",
        "LV",
        "MT",
        "NL",
        "PL",
        "PT",
        "RO",
        "SE",
        "SI",
        "SK",
    ]
)
# VAT prefixes that are not ISO country codes: Greece is EL, Northern Ireland XI.
_EU_PREFIXES = EU - {"GR"} | {"EL", "XI"}


def normalize_tax_id(value: str) -> str:
    """`de 123 456 789` -> `DE123456789`: what is stored and printed."""
    return "".join(ch for ch in value.upper() if ch.isalnum())


def tax_id_type(value: str, country: str | None = None) -> str | None:
    """Stripe's type for a valid number (eu_vat, gb_vat, au_abn, nz_gst, sg_uen), None if invalid."""
    number = normalize_tax_id(value)
    checks = (
        ("eu_vat", number[:2] in _EU_PREFIXES, eu_vat.is_valid),
        ("gb_vat", number.startswith("GB") or country == "GB", gb_vat.is_valid),
        ("au_abn", country == "AU", abn.is_valid),
        ("nz_gst", country == "NZ", ird.is_valid),
        ("sg_uen", country == "SG", uen.is_valid),
    )
    for kind, applies, is_valid in checks:
        if applies:
            try:
                return kind if is_valid(number) else None
            except stdnum_errors.ValidationError:
                return None
    return None


def valid_tax_id(value: str, country: str | None = None) -> bool:
    """Is this a well-formed VAT/GST number (format and check digits; no registry lookup)?"""
    return tax_id_type(value, country) is not None


def eu_vat_country(value: str) -> str | None:
    """The member state of a valid EU VAT ID (GR for EL), else None."""
    number = normalize_tax_id(value)
    if tax_id_type(number) != "eu_vat" or number.startswith("XI"):
        return None
    return "GR" if number.startswith("EL") else number[:2]
