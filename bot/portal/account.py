"""One signed-in customer's billing, read fresh from the gateways, and what they own.

Fail closed: a customer record counts only if its email is exactly the verified
one, and an invoice, charge or document is theirs only if it sits in one of
those records. Anything else is "not found", whoever asks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from sqlalchemy import ColumnElement, and_, or_, select

from bot.models import (
    Charge,
    ChargeStatus,
    Customer,
    GatewayFailure,
    GatewayProfile,
    Invoice,
    InvoiceStatus,
    Subscription,
    TaxId,
)
from bot.money import Money
from bot.services import Services
from bot.store.tables import DocumentRow

# Charges that took no money have no receipt (as in bot/documents/on_demand.py).
_NO_RECEIPT = (ChargeStatus.authorized, ChargeStatus.failed, ChargeStatus.voided)
DOCUMENTS_SHOWN = 50


@dataclass(frozen=True)
class DocumentEntry:
    """An issued document as the history lists it (its PDF is fetched on download)."""

    number: str
    kind: str
    issued_at: datetime
    gross: Money


@dataclass
class Account:
    email: str
    profiles: list[GatewayProfile]
    failures: list[GatewayFailure]
    documents: list[DocumentEntry] = field(default_factory=list)

    @property
    def customer(self) -> Customer | None:
        """The record whose name and locale the pages use: one with a locale, else the first."""
        with_locale = [p.customer for p in self.profiles if p.customer.locale]
        return (with_locale or [p.customer for p in self.profiles] or [None])[0]

    @property
    def name(self) -> str:
        return next((p.customer.name for p in self.profiles if p.customer.name), self.email)

    @property
    def owners(self) -> list[tuple[str, str]]:
        """(gateway, customer ID) of every record that is this customer's."""
        return [(p.gateway, p.customer.id) for p in self.profiles]

    def charges(self) -> list[Charge]:
        return _newest_first([c for p in self.profiles for c in p.charges])

    def invoices(self) -> list[Invoice]:
        return _newest_first([i for p in self.profiles for i in p.invoices])

    def subscriptions(self) -> list[Subscription]:
        return [s for p in self.profiles for s in p.subscriptions]

    def tax_ids(self) -> list[TaxId]:
        """Each number once, though several gateways may hold it."""
        seen: dict[str, TaxId] = {}
        for tax in (t for p in self.profiles for t in p.tax_ids):
            seen.setdefault(tax.value, tax)
        return list(seen.values())

    def invoice(self, gateway: str, invoice_id: str) -> tuple[GatewayProfile, Invoice] | None:
        for profile in self.profiles:
            if profile.gateway == gateway:
                for bill in profile.invoices:
                    if bill.id == invoice_id:
                        return profile, bill
        return None

    def charge(self, gateway: str, charge_id: str) -> tuple[GatewayProfile, Charge] | None:
        for profile in self.profiles:
            if profile.gateway == gateway:
                for charge in profile.charges:
                    if charge.id == charge_id:
                        return profile, charge
        return None


def has_receipt(charge: Charge) -> bool:
    return charge.status not in _NO_RECEIPT and charge.amount_captured > 0


def has_document(bill: Invoice) -> bool:
    """Only final invoices are issued as documents."""
    return bill.status not in (InvoiceStatus.draft, InvoiceStatus.void)


async def load(services: Services, email: str, *, documents: bool = True) -> Account:
    """The customer's records in every gateway (only exact email matches), and their documents."""
    found = await services.gateways.lookup(email)
    profiles = [p for p in found.profiles if (p.customer.email or "").strip().lower() == email]
    account = Account(email=email, profiles=profiles, failures=list(found.failures))
    if documents:
        account.documents = await _documents(services, account.owners)
    return account


def _owned_by(owners: list[tuple[str, str]]) -> ColumnElement[bool]:
    return or_(
        *(and_(DocumentRow.source_gateway == g, DocumentRow.customer_id == c) for g, c in owners)
    )


async def _documents(services: Services, owners: list[tuple[str, str]]) -> list[DocumentEntry]:
    if not owners:
        return []
    async with services.db.read() as session:
        # Only the columns a list needs: the PDFs stay in the database until downloaded.
        rows = await session.execute(
            select(
                DocumentRow.number,
                DocumentRow.kind,
                DocumentRow.issued_at,
                DocumentRow.gross,
                DocumentRow.currency,
            )
            .where(_owned_by(owners))
            .order_by(DocumentRow.issued_at.desc(), DocumentRow.seq.desc())
            .limit(DOCUMENTS_SHOWN)
        )
        return [
            DocumentEntry(number=n, kind=k, issued_at=at, gross=Money(minor=g, currency=c))
            for n, k, at, g, c in rows
        ]


async def owns_document(services: Services, account: Account, number: str) -> bool:
    """Was document `number` issued to one of this customer's records?"""
    if not account.owners:
        return False
    async with services.db.read() as session:
        found = await session.scalar(
            select(DocumentRow.id).where(DocumentRow.number == number, _owned_by(account.owners))
        )
    return found is not None


_T = TypeVar("_T", Charge, Invoice)


def _newest_first(items: list[_T]) -> list[_T]:
    return sorted(
        items,
        key=lambda i: i.created.timestamp() if i.created else float("-inf"),
        reverse=True,
    )
