"""VAT and GST registration numbers: normalized, checked (python-stdnum), typed like Stripe.

The one place for tax-ID rules: documents, the portal and every gateway read
numbers through it, and `checked_tax_id` is what a gateway calls before it asks
its provider (refusing with `InvalidTaxId`, which names number and country).
Only format and check digits are checked here; whether a number is registered
is the tax office's answer (VIES for the EU), which gateways like Stripe report.
"""

from __future__ import annotations

import re

from stdnum import exceptions as stdnum_errors
from stdnum.au import abn
from stdnum.eu import vat as eu_vat
from stdnum.gb import vat as gb_vat
from stdnum.nz import ird
from stdnum.sg import uen

from bot.gateways.base import ErrorCode, GatewayError

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


# Tax ID types python-stdnum checks, each with the country it implies.
CHECKED_TAX_ID_TYPES: dict[str, str | None] = {
    "eu_vat": None,  # the number's prefix names the member state
    "gb_vat": "GB",
    "au_abn": "AU",
    "nz_gst": "NZ",
    "sg_uen": "SG",
}
_TAX_ID_LABELS = {
    "eu_vat": "EU VAT number",
    "gb_vat": "UK VAT number",
    "au_abn": "Australian Business Number (ABN)",
    "nz_gst": "New Zealand GST number",
    "sg_uen": "Singapore UEN",
}
_COUNTRY_TAX_ID_TYPES = {country: kind for kind, country in CHECKED_TAX_ID_TYPES.items() if country}
_TAX_ID_TYPE = re.compile(r"[a-z]{2}_[a-z_]+")


class InvalidTaxId(GatewayError):
    """A tax ID that fails its format or check digits: refused before the gateway is asked."""

    def __init__(self, gateway: str, number: str, *, kind: str | None, country: str | None) -> None:
        where = f" for {country}" if country else ""
        if kind in _TAX_ID_LABELS:
            message = f"{number} is not a valid {_TAX_ID_LABELS[kind]}{where}: check its digits"
        elif kind is not None:
            message = (
                f"cannot check {number} as {kind}: tax IDs are checked for the EU, the UK, "
                "Australia, New Zealand and Singapore only"
            )
        elif country is not None:
            message = (
                f"{number} is not a tax ID that can be checked{where}: write it with its "
                "country prefix (DE, FR, GB, ...) or as type:value (au_abn:51824753556)"
            )
        else:
            message = (
                f"cannot tell what kind of tax ID {number} is: write it with its country "
                "prefix (DE, FR, GB, ...) or as type:value (au_abn:51824753556)"
            )
        super().__init__(ErrorCode.invalid_tax_id, message, gateway=gateway)
        self.number = number
        self.kind = kind
        self.country = country


def checked_tax_id(
    text: str, *, country: str | None, gateway: str, unchecked_types: bool = False
) -> tuple[str, str]:
    """A tax ID as (Stripe's type, normalized number), checked with python-stdnum.

    Takes `eu_vat:DE123456789`, `de 123 456 789`, `GB980780684`, `ABN 51 824 753
    556`, or a bare number read with the customer's `country` (an ABN for AU, a
    VAT number without its prefix for an EU country). With `unchecked_types`, an
    explicit type python-stdnum cannot check (`ch_vat:...`) passes as typed, for
    a gateway that checks it itself. Raises InvalidTaxId naming number and country.
    """
    raw = text.strip()
    kind: str | None = None
    head, colon, rest = raw.partition(":")
    if colon and _TAX_ID_TYPE.fullmatch(head.strip().lower()):
        kind, raw = head.strip().lower(), rest.strip()
    if kind is not None and kind not in CHECKED_TAX_ID_TYPES:
        if unchecked_types and raw:
            return kind, raw
        raise InvalidTaxId(gateway, raw or text.strip(), kind=kind, country=country)
    number = normalize_tax_id(raw)
    if not number:
        raise GatewayError(ErrorCode.invalid_tax_id, "no tax ID was given", gateway=gateway)
    hint = CHECKED_TAX_ID_TYPES.get(kind or "") or country
    if number.startswith(("ABN", "AU")) and kind in (None, "au_abn"):
        digits = number.removeprefix("ABN").removeprefix("AU")
        if digits.isdigit() and len(digits) == 11:
            number, hint = digits, "AU"
    if number.startswith("GR") and kind in (None, "eu_vat"):
        number = "EL" + number[2:]  # Greek VAT numbers carry EL, not their ISO code
    if kind in (None, "eu_vat") and hint in EU and number[:2] not in _EU_PREFIXES:
        prefixed = ("EL" if hint == "GR" else hint) + number
        if tax_id_type(prefixed) == "eu_vat":
            number = prefixed  # typed without its prefix by a customer of that country
    found = tax_id_type(number, hint)
    if found is None or (kind is not None and found != kind):
        claimed = kind or _claimed_type(number, hint)
        named = tax_id_country(claimed, number) or country
        raise InvalidTaxId(gateway, number or raw, kind=claimed, country=named)
    if found == "gb_vat" and not number.startswith("GB"):
        number = "GB" + number  # Stripe's form: GB123456789
    return found, number


def tax_id_country(kind: str | None, number: str) -> str | None:
    """The country a tax ID belongs to, as Stripe reports it (GR for an EL... VAT number)."""
    if kind == "eu_vat":
        prefix = number[:2]
        if prefix not in _EU_PREFIXES or prefix == "XI":  # XI: Northern Ireland, no ISO code
            return None
        return "GR" if prefix == "EL" else prefix
    return CHECKED_TAX_ID_TYPES.get(kind or "")


def _claimed_type(number: str, country: str | None) -> str | None:
    """The type a number claims by its prefix (DE..., GB...) or the customer's country."""
    if number[:2] in _EU_PREFIXES:
        return "eu_vat"
    if number.startswith("GB"):
        return "gb_vat"
    if country in EU:
        return "eu_vat"
    return _COUNTRY_TAX_ID_TYPES.get(country or "")
