"""The tax ID form's check: a country from the list and a number valid for it.

Numbers are checked for format and check digits (`bot/tax_ids.py`); whether
they are registered is the gateway's business (Stripe asks VIES). An EU or UK
number typed without its prefix gets the chosen country's; one with another
country's prefix is refused, naming that country, rather than saved under the
wrong one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.tax_ids import EU, normalize_tax_id, tax_id_type

# Where `tax_id_type` can check a number: the EU, the UK, Australia, New Zealand, Singapore.
COUNTRIES = tuple(sorted(EU | {"GB", "AU", "NZ", "SG"}))
_VAT_PREFIX = {"GR": "EL"}  # Greek VAT numbers carry EL; every other prefix is the ISO code


@dataclass
class TaxIdProblem(Exception):
    """What is wrong, for the field it is next to: `words(key, **countries)`."""

    field: str  # "country" or "number"
    key: str
    countries: dict[str, str] = field(default_factory=dict)  # placeholder -> ISO country code


def check(country: str, raw: str) -> tuple[str, str]:
    """(Stripe's tax ID type, the number as stored) or TaxIdProblem."""
    if country not in COUNTRIES:
        raise TaxIdProblem("country", "err_country")
    number = normalize_tax_id(raw)
    if not number:
        raise TaxIdProblem("number", "err_tax_empty")
    if country == "AU":
        number = number.removeprefix("ABN")
    elif country in EU or country == "GB":
        prefix = _VAT_PREFIX.get(country, country)
        allowed = {prefix, "XI"} if country == "GB" else {prefix}  # XI: Northern Ireland
        if not number[:2].isalpha():
            number = prefix + number
        elif number[:2] not in allowed:
            other = "GR" if number[:2] == "EL" else number[:2]
            if other in COUNTRIES:
                raise TaxIdProblem(
                    "number", "err_tax_country", {"other": other, "country": country}
                )
            raise TaxIdProblem("number", "err_tax_invalid", {"country": country})
    kind = tax_id_type(number, country)
    if kind is None:
        raise TaxIdProblem("number", "err_tax_invalid", {"country": country})
    return kind, number
