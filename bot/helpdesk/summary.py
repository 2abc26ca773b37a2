"""What a ticket's billing note says, as a neutral card (`render.py` writes it out).

Compact on purpose: who the customer is and how sure we are, then what an agent asks
about first: open disputes, the last charges with their status, refunds, active
subscriptions, open invoices; and, for a reply to one of our emails, that document.
Amounts are `Money` formatted with ISO digits (exact). Nothing secret is in it: no
credential, no billing-page link (a link opens the customer's pages: it is a key), no
card number (descriptions are masked by the renderer).
"""

from __future__ import annotations

from bot.cards.billing import day, invoices_section, subscriptions_section
from bot.cards.model import Button, Card, Fact, Section, Table
from bot.documents.model import DocumentKind
from bot.helpdesk.matching import Match
from bot.models import (
    BillingProfile,
    DisputeStatus,
    InvoiceStatus,
    SubscriptionStatus,
)
from bot.services import Services

TITLE = "ChargeDesk billing summary"
ROWS = 5
_OPEN_DISPUTES = (DisputeStatus.needs_response, DisputeStatus.under_review)
_ENDED = (SubscriptionStatus.canceled, SubscriptionStatus.incomplete)
_KIND = {
    DocumentKind.receipt: "receipt",
    DocumentKind.invoice: "invoice",
    DocumentKind.credit_note: "credit note",
}


def marker(note_id: str) -> str:
    """The words that make a note findable on its ticket (`find_note`) after an unknown outcome."""
    return f"ChargeDesk note {note_id}"


def note_card(services: Services, match: Match, *, requester_email: str | None, mark: str) -> Card:
    locale = services.settings.locale
    sections: list[Section] = []
    actions: list[Button] = []
    if match.document is not None:
        section, button = _document(services, match)
        sections.append(section)
        if button is not None:
            actions.append(button)
    if match.profile is not None and match.profile.found:
        subtitle = f"Customer {match.label}"
        if not match.verified:
            subtitle += ": check who you are talking to before acting"
        sections += _profile(match.profile, locale)
    elif match.how == "document":
        subtitle = f"Document {match.label}; no billing customer found for it"
    else:
        subtitle = f"No billing customer found for {requester_email or 'the requester (no email)'}"
    down = {f.gateway: f for f in match.failures}
    sections += [
        Section(title=f"{f.gateway}: not asked", text=f"{f.message} ({f.code})", tone="danger")
        for f in down.values()
    ]
    return Card(title=TITLE, subtitle=subtitle, sections=sections, actions=actions, footer=mark)


def _profile(profile: BillingProfile, locale: str) -> list[Section]:
    ids = ", ".join(f"{p.gateway}:{p.customer.id}" for p in profile.profiles)
    ltv = ", ".join(m.format(locale) for m in profile.lifetime_value()) or "—"
    sections = [
        Section(facts=[
            Fact(label="Customer", value=profile.name or "—"),
            Fact(label="Email", value=profile.email or "—"),
            Fact(label="IDs", value=ids),
            Fact(label="Gateways", value=", ".join(sorted({p.gateway for p in profile.profiles}))),
            Fact(label="Lifetime value", value=ltv),
        ])
    ]  # fmt: skip
    disputes = [d for d in profile.disputes() if d.status in _OPEN_DISPUTES]
    if disputes:
        sections.append(Section(title=f"Open disputes ({len(disputes)})", tone="danger", table=Table(
            columns=["Dispute", "Charge", "Amount", "Reason", "Status", "Evidence due"],
            rows=[[d.id, d.charge_id, d.amount.format(locale), d.reason, d.status.value,
                   f"evidence due {day(d.evidence_due_by)}"] for d in disputes],
        )))  # fmt: skip
    charges = profile.charges()
    if charges:
        sections.append(Section(title=f"Last charges ({len(charges)} in all)", table=Table(
            columns=["Charge", "Date", "Amount", "Status", "Refunded", "Description"],
            rows=[[c.id, day(c.created), c.amount.format(locale), c.status.value,
                   f"refunded {c.refunded.format(locale)}" if c.amount_refunded else "",
                   c.description or ""] for c in charges[:ROWS]],
            more=max(0, len(charges) - ROWS),
        )))  # fmt: skip
    refunds = sorted(
        (r for p in profile.profiles for r in p.refunds),
        key=lambda r: r.created.timestamp() if r.created else 0,
        reverse=True,
    )
    if refunds:
        sections.append(Section(title=f"Refunds ({len(refunds)})", table=Table(
            columns=["Refund", "Charge", "Amount", "Date", "Status"],
            rows=[[r.id, f"of {r.charge_id}", r.amount.format(locale), day(r.created), r.status]
                  for r in refunds[:ROWS]],
            more=max(0, len(refunds) - ROWS),
        )))  # fmt: skip
    active = [s for s in profile.subscriptions() if s.status not in _ENDED]
    sections += subscriptions_section(active, locale, _sub_status)
    open_invoices = [i for i in profile.invoices() if i.status == InvoiceStatus.open]
    sections += invoices_section(open_invoices, locale, ROWS, overdue="overdue")
    return sections


def _sub_status(status: SubscriptionStatus, ending: bool) -> str:
    return f"{status.value}, cancels at period end" if ending else status.value


def _document(services: Services, match: Match) -> tuple[Section, Button | None]:
    assert match.document is not None
    document = match.document.document
    content = document.content
    kind = _KIND.get(content.kind, content.kind.value)
    source = f"{content.source_gateway}:{content.source_id}"
    facts = [
        Fact(label="Document", value=f"{kind} {content.number}"),
        Fact(label="Amount", value=document.gross.format(content.locale)),
        Fact(label="Issued", value=day(content.issued_at)),
        Fact(label="For", value=source),
    ]
    # The document's page on the billing pages: it opens for its customer once signed in.
    base = services.settings.portal.base_url.rstrip("/")
    facts.append(
        Fact(label="Customer's copy", value=f"{base}/portal/pdf/document/{content.number}")
    )
    verdict = (
        "The requester is the customer this document was sent to."
        if match.document.verified
        else "Not verified: the requester is not the email this document was sent to."
    )
    gateway = services.gateways.by_name.get(content.source_gateway)
    url = gateway.dashboard_url(content.source_id) if gateway is not None else None
    button = Button(label=f"{source} in {content.source_gateway}", url=url) if url else None
    return (
        Section(title=f"Reply to our {kind} {content.number}", text=verdict, facts=facts),
        button,
    )
