"""Re-issue a document after the customer's name, address or tax ID changed: never edit it.

An issued document is permanent. When what it says of the customer is no longer
true, it is corrected by two new documents, each numbered in its own gapless
series: a credit note cancelling it in full (at the rates it was issued with),
and a new invoice or receipt drawn again from the gateway objects with the
customer's current details, its tax computed again by the tax rules (a VAT ID
added since may turn domestic VAT into reverse charge). Both are emailed like
the originals.

A correction is a `document_requests` row (kind `reissue`, source = the document
corrected): written in the transaction that records the change of details
(automatic mode) or by `reissue <number>`. Each step is keyed by the corrected
document, so running it again, after a crash anywhere, issues and emails nothing
twice: the credit note's and the new document's source is the old document's ID,
and an email's purpose is its document's ID.

Scope: documents issued since the first of the current month (UTC), the period
no tax return has declared yet; older ones only when someone asks for them by
number. Which happens is branding.toml's `reissue`: "offer" (the default: the
reply to the change lists them with a button each) or "automatic".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot import jobs
from bot.actors import SYSTEM, Actor
from bot.approvals.workflow import ApprovalView
from bot.documents import build
from bot.documents.automatic import DONE, PENDING, SKIPPED, _mark, failed, retry_later
from bot.documents.config import SellerMissing, require_seller
from bot.documents.issue import IssuedDocument, find, find_by_source
from bot.documents.mailing import deliver_soon, queue_document_email
from bot.documents.model import DocumentContent, DocumentKind
from bot.documents.on_demand import _buyer, _fetch_invoice, _invoice_of, _issue, _settings
from bot.errors import UserError
from bot.gateways.base import ErrorCode, GatewayError
from bot.services import Listener, Services
from bot.store.tables import DocumentRequest, DocumentRow

log = logging.getLogger(__name__)

REISSUE = "reissue"  # the `document_requests.kind` of a correction
# Actions that change what a document says of the customer (bot/approvals/actions.py).
DETAIL_ACTIONS = frozenset({"tax-id", "address", "name"})
_REISSUED = (DocumentKind.invoice, DocumentKind.receipt)
_TRANSIENT = (ErrorCode.unavailable, ErrorCode.timeout, ErrorCode.rate_limited)


@dataclass(frozen=True)
class Correction:
    """The credit note cancelling a document and the document issued in its place."""

    credit_note: IssuedDocument
    replacement: IssuedDocument


def period_start(now: datetime | None = None) -> datetime:
    """The first instant of the current month (UTC): documents since are in scope."""
    return (
        (now or datetime.now(UTC))
        .astimezone(UTC)
        .replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    )


async def in_period(
    session: AsyncSession, gateway: str, customer_id: str, *, since: datetime
) -> list[DocumentRow]:
    """The customer's invoices and receipts issued since `since` that stand uncorrected."""
    rows = list(
        await session.scalars(
            select(DocumentRow)
            .where(
                DocumentRow.source_gateway == gateway,
                DocumentRow.customer_id == customer_id,
                DocumentRow.kind.in_([k.value for k in _REISSUED]),
                DocumentRow.issued_at >= since,
            )
            .order_by(DocumentRow.issued_at, DocumentRow.id)
        )
    )
    corrected = set(
        await session.scalars(
            select(DocumentRow.source_id).where(
                DocumentRow.source_gateway == gateway,
                DocumentRow.kind == DocumentKind.credit_note.value,
                DocumentRow.source_id.in_([r.id for r in rows]),
            )
        )
    )
    return [r for r in rows if r.id not in corrected]


async def request(
    session: AsyncSession, gateway: str, document_id: str, *, reason: str | None
) -> bool:
    """Ask, in the caller's transaction, for one correction; False if it is pending or done.

    One refused before (nothing to correct then) is asked again: the details may differ now.
    """
    now = datetime.now(UTC)
    try:
        async with session.begin_nested():  # a twin asking at once loses only this insert
            session.add(DocumentRequest(
                kind=REISSUE, gateway=gateway, source_id=document_id, charge_id=document_id,
                reason=reason, state=PENDING, attempts=0, created=now, updated=now,
            ))  # fmt: skip
    except IntegrityError:
        rearmed = await session.execute(
            update(DocumentRequest)
            .where(
                DocumentRequest.kind == REISSUE,
                DocumentRequest.gateway == gateway,
                DocumentRequest.source_id == document_id,
                DocumentRequest.state == SKIPPED,
            )
            .values(state=PENDING, attempts=0, reason=reason, last_error=None, updated=now)
        )
        return bool(rearmed.rowcount)  # type: ignore[attr-defined]
    return True


