"""What an issued document says, kept as a snapshot beside its PDF.

A document is built from gateway objects once, at issue; the snapshot is what
reports read (tax per rate, per country) and what the PDF was drawn from.
Amounts are integer minor units of `currency`.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from bot.money import Money


class DocumentKind(StrEnum):
    invoice = "invoice"
    receipt = "receipt"
    credit_note = "credit_note"


class TaxTreatment(StrEnum):
    standard = "standard"  # tax at the customer's country rate
    reverse_charge = "reverse_charge"  # EU B2B across borders: the customer accounts for VAT
    exempt = "exempt"  # the customer is tax exempt
    outside_scope = "outside_scope"  # no rate configured for the customer's country


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class Party(_Frozen):
    name: str
    address: tuple[str, ...] = ()
    country: str | None = None
    email: str | None = None
    tax_id: str | None = None
    registration: str | None = None


class DocumentLine(_Frozen):
    description: str
    quantity: int = 1
    rate: Decimal  # percent
    net: int
    tax: int
    gross: int


class TaxLine(_Frozen):
    """Net and tax summed over the lines at one rate."""

    rate: Decimal
    net: int
    tax: int


class Branding(_Frozen):
    primary_colour: str
    accent_colour: str
    logo: str | None = None
    footer: str | None = None
    website: str | None = None


class DocumentContent(_Frozen):
    kind: DocumentKind
    number: str
    entity: str
    issued_at: datetime
    locale: str  # Babel locale for amounts and dates: de_DE, ja_JP
    language: str  # the language of the words: en, de, fr, it, pl, ja
    currency: str
    seller: Party
    buyer: Party
    branding: Branding
    lines: tuple[DocumentLine, ...]
    taxes: tuple[TaxLine, ...]
    treatment: TaxTreatment
    tax_name: str  # VAT, GST
    # Where it came from: the gateway object, and its own reference (Stripe's invoice number, ...).
    source_gateway: str
    source_id: str
    customer_id: str | None = None
    reference: str | None = None
    # A credit note names the document it corrects.
    related_number: str | None = None
    related_kind: DocumentKind | None = None
    related_issued_at: datetime | None = None
    reason: str | None = None
    # Invoices: whether and when paid, when due. Receipts: when paid and how.
    paid_at: datetime | None = None
    due_date: datetime | None = None
    payment_method: str | None = None

    @property
    def net(self) -> int:
        return sum(line.net for line in self.lines)

    @property
    def tax(self) -> int:
        return sum(line.tax for line in self.lines)

    @property
    def gross(self) -> int:
        return sum(line.gross for line in self.lines)

    def money(self, minor: int) -> Money:
        return Money(minor=minor, currency=self.currency)
