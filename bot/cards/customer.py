"""Cards a customer sees: their own billing and documents, in their words, with nothing internal.

Unlike the agents' card (`billing.py`) these carry no customer IDs, lifetime
value, dispute evidence dates or gateway error details, and no agent actions:
only what the customer may do next (a PDF, their billing page, a question).
"""

from __future__ import annotations

from bot.cards.billing import day, invoices_section, subscriptions_section
from bot.cards.model import Button, Card, Fact, Section, Table
from bot.documents.issue import IssuedDocument
from bot.documents.model import DocumentKind
from bot.models import (
    BillingProfile,
    ChargeStatus,
    InvoiceStatus,
    Refund,
    SubscriptionStatus,
)

PDF_BUTTONS = 3
_PAYMENT = {
    ChargeStatus.succeeded: "paid",
    ChargeStatus.authorized: "pending",
    ChargeStatus.partially_refunded: "paid, partly refunded",
    ChargeStatus.refunded: "refunded",
    ChargeStatus.disputed: "disputed",
    ChargeStatus.failed: "failed",
    ChargeStatus.voided: "cancelled",
}
_PLAN = {
    SubscriptionStatus.trialing: "trial",
    SubscriptionStatus.past_due: "payment overdue",
    SubscriptionStatus.unpaid: "unpaid",
    SubscriptionStatus.canceled: "cancelled",
    SubscriptionStatus.incomplete: "waiting for payment",
}
_DOCUMENT = {
    DocumentKind.invoice: "Invoice",
    DocumentKind.receipt: "Receipt",
    DocumentKind.credit_note: "Credit note",
}
HINT = (
    "For a PDF: `me pdf <invoice, payment or refund>`. To ask our billing team: `ask <question>`."
)


def billing_card(profile: BillingProfile, email: str, *, locale: str, max_rows: int = 10) -> Card:
    """A verified customer's own payments, subscriptions, invoices and refunds (`profile` is theirs only)."""
    sections = [
        Section(
            title=f"{f.gateway}: unavailable right now",
            text="This part of your billing could not be loaded; try again in a few minutes.",
            tone="warning",
        )
        for f in profile.failures
    ]
    if not profile.found and not profile.failures:
        sections.append(Section(text="No billing is on file for this email yet.", tone="muted"))
    charges = profile.charges()
    if charges:
        sections.append(Section(
            title=f"Payments ({len(charges)})",
            table=Table(columns=["Payment", "Date", "Amount", "Refunded", "Status", "For"], rows=[
                [c.id, day(c.created), c.amount.format(locale),
                 c.refunded.format(locale) if c.amount_refunded else "", _PAYMENT[c.status],
                 c.description or ""]
                for c in charges[:max_rows]
            ], more=max(0, len(charges) - max_rows)),
        ))  # fmt: skip
    sections += subscriptions_section(profile.subscriptions(), locale, _plan)
    invoices = [i for i in profile.invoices() if i.status != InvoiceStatus.draft]
    sections += invoices_section(invoices, locale, max_rows, overdue="overdue")
    refunds = refunds_of(profile)
    if refunds:
        sections.append(Section(
            title="Refunds",
            table=Table(columns=["Refund", "Payment", "Amount", "Date"], rows=[
                [r.id, r.charge_id, r.amount.format(locale), day(r.created)] for r in refunds[:max_rows]
            ], more=max(0, len(refunds) - max_rows)),
        ))  # fmt: skip
    documents = [
        Button(label=f"Invoice {i.number or i.id} (PDF)", command=f"me pdf {i.gateway}:{i.id}")
        for i in invoices
        if i.status != InvoiceStatus.void
    ][:PDF_BUTTONS]
    return Card(
        title=f"Your billing, {profile.name}" if profile.name else "Your billing",
        subtitle=f"{email} · only you can see this",
        sections=sections,
        actions=[*documents, *self_service()],
        footer=HINT,
    )


def self_service() -> list[Button]:
    """What a verified customer can always do next."""
    return [
        Button(label="Open billing page", command="portal", style="primary"),
        Button(label="Ask a question", command="ask"),
    ]


def refunds_of(profile: BillingProfile) -> list[Refund]:
    return sorted(
        (r for p in profile.profiles for r in p.refunds),
        key=lambda r: r.created.timestamp() if r.created else 0.0,
        reverse=True,
    )


def document_card(document: IssuedDocument, *, locale: str) -> Card:
    """A document the customer downloads: which one, for what, how much."""
    content = document.content
    return Card(
        title=f"{_DOCUMENT[content.kind]} {document.number}",
        subtitle=f"issued {content.issued_at:%Y-%m-%d} · only you can see this",
        sections=[
            Section(
                facts=[
                    Fact(label="For", value=content.source_id),
                    Fact(label="Total", value=content.money(content.gross).format(locale)),
                ]
            )
        ],
        footer=document.filename,
    )


def _plan(status: SubscriptionStatus, ending: bool) -> str:
    if ending and status != SubscriptionStatus.canceled:
        return "ends at period end"
    return _PLAN.get(status, status.value)
