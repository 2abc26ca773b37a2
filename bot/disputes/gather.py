"""Gather the evidence the bot already holds for a dispute, in one place.

- who the customer is: name, email, billing address (the gateway's customer);
- what they bought and when: the disputed payment's description and day;
- the documents we issued for it: receipt, invoice, credit notes (the PDFs, as issued);
- their subscriptions' terms (plan, price, interval, renewal or cancellation) and refunds;
- what we wrote to them (the mail outbox) and their helpdesk tickets we noted.
"""

from __future__ import annotations

from sqlalchemy import func, or_, select

from bot.disputes.evidence import MAX_TEXT, Evidence, EvidenceFile
from bot.gateways.base import Gateway, LookupQuery
from bot.models import Charge, Dispute, GatewayProfile, SubscriptionStatus
from bot.services import Services
from bot.store.tables import DocumentRow, EmailRow, HelpdeskNote

MAX_LINES = 20  # of emails, notes and refunds: the newest


async def gather(services: Services, gateway: Gateway, dispute: Dispute, note: str) -> Evidence:
    """Everything we hold on the dispute's payment and customer, as evidence fields and files."""
    profiles = await gateway.lookup(LookupQuery("id", dispute.charge_id))
    profile = next((p for p in profiles if _has_charge(p, dispute.charge_id)), None) or (
        profiles[0] if profiles else None
    )
    charge = _charge(profile, dispute.charge_id) or await gateway.get_charge(dispute.charge_id)
    customer = profile.customer if profile else None
    email = (customer.email or "").lower() or None
    locale = services.settings.locale
    address = customer.address if customer else None
    return Evidence(
        dispute_id=dispute.id,
        customer_name=customer.name if customer else None,
        customer_email=email,
        billing_address=_clip(", ".join([*address.lines(), address.country or ""]).strip(", "))
        if address and address.lines()
        else None,
        product_description=_clip(charge.description) if charge.description else None,
        service_date=f"{charge.created:%Y-%m-%d}" if charge.created else None,
        subscription_terms=_subscriptions(profile, locale),
        refund_history=_refunds(profile, charge, locale),
        communication=await _communication(services, email),
        note=_clip(note),
        files=tuple(await _documents(services, gateway.name, charge, profile)),
    )


def _has_charge(profile: GatewayProfile, charge_id: str) -> bool:
    return any(c.id == charge_id for c in profile.charges)


def _charge(profile: GatewayProfile | None, charge_id: str) -> Charge | None:
    return next((c for c in profile.charges if c.id == charge_id), None) if profile else None


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _lines(lines: list[str]) -> str | None:
    return _clip("\n".join(lines[:MAX_LINES])) if lines else None


def _subscriptions(profile: GatewayProfile | None, locale: str) -> str | None:
    """Each subscription's plan, price and interval, and whether it renews or ended when."""
    lines = []
    for s in profile.subscriptions if profile else ():
        end = s.current_period_end
        if s.status == SubscriptionStatus.canceled:
            state = f"canceled {s.canceled_at:%Y-%m-%d}" if s.canceled_at else "canceled"
        elif end is not None:
            then = "cancels" if s.cancel_at_period_end else "renews"
            state = f"{s.status.value}, {then} {end:%Y-%m-%d}"
        else:
            state = s.status.value
        lines.append(f"{s.plan}: {s.amount.format(locale)} per {s.interval}; {state}")
    return _lines(lines)


def _refunds(profile: GatewayProfile | None, charge: Charge, locale: str) -> str | None:
    """The customer's refunds, newest first (on any of their payments)."""
    refunds = sorted(
        profile.refunds if profile else (),
        key=lambda r: r.created.timestamp() if r.created else 0.0,
        reverse=True,
    )
    lines = [
        (f"{r.created:%Y-%m-%d} " if r.created else "")
        + f"{r.amount.format(locale)} refunded on payment {r.charge_id}"
        + (f" ({r.reason})" if r.reason else "")
        for r in refunds
    ]
    if not lines and charge.amount_refunded == 0:
        return f"No refund was made on payment {charge.id}."
    return _lines(lines)


async def _communication(services: Services, email: str | None) -> str | None:
    """Emails we sent the customer and their helpdesk tickets we noted, newest first."""
    if not email:
        return None
    async with services.db.read() as s:
        sent = await s.execute(
            select(EmailRow.created, EmailRow.sent_at, EmailRow.subject, EmailRow.state)
            .where(func.lower(EmailRow.recipient) == email)
            .order_by(EmailRow.created.desc())
            .limit(MAX_LINES)
        )
        tickets = await s.execute(
            select(HelpdeskNote.created, HelpdeskNote.helpdesk, HelpdeskNote.ticket_id, HelpdeskNote.subject)
            .where(func.lower(HelpdeskNote.requester_email) == email)
            .order_by(HelpdeskNote.created.desc())
            .limit(MAX_LINES)
        )  # fmt: skip
        lines = [
            f"{(sent_at or created):%Y-%m-%d} email {'sent' if state == 'sent' else state}: {subject}"
            for created, sent_at, subject, state in sent
        ] + [
            f"{created:%Y-%m-%d} {helpdesk} ticket {ticket}: {subject or '(no subject)'}"
            for created, helpdesk, ticket, subject in tickets
        ]
    return _lines(lines)


async def _documents(
    services: Services, gateway: str, charge: Charge, profile: GatewayProfile | None
) -> list[EvidenceFile]:
    """Our receipt and invoice for the payment, and credit notes for its refunds."""
    sources = (
        {charge.id, *(r.id for r in profile.refunds if r.charge_id == charge.id)}
        if profile
        else {charge.id}
    )
    if charge.invoice_id:
        sources.add(charge.invoice_id)
    async with services.db.read() as s:
        rows = await s.scalars(
            select(DocumentRow)
            .where(DocumentRow.source_gateway == gateway,
                   or_(DocumentRow.source_id.in_(sources), DocumentRow.related_id == charge.id))
            .order_by(DocumentRow.issued_at)
        )  # fmt: skip
        return [EvidenceFile.of(row.kind, row.number, row.pdf) for row in rows]
