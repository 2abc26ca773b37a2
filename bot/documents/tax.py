"""Tax on documents: which treatment applies, and net/tax/gross per line in integer minor units.

Rules, in order (the customer's country, or the seller's when it is unknown):

1. A tax-exempt customer pays no tax (`exempt`).
2. Seller and customer in different EU countries, and the customer has a VAT ID
   whose format and check digits are valid (python-stdnum): `reverse_charge`,
   no tax, and the document says the customer accounts for the VAT.
3. A rate configured for the customer's country: that rate (`standard`): the
   seller's own country, EU one-stop-shop sales to consumers, AU/NZ/SG GST.
4. Otherwise no tax is charged (`outside_scope`).

Gateway amounts are what the customer pays, so every amount is gross and tax is
the part of it at the rate: tax = gross x rate / (100 + rate), net = gross - tax.
Tax is computed per line and rounded half up to the currency's minor unit; the
totals and the per-rate lines are sums of the rounded lines, so the document
always adds up and its gross is exactly what was charged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from bot.documents.config import TaxConfig
from bot.documents.model import DocumentLine, TaxLine, TaxTreatment
from bot.tax_ids import EU, eu_vat_country

_ZERO = Decimal(0)
_HUNDRED = Decimal(100)


@dataclass(frozen=True)
class Treatment:
    kind: TaxTreatment
    rate: Decimal
    name: str  # VAT, GST
    country: str | None


def treatment(
    config: TaxConfig,
    *,
    seller_country: str,
    buyer_country: str | None,
    buyer_tax_id: str | None,
    exempt: bool,
) -> Treatment:
    """Which tax applies to a sale from `seller_country` to this customer (rules in the module doc)."""
    country = buyer_country or seller_country
    name = config.names.get(country, "VAT")
    if exempt:
        return Treatment(TaxTreatment.exempt, _ZERO, name, country)
    if (
        seller_country in EU
        and country in EU
        and country != seller_country
        and buyer_tax_id
        and eu_vat_country(buyer_tax_id) is not None
    ):
        return Treatment(TaxTreatment.reverse_charge, _ZERO, name, country)
    rate = config.rates.get(country)
    if rate is None:
        return Treatment(TaxTreatment.outside_scope, _ZERO, name, country)
    return Treatment(TaxTreatment.standard, rate, name, country)


def _round(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def line(description: str, gross: int, rate: Decimal, *, quantity: int = 1) -> DocumentLine:
    """One line of `gross` minor units, `rate` percent of tax included."""
    tax = _round(Decimal(gross) * rate / (_HUNDRED + rate))
    return DocumentLine(
        description=description, quantity=quantity, rate=rate, net=gross - tax, tax=tax, gross=gross
    )


def summarize(lines: Sequence[DocumentLine]) -> tuple[TaxLine, ...]:
    """Net and tax per rate, highest rate first."""
    by_rate: dict[Decimal, tuple[int, int]] = {}
    for item in lines:
        net, tax = by_rate.get(item.rate, (0, 0))
        by_rate[item.rate] = (net + item.net, tax + item.tax)
    return tuple(
        TaxLine(rate=rate, net=net, tax=tax)
        for rate, (net, tax) in sorted(by_rate.items(), reverse=True)
    )


def allocate(total: int, weights: Sequence[int]) -> list[int]:
    """Split `total` in proportion to `weights`, exactly (largest remainders get the leftovers)."""
    whole = sum(weights)
    if whole <= 0:
        return [total] + [0] * (len(weights) - 1)
    shares = [total * w // whole for w in weights]
    remainders = sorted(
        range(len(weights)), key=lambda i: (total * weights[i]) % whole, reverse=True
    )
    for i in remainders[: total - sum(shares)]:
        shares[i] += 1
    return shares
