"""`invoice send` of an unpaid invoice: the gateway emails its own invoice, with its pay page.

Our PDF document carries no way to pay; a gateway that sends invoices (Stripe's
`send_invoice` collection) emails the customer its invoice with a link to its hosted page,
which is what an unpaid invoice needs. Paid invoices, and gateways that cannot send them,
keep getting our document (`bot/commands/documents.py`). The pay page's URL is not shown
or audited: the gateway's email carries it to the customer.
"""

from __future__ import annotations

from datetime import UTC, datetime

from bot.actors import Actor
from bot.audit.log import AuditRecord, record
from bot.cards.model import Card, Fact, Section
from bot.documents import on_demand
from bot.gateways.base import Capability, ErrorCode, GatewayError
from bot.models import InvoiceStatus
from bot.services import Services


async def send_unpaid(services: Services, actor: Actor, ref: str) -> Card | None:
    """Have the gateway email an open invoice with its pay page (at most once a day); None
    when our own document is what to send (paid, or a gateway that sends no invoices)."""
    gateway, bill = await services.gateways.locate(ref, on_demand._fetch_invoice, "invoice")
    due = bill.amount_due
    if Capability.send_invoice not in gateway.capabilities or bill.status not in (
        InvoiceStatus.draft, InvoiceStatus.open,
    ) or due.minor <= 0:  # fmt: skip
        return None
    today = datetime.now(UTC).date().isoformat()
    try:
        sent = await gateway.send_invoice(bill.id, idempotency_key=f"invoice:{bill.id}:{today}")
    except GatewayError as exc:
        if exc.code == ErrorCode.invalid_state and bill.status == InvoiceStatus.open:
            return None  # charged automatically (no pay page to send): our document instead
        raise
    await record(services.db, AuditRecord(
        actor=actor, action="invoice_send", outcome="sent", gateway=gateway.name,
        object_id=sent.id, customer_id=sent.customer_id, amount=due,
        detail={"by": "gateway", "number": sent.number},
    ))  # fmt: skip
    locale = services.settings.locale
    return Card(
        title=f"Invoice {sent.number or sent.id} sent by {gateway.name}",
        subtitle="with the gateway's pay page, to the customer's email on file",
        tone="success",
        sections=[Section(facts=[
            Fact(label="Invoice", value=f"{gateway.name}:{sent.id}"),
            Fact(label="Due", value=due.format(locale)),
            Fact(label="Status", value=sent.status.value),
        ])],
    )  # fmt: skip
