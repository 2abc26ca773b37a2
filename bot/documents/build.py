"""Drafts of documents from gateway objects: who, what, which tax, in which language.

A draft is a `DocumentContent` without its number; `issue.py` numbers, renders
and stores it. Nothing here talks to a gateway or the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from babel import Locale, UnknownLocaleError
from babel.languages import get_official_languages

from bot.documents.config import Branding, Entity, TaxConfig, require_seller
from bot.documents.model import (
    Branding as DocumentBranding,
)
from bot.documents.model import (
    DocumentContent,
    DocumentKind,
    DocumentLine,
    Party,
)
from bot.documents.tax import Treatment, allocate, line, summarize, treatment
from bot.models import Charge, Customer, Invoice, Refund, TaxId

LANGUAGES = ("en", "de", "fr", "it", "pl", "ja")
DRAFT_NUMBER = "DRAFT"


@dataclass(frozen=True)
class Settings:
    """What every draft needs besides the gateway objects."""

    branding: Branding
    tax: TaxConfig
    default_locale: str  # the bot's locale, for customers who have none


@dataclass(frozen=True)
class Buyer:
    """The customer as a document needs them: their details and registered tax ID."""

    customer: Customer | None
    tax_ids: Sequence[TaxId] = ()
    invoices: Sequence[Invoice] = ()
    refunds: Sequence[Refund] = ()
    charges: Sequence[Charge] = ()

    @property
    def tax_id(self) -> str | None:
        return self.tax_ids[0].value if self.tax_ids else None

    def party(self) -> Party:
        customer = self.customer
        if customer is None:
            return Party(name="—")
        return Party(
            name=customer.name or customer.email or customer.id,
            address=tuple(customer.address.lines()) if customer.address else (),
            country=customer.country,
            email=customer.email,
            tax_id=self.tax_id,
        )


def document_locale(customer: Customer | None, default: str) -> tuple[str, str]:
    """(Babel locale, language of the words): the customer's, else their country's, else ours."""
    for candidate in _locale_candidates(customer, default):
        try:
            locale = Locale.parse(candidate.replace("-", "_"))
        except (UnknownLocaleError, ValueError):
            continue
        if locale.language in LANGUAGES:
            return str(locale), locale.language
    return "en_US", "en"


def _locale_candidates(customer: Customer | None, default: str) -> list[str]:
    found = []
    if customer is not None and customer.locale:
        found.append(customer.locale)
    if customer is not None and customer.country:
        found += [f"{lang}_{customer.country}" for lang in get_official_languages(customer.country)]
    return [*found, default]


def receipt(
    settings: Settings, charge: Charge, buyer: Buyer, *, invoice: Invoice | None, now: datetime
) -> DocumentContent:
    """A receipt for the money a charge took: its captured amount, tax included."""
    description = charge.description or (
        f"Invoice {invoice.number}" if invoice and invoice.number else charge.id
    )
    return _draft(
        settings,
        DocumentKind.receipt,
        gateway=charge.gateway,
        source_id=charge.id,
        buyer=buyer,
        items=[(description, 1, charge.amount_captured or charge.amount.minor)],
        currency=charge.amount.currency,
        now=now,
        reference=invoice.number if invoice and invoice.number else charge.id,
        paid_at=charge.created,
    )


def invoice(settings: Settings, bill: Invoice, buyer: Buyer, *, now: datetime) -> DocumentContent:
    """An invoice for a gateway invoice: its lines, or one line for the amount due."""
    items = [(item.description, item.quantity, item.amount.minor) for item in bill.lines] or [
        (f"Invoice {bill.number or bill.id}", 1, bill.amount_due.minor)
    ]
    return _draft(
        settings,
        DocumentKind.invoice,
        gateway=bill.gateway,
        source_id=bill.id,
        buyer=buyer,
        items=items,
        currency=bill.amount_due.currency,
        now=now,
        reference=bill.number,
        paid_at=_paid_at(bill, buyer),
        due_date=bill.due_date,
    )


def _paid_at(bill: Invoice, buyer: Buyer) -> datetime | None:
    """When a fully paid invoice was paid: as the gateway says, else when its charge was made."""
    if bill.amount_paid.minor < bill.amount_due.minor or bill.amount_due.minor <= 0:
        return None
    charge = next((c for c in buyer.charges if c.id == bill.charge_id), None)
    return bill.paid_at or (charge.created if charge else None) or bill.created


def credit_note(
    settings: Settings,
    refund: Refund,
    original: DocumentContent,
    *,
    reason: str | None,
    now: datetime,
) -> DocumentContent:
    """A credit note for a refund, correcting `original` at the rates it was issued with.

    The refunded amount is spread over the original lines in proportion to their
    gross (exactly, in minor units), so each part carries its line's tax rate.
    """
    shares = allocate(refund.amount.minor, [item.gross for item in original.lines])
    lines = tuple(
        line(item.description, share, item.rate)
        for item, share in zip(original.lines, shares, strict=True)
        if share > 0
    )
    return _crediting(
        original, lines, source_id=refund.id, reference=refund.id,
        reason=reason or refund.reason, paid_at=refund.created or now, now=now,
    )  # fmt: skip


def cancelling(
    original: DocumentContent, *, source_id: str, reason: str | None, now: datetime
) -> DocumentContent:
    """A credit note cancelling `original` in full, line by line at its rates: the document
    is re-issued with corrected details (`reissue.py`), never edited. No money moved."""
    return _crediting(
        original, original.lines, source_id=source_id, reference=original.reference,
        reason=reason, paid_at=None, now=now,
    )  # fmt: skip


def _crediting(
    original: DocumentContent,
    lines: tuple[DocumentLine, ...],
    *,
    source_id: str,
    reference: str | None,
    reason: str | None,
    paid_at: datetime | None,
    now: datetime,
) -> DocumentContent:
    return original.model_copy(
        update={
            "kind": DocumentKind.credit_note,
            "number": DRAFT_NUMBER,
            "issued_at": now,
            "lines": lines,
            "taxes": summarize(lines),
            "source_id": source_id,
            "reference": reference,
            "related_number": original.number,
            "related_kind": original.kind,
            "related_issued_at": original.issued_at,
            "reason": reason,
            "paid_at": paid_at,
            "due_date": None,
        }
    )


def _draft(
    settings: Settings,
    kind: DocumentKind,
    *,
    gateway: str,
    source_id: str,
    buyer: Buyer,
    items: Sequence[tuple[str, int, int]],
    currency: str,
    now: datetime,
    reference: str | None,
    paid_at: datetime | None = None,
    due_date: datetime | None = None,
) -> DocumentContent:
    # Every receipt and invoice is drafted here (a credit note copies the document it
    # corrects): refusing here refuses commands, billing pages and automatic documents alike.
    require_seller(settings.branding, gateway)
    entity_key, entity = settings.branding.entity_for(gateway)
    applied = _treatment(settings.tax, entity, buyer)
    lines: tuple[DocumentLine, ...] = tuple(
        line(description, gross, applied.rate, quantity=quantity)
        for description, quantity, gross in items
    )
    locale, language = document_locale(buyer.customer, settings.default_locale)
    return DocumentContent(
        kind=kind,
        number=DRAFT_NUMBER,
        entity=entity_key,
        issued_at=now,
        locale=locale,
        language=language,
        currency=currency,
        seller=Party(
            name=entity.legal_name,
            address=tuple(entity.address),
            country=entity.country,
            email=entity.email,
            tax_id=entity.vat_id,
            registration=entity.registration,
        ),
        buyer=buyer.party(),
        branding=DocumentBranding(
            primary_colour=entity.primary_colour,
            accent_colour=entity.accent_colour,
            logo=str(entity.logo) if entity.logo else None,
            footer=entity.footer,
            website=entity.website,
        ),
        lines=lines,
        taxes=summarize(lines),
        treatment=applied.kind,
        tax_name=applied.name,
        source_gateway=gateway,
        source_id=source_id,
        customer_id=buyer.customer.id if buyer.customer else None,
        reference=reference,
        paid_at=paid_at,
        due_date=due_date,
    )


def _treatment(config: TaxConfig, entity: Entity, buyer: Buyer) -> Treatment:
    customer = buyer.customer
    return treatment(
        config,
        seller_country=entity.country,
        buyer_country=customer.country if customer else None,
        buyer_tax_id=buyer.tax_id,
        exempt=customer.tax_exempt if customer else False,
    )


def prefix(entity: Entity, kind: DocumentKind) -> str:
    return {
        DocumentKind.invoice: entity.invoice_prefix,
        DocumentKind.receipt: entity.receipt_prefix,
        DocumentKind.credit_note: entity.credit_note_prefix,
    }[kind]