async def correct(
    services: Services, old: IssuedDocument, *, actor: Actor, reason: str | None
) -> Correction:
    """Issue (or find, when issued before) the credit note and the replacement for `old`.

    UserError when `old` cannot be corrected (a credit note) or would say the same again.
    """
    content = old.content
    gateway_name = content.source_gateway
    if content.kind not in _REISSUED:
        raise UserError(
            "invalid_state", f"{content.number} is a {content.kind.value.replace('_', ' ')}: "
            "only invoices and receipts are re-issued",
        )  # fmt: skip
    note = await find_by_source(services.db, DocumentKind.credit_note, gateway_name, old.id)
    replacement = await find_by_source(services.db, content.kind, gateway_name, old.id)
    if note is not None and replacement is not None:
        return Correction(note, replacement)
    require_seller(services.branding, gateway_name)
    draft = await _redrawn(services, old)
    if note is None and _same_details(content, draft):
        raise UserError(
            "unchanged",
            f"{content.number} already shows the customer's current name, address and tax ID: "
            "nothing to correct",
        )
    why = reason or f"Customer details corrected: replaced by a new {content.kind.value}"
    if note is None:
        cancel = build.cancelling(content, source_id=old.id, reason=why, now=_now())
        note = await _issue(services, cancel, actor, related_id=old.id)
    replacement = await _issue(services, draft, actor, related_id=old.id)
    return Correction(note, replacement)


async def _redrawn(services: Services, old: IssuedDocument) -> DocumentContent:
    """`old` drawn again from its gateway objects as they are now, its source being `old`."""
    content = old.content
    source_id = await _origin(services, old)
    ref = f"{content.source_gateway}:{source_id}"
    settings = _settings(services)
    if content.kind is DocumentKind.invoice:
        gateway, bill = await services.gateways.locate(ref, _fetch_invoice, "invoice")
        draft = build.invoice(settings, bill, await _buyer(gateway, bill.customer_id), now=_now())
    else:
        gateway, charge = await services.gateways.locate_charge(ref)
        buyer = await _buyer(gateway, charge.customer_id)
        draft = build.receipt(
            settings, charge, buyer, invoice=_invoice_of(buyer, charge), now=_now()
        )
    return draft.model_copy(update={"source_id": old.id})


async def _origin(services: Services, document: IssuedDocument) -> str:
    """The gateway object a (possibly re-issued) document was first drawn from."""
    source = document.content.source_id
    while source.startswith("doc_"):
        earlier = await find(services.db, source)
        if earlier is None:
            break
        source = earlier.content.source_id
    return source


def _same_details(old: DocumentContent, new: DocumentContent) -> bool:
    return (old.buyer, old.treatment, old.taxes, old.lines) == (
        new.buyer, new.treatment, new.taxes, new.lines,
    )  # fmt: skip


async def fulfil(services: Services, gateway: str, document_id: str) -> str:
    """Carry out one requested correction and email both documents; returns its state.

    Transient gateway failures raise (the job retries) until MAX_ATTEMPTS; a refusal
    (nothing to correct, a credit note) skips it with the reason kept as its error.
    """
    async with services.db.read() as session:
        row = await session.scalar(
            select(DocumentRequest).where(
                DocumentRequest.kind == REISSUE,
                DocumentRequest.gateway == gateway,
                DocumentRequest.source_id == document_id,
            )
        )
    if row is None or row.state != PENDING:
        return row.state if row is not None else "missing"
    try:
        old = await find(services.db, document_id)
        if old is None:
            raise UserError("not_found", f"no document {document_id}")
        fixed = await correct(services, old, actor=SYSTEM, reason=row.reason)
    except SellerMissing as exc:
        await _mark(services, row.id, PENDING, error=exc.message, attempt=False)
        return PENDING
    except UserError as exc:  # a GatewayError too
        return await failed(services, row, exc, transient=_TRANSIENT)
    emails = []
    async with services.db.write() as session:
        for document in (fixed.credit_note, fixed.replacement):
            try:
                email_id = await queue_document_email(
                    services, session, document, purpose=f"auto:{document.id}"
                )
            except UserError as exc:  # no usable address on file: the documents stand
                log.warning("%s issued, not emailed: %s", document.number, exc.message)
                continue
            if email_id is not None:
                emails.append(email_id)
        await session.execute(
            update(DocumentRequest)
            .where(DocumentRequest.id == row.id)
            .values(state=DONE, document_id=fixed.replacement.id, updated=datetime.now(UTC))
        )
    for email_id in emails:
        await deliver_soon(services, email_id)
    return DONE


