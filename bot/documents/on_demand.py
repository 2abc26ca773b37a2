"""Receipts, invoices and credit notes for gateway objects: find them, draft, issue.

Each function finds what it needs through the gateways (any configured one),
drafts the document (`build.py`) and issues it once (`issue.py`): asking twice
for the same charge, invoice or refund returns the document already issued.
"""

from __future__ import annotations

from datetime import UTC, datetime

from bot.actors import Actor
from bot.documents import build
from bot.documents.issue import IssuedDocument, OnIssue, current, find_by_source, issue
from bot.documents.model import DocumentContent, DocumentKind
from bot.errors import UserError
from bot.gateways.base import ErrorCode, Gateway, GatewayError, LookupQuery
from bot.models import Charge, ChargeStatus, Invoice, InvoiceStatus, Refund
from bot.services import Services

# A receipt is for money that moved; these charges took none.
_UNPAID = (ChargeStatus.authorized, ChargeStatus.failed, ChargeStatus.voided)


def render(content: DocumentContent) -> bytes:
    """`bot.documents.render.render`, imported on the first document: fpdf2 (with fontTools,
    Pillow and numpy, about 40 MiB) is not loaded by processes that never render one."""
    from bot.documents.render import render as draw

    return draw(content)


def _settings(services: Services) -> build.Settings:
    return build.Settings(
        branding=services.branding, tax=services.tax, default_locale=services.settings.locale
    )


async def receipt(
    services: Services, charge_ref: str, *, actor: Actor, on_issue: OnIssue | None = None
) -> IssuedDocument:
    """The receipt for a paid charge (`ch_1` or `gateway:ch_1`), issued on first request."""
    gateway, charge = await services.gateways.locate_charge(charge_ref)
    existing = await find_by_source(services.db, DocumentKind.receipt, gateway.name, charge.id)
    if existing is not None:
        return await current(services.db, existing)
    if charge.status in _UNPAID or charge.amount_captured <= 0:
        raise UserError(
            "not_paid", f"charge {charge.id} took no money ({charge.status.value}): no receipt"
        )
    buyer = await _buyer(gateway, charge.customer_id)
    bill = _invoice_of(buyer, charge)
    draft = build.receipt(_settings(services), charge, buyer, invoice=bill, now=_now())
    return await _issue(services, draft, actor, on_issue=on_issue)


async def invoice(
    services: Services, invoice_ref: str, *, actor: Actor, on_issue: OnIssue | None = None
) -> IssuedDocument:
    """Our invoice document for a gateway invoice (`in_1` or `gateway:in_1`)."""
    gateway, bill = await services.gateways.locate(invoice_ref, _fetch_invoice, "invoice")
    existing = await find_by_source(services.db, DocumentKind.invoice, gateway.name, bill.id)
    if existing is not None:
        return await current(services.db, existing)
    if bill.status in (InvoiceStatus.draft, InvoiceStatus.void):
        raise UserError(
            "invalid_state",
            f"invoice {bill.id} is {bill.status.value}: only final invoices are issued",
        )
    buyer = await _buyer(gateway, bill.customer_id)
    draft = build.invoice(_settings(services), bill, buyer, now=_now())
    return await _issue(services, draft, actor, on_issue=on_issue)


async def credit_note(
    services: Services,
    charge_ref: str,
    refund_id: str,
    *,
    actor: Actor,
    reason: str | None = None,
    on_issue: OnIssue | None = None,
) -> IssuedDocument:
    """The credit note for one refund of a charge, correcting its invoice (or else its receipt).

    The corrected document is issued first if it was not yet: a credit note
    always names a document that exists.
    """
    gateway, charge = await services.gateways.locate_charge(charge_ref)
    existing = await find_by_source(services.db, DocumentKind.credit_note, gateway.name, refund_id)
    if existing is not None:
        return existing
    buyer = await _buyer(gateway, charge.customer_id)
    refund = _refund_of(buyer, charge, refund_id)
    original = await _corrected_document(services, gateway, charge, actor)
    draft = build.credit_note(
        _settings(services), refund, original.content, reason=reason, now=_now()
    )
    return await _issue(services, draft, actor, related_id=original.id, on_issue=on_issue)


async def _corrected_document(
    services: Services, gateway: Gateway, charge: Charge, actor: Actor
) -> IssuedDocument:
    if charge.invoice_id:
        return await invoice(services, f"{gateway.name}:{charge.invoice_id}", actor=actor)
    return await receipt(services, f"{gateway.name}:{charge.id}", actor=actor)


async def _issue(
    services: Services,
    draft: DocumentContent,
    actor: Actor,
    *,
    related_id: str | None = None,
    on_issue: OnIssue | None = None,
) -> IssuedDocument:
    _, entity = services.branding.entity_for(draft.source_gateway)
    return await issue(
        services.db,
        draft,
        prefix=build.prefix(entity, draft.kind),
        render=render,
        actor=actor,
        related_id=related_id,
        on_issue=on_issue,
    )


async def _buyer(gateway: Gateway, customer_id: str | None) -> build.Buyer:
    if customer_id is None:
        return build.Buyer(customer=None)
    for profile in await gateway.lookup(LookupQuery("id", customer_id)):
        if profile.customer.id == customer_id:
            return build.Buyer(
                customer=profile.customer,
                tax_ids=profile.tax_ids,
                invoices=profile.invoices,
                refunds=profile.refunds,
                charges=profile.charges,
            )
    raise GatewayError(
        ErrorCode.not_found, f"no customer {customer_id} in {gateway.name}", gateway=gateway.name
    )


def _invoice_of(buyer: build.Buyer, charge: Charge) -> Invoice | None:
    return next((i for i in buyer.invoices if i.id == charge.invoice_id), None)


def _refund_of(buyer: build.Buyer, charge: Charge, refund_id: str) -> Refund:
    for refund in buyer.refunds:
        if refund.id == refund_id and refund.charge_id == charge.id:
            return refund
    raise GatewayError(
        ErrorCode.not_found,
        f"no refund {refund_id} of charge {charge.id} in {charge.gateway}",
        gateway=charge.gateway,
    )


async def _fetch_invoice(gateway: Gateway, invoice_id: str) -> Invoice:
    for profile in await gateway.lookup(LookupQuery("id", invoice_id)):
        for bill in profile.invoices:
            if bill.id == invoice_id:
                return bill
    raise GatewayError(
        ErrorCode.not_found, f"no invoice {invoice_id} in {gateway.name}", gateway=gateway.name
    )


def _now() -> datetime:
    return datetime.now(UTC)
