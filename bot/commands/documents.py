"""`invoice` and `receipt`: our PDF documents for gateway invoices and paid charges.

A document is issued once per source object (`bot/documents/on_demand.py`):
asking again shows the same number and the same PDF. The PDF travels as a file
of the reply; each chat platform delivers it its own way (and never publicly
where customers read).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from bot.cards.model import Attachment, Button, Card, Fact, Reply, Section
from bot.commands.args import Args, Asked, ChargeRef, ObjectRef, echo
from bot.commands.router import Context, command
from bot.documents import on_demand
from bot.documents.issue import IssuedDocument
from bot.documents.mailing import send_document
from bot.documents.model import DocumentKind, TaxTreatment
from bot.payment_requests.invoices import send_unpaid

PDF = "application/pdf"
INVOICE_USAGE = "invoice pdf|send <invoice>"
RECEIPT_USAGE = "receipt <charge> [send]"

_TITLE = {
    DocumentKind.invoice: "Invoice",
    DocumentKind.receipt: "Receipt",
    DocumentKind.credit_note: "Credit note",
}
_TREATMENT = {
    TaxTreatment.reverse_charge: "reverse charge: the customer accounts for the tax",
    TaxTreatment.exempt: "the customer is tax exempt",
    TaxTreatment.outside_scope: "no tax rate configured for the customer's country",
}
# What a form offers for `pdf|send`.
DocumentAction = Annotated[
    Literal["pdf", "send"], Asked(labels={"pdf": "PDF", "send": "Email it to the customer"})
]


def _action(value: object, allowed: tuple[str, ...], usage: str) -> object:
    if not isinstance(value, str):
        return value
    word = value.strip().lower()
    if word not in allowed:
        raise ValueError(f"{echo(value)} is not {' or '.join(allowed)}: {usage}")
    return word


class InvoiceArgs(Args):
    action: DocumentAction = Field(description="show the PDF, or email it")
    invoice: ObjectRef = Field(description="gateway invoice ID (ledger:in_123)")

    @field_validator("action", mode="before")
    @classmethod
    def _known(cls, value: object) -> object:
        return _action(value, ("pdf", "send"), INVOICE_USAGE)


class ReceiptArgs(Args):
    charge: ChargeRef = Field(description="charge ID (ledger:ch_123)")
    action: DocumentAction = Field("pdf", description="PDF (default), or email it")

    @field_validator("action", mode="before")
    @classmethod
    def _known(cls, value: object) -> object:
        return _action(value, ("pdf", "send"), RECEIPT_USAGE)


@command("invoice", args=InvoiceArgs, usage=INVOICE_USAGE, positional=("action", "invoice"))
async def invoice(ctx: Context, args: InvoiceArgs) -> Reply:
    """Our invoice for a gateway invoice: `pdf` shows it with the PDF, `send` emails it.

    `invoice pdf in_123` issues the invoice document on first request (numbered,
    with tax lines in the customer's language) and returns the same document
    every time after. `invoice send in_123` emails it to the customer's address
    on file, at most once a day. Draft and void invoices are not issued. An unpaid invoice
    of a gateway that sends invoices (Stripe) is sent by the gateway instead: its own
    invoice, with its pay page.
    """
    if args.action == "send":  # unpaid: the gateway's own invoice, with its pay page
        sent = await send_unpaid(ctx.services, ctx.actor, args.invoice)
        if sent is not None:
            return Reply(cards=[sent])
    document = await on_demand.invoice(ctx.services, args.invoice, actor=ctx.actor)
    return await _answer(ctx, document, args.action)


@command("receipt", args=ReceiptArgs, usage=RECEIPT_USAGE, positional=("charge", "action"))
async def receipt(ctx: Context, args: ReceiptArgs) -> Reply:
    """The receipt for a paid charge, as a PDF; `send` emails it to the customer.

    `receipt ch_123` issues the receipt on first request and returns the same
    one every time after; `receipt ch_123 send` emails it to the customer's
    address on file, at most once a day. Charges that took no money have none.
    """
    document = await on_demand.receipt(ctx.services, args.charge, actor=ctx.actor)
    return await _answer(ctx, document, args.action)


async def _answer(ctx: Context, document: IssuedDocument, action: str) -> Reply:
    card = document_card(document, locale=ctx.services.settings.locale)
    if action == "send":
        where = await send_document(ctx.services, document, actor=ctx.actor)
        card.tone = "success"
        card.sections.append(Section(title="Emailed", text=where, tone="success"))
        return Reply(cards=[card])
    if document.customer_email or document.content.buyer.email:
        card.actions.append(
            Button(label="Email to customer", command=_send_line(document), style="primary")
        )
    return Reply(
        cards=[card],
        files=[Attachment(name=document.filename, mime=PDF, content=document.pdf)],
    )


def _send_line(document: IssuedDocument) -> str:
    source = f"{document.content.source_gateway}:{document.content.source_id}"
    if document.kind == DocumentKind.invoice:
        return f"invoice send {source}"
    return f"receipt {source} send"


def document_card(document: IssuedDocument, *, locale: str) -> Card:
    """What an agent checks before passing a document on: who, how much, which tax, which language."""
    content = document.content
    money = content.money
    buyer = content.buyer.name + (f" <{content.buyer.email}>" if content.buyer.email else "")
    customer = f"{content.source_gateway}:{content.customer_id}" if content.customer_id else "—"
    facts = [
        Fact(label="Customer", value=f"{buyer} ({customer})"),
        Fact(label="For", value=f"{content.source_gateway}:{content.source_id}"),
        Fact(label="Total", value=f"{money(content.gross).format(locale)} incl. tax"),
        Fact(label="Net", value=money(content.net).format(locale)),
    ]
    # Tax lines where tax is charged; otherwise why none is (a 0% line explains nothing).
    for tax in content.taxes if content.treatment == TaxTreatment.standard else ():
        facts.append(
            Fact(
                label=f"{content.tax_name} {tax.rate.normalize():f}%",
                value=f"{money(tax.tax).format(locale)} on {money(tax.net).format(locale)}",
            )
        )
    if content.treatment in _TREATMENT:
        facts.append(Fact(label="Tax", value=_TREATMENT[content.treatment]))
    facts.append(Fact(label="Language", value=content.language))
    issued = f"{content.issued_at:%Y-%m-%d}"
    return Card(
        title=f"{_TITLE[content.kind]} {document.number}",
        subtitle=f"issued {issued}"
        if document.new
        else f"issued {issued} (the same document as before)",
        sections=[Section(facts=facts)],
        footer=document.filename,
    )