async def reissue(services: Services, number: str, *, actor: Actor, reason: str) -> Correction:
    """`reissue <number>`: ask for the correction of one document and carry it out now."""
    old = await find(services.db, number)
    if old is None:
        raise UserError("not_found", f"no document numbered {number}")
    async with services.db.write() as session:
        await request(session, old.content.source_gateway, old.id, reason=reason)
    state = await fulfil(services, old.content.source_gateway, old.id)
    if state == SKIPPED:
        async with services.db.read() as session:
            error = await session.scalar(
                select(DocumentRequest.last_error).where(
                    DocumentRequest.kind == REISSUE, DocumentRequest.source_id == old.id
                )
            )
        raise UserError("not_reissued", error or f"{number} was not re-issued")
    if state == PENDING:
        raise UserError("not_reissued", f"{number}: documents cannot be issued yet")
    return await correct(services, old, actor=actor, reason=reason)  # issued: found again


class ReissueListener(Listener):
    """In automatic mode, corrects this period's documents when a customer's details change."""

    async def record_action(
        self, services: Services, session: AsyncSession, view: ApprovalView
    ) -> None:
        if not _wanted(services, view):
            return
        assert view.customer_id is not None
        for row in await in_period(session, view.gateway, view.customer_id, since=period_start()):
            await request(session, view.gateway, row.id, reason=None)

    async def after_action(self, services: Services, view: ApprovalView) -> None:
        if not _wanted(services, view):
            return
        assert view.customer_id is not None
        async with services.db.read() as session:
            ids = [
                r.id
                for r in await in_period(
                    session, view.gateway, view.customer_id, since=period_start()
                )
            ]
        for document_id in ids:
            await start(services, view.gateway, document_id)


def _wanted(services: Services, view: ApprovalView) -> bool:
    return (
        view.action in DETAIL_ACTIONS
        and services.branding.reissue == "automatic"
        and view.customer_id is not None
    )


async def start(services: Services, gateway: str, document_id: str) -> None:
    """Enqueue the job for a correction; a Redis failure only delays it until the sweep."""
    try:
        await jobs.enqueue(
            services, "reissue_document", gateway, document_id,
            job_id=f"document:{REISSUE}:{gateway}:{document_id}",
        )  # fmt: skip
    except Exception:
        log.warning("could not enqueue the re-issue of %s; the sweep will", document_id)


async def sweep(services: Services) -> int:
    """Re-enqueue every correction still pending (its job lost to a crash); returns how many."""
    async with services.db.read() as session:
        rows = list(
            await session.execute(
                select(DocumentRequest.gateway, DocumentRequest.source_id)
                .where(DocumentRequest.kind == REISSUE, DocumentRequest.state == PENDING)
                .order_by(DocumentRequest.id)
                .limit(500)
            )
        )
    for gateway, document_id in rows:
        await start(services, gateway, document_id)
    return len(rows)


@jobs.job(max_tries=1000)
async def reissue_document(ctx: dict[str, Any], gateway: str, document_id: str) -> str:
    """Job: carry out one correction; transient gateway failures retry with backoff."""
    try:
        return await fulfil(ctx["services"], gateway, document_id)
    except GatewayError:
        raise retry_later(ctx) from None


@jobs.periodic(second=45, run_at_startup=True)
async def sweep_reissues(ctx: dict[str, Any]) -> int:
    """Periodic: re-enqueue pending corrections whose job was lost."""
    return await sweep(ctx["services"])


def _now() -> datetime:
    return datetime.now(UTC)
