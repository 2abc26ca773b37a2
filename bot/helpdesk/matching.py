"""Whose billing a new ticket is about, and how sure we are.

- The requester's email finds a customer: **verified** (the helpdesk received the ticket
  from that address).
- Otherwise an ID in the subject or the first message (a charge, invoice, order or
  subscription ID, another email) finds one: **not verified**, and the note says so.
- A number of one of our documents (`RCT-2026-000001`) in the subject or text: the ticket
  is a reply to that document's email (item 4 of issue 14). The helpdesks' new-ticket
  deliveries carry no email headers, so our `X-ChargeDesk-*` headers are out of reach and
  the subject we set (`Re: Receipt RCT-2026-000001 from …`) is what finds the document. It
  is verified only when the requester is the email the document belongs to.

Lookups go through the lookup command's own path (`bot/lookup_cache.py` → every gateway).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bot import lookup_cache
from bot.documents.issue import IssuedDocument, find
from bot.models import BillingProfile, GatewayFailure
from bot.references import find_document_numbers, find_references
from bot.services import Services

# IDs tried from the ticket text, in order; beyond these the text is probably not about one customer.
MAX_CANDIDATES = 3
MAX_DOCUMENTS = 3

How = Literal["email", "reference", "document", "none"]


@dataclass(frozen=True)
class DocumentMatch:
    document: IssuedDocument
    verified: bool  # the requester is the email the document was for


@dataclass(frozen=True)
class Match:
    how: How
    verified: bool
    profile: BillingProfile | None = None  # the customer found (None: nobody)
    reference: str | None = None  # the ID in the text that found them (how == "reference")
    document: DocumentMatch | None = None
    failures: tuple[GatewayFailure, ...] = ()  # gateways that could not be asked

    @property
    def label(self) -> str:
        if self.how == "email":
            return "verified (requester email)"
        if self.how == "document":
            return (
                "verified (requester email is the document's)"
                if self.verified
                else "not verified (document number in the ticket; the requester is not its customer)"
            )
        if self.how == "reference":
            return f"not verified (ID in the ticket text: {self.reference})"
        return "no match"


def document_email(document: IssuedDocument) -> str | None:
    email = document.customer_email or document.content.buyer.email
    return email.strip().lower() if email else None


async def match_ticket(
    services: Services, *, requester_email: str | None, subject: str, text: str
) -> Match:
    """Who the ticket is about; gateways that could not answer are in `failures`."""
    said = f"{subject}\n{text}"
    requester = requester_email.strip().lower() if requester_email else None
    document = await _document(services, said, requester)
    failures: list[GatewayFailure] = []
    if requester:
        profile = await lookup_cache.lookup(services, requester)
        failures += profile.failures
        if profile.found:
            return Match("email", True, profile, document=document, failures=tuple(failures))
    if document is not None:
        owner = document_email(document.document)
        profile = await lookup_cache.lookup(services, owner) if owner else None
        if profile is not None:
            failures += profile.failures
        return Match(
            "document",
            document.verified,
            profile if profile is not None and profile.found else None,
            document=document,
            failures=tuple(failures),
        )
    for candidate in [c for c in find_references(said) if c != requester][:MAX_CANDIDATES]:
        profile = await lookup_cache.lookup(services, candidate)
        failures += profile.failures
        if profile.found:
            return Match("reference", False, profile, reference=candidate, failures=tuple(failures))
    return Match("none", False, failures=tuple(failures))


async def _document(services: Services, said: str, requester: str | None) -> DocumentMatch | None:
    for number in find_document_numbers(said)[:MAX_DOCUMENTS]:
        document = await find(services.db, number)
        if document is not None:
            owner = document_email(document)
            return DocumentMatch(document, verified=requester is not None and owner == requester)
    return None
