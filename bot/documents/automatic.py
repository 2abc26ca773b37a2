"""Receipts after payments and credit notes after refunds, without anyone asking.

A payment or refund writes a `document_requests` row in the same transaction
that records it: the webhook event, the refund the bot executed, or the ledger
import. A job then issues the document (once per charge or refund, however often
it runs), queues its email and marks the request done. Redis only says *when*:
the sweeper re-enqueues every request still pending, so none is lost.

Which gateways get documents is set in branding.toml (`receipts`,
`credit_notes`). Until branding.toml names the seller, requests stay pending
(their error says what to write) and the sweep leaves them alone; once it does,
the next start's sweep issues them.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from arq.worker import Retry
from sqlalchemy import ColumnElement, Select, insert, literal, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot import jobs
from bot.actors import SYSTEM
from bot.approvals.actions import planned_refund
from bot.approvals.workflow import ApprovalView
from bot.documents import on_demand
from bot.documents.config import Branding, SellerMissing, require_seller
from bot.documents.issue import IssuedDocument
from bot.documents.mailing import deliver_soon, queue_document_email
from bot.documents.model import DocumentKind
from bot.errors import UserError
from bot.gateways.base import ErrorCode, GatewayError
from bot.gateways.events import EventKind, GatewayEvent
from bot.gateways.ledger.importer import NewMoney, OnWrite
from bot.gateways.ledger.mapping import NAME as LEDGER
from bot.services import Listener, Services
from bot.store.tables import DocumentRequest, UTCDateTime

log = logging.getLogger(__name__)

PENDING, DONE, SKIPPED = "pending", "done", "skipped"
MAX_ATTEMPTS = 10
# Answers that may change on their own: the gateway was down, or does not list a fresh refund yet.
_TRANSIENT = (ErrorCode.unavailable, ErrorCode.timeout, ErrorCode.rate_limited, ErrorCode.not_found)
# Leave fresh requests to the job their cause already queued.
SWEEP_GRACE = timedelta(seconds=60)


def payment_charge(event: GatewayEvent) -> str | None:
    """The charge a payment event is about: its object, or a payment intent's latest charge."""
    if event.raw_type.startswith("payment_intent."):
        return event.related_id
    return event.object_id


def _event_request(event: GatewayEvent) -> tuple[DocumentKind, str, str] | None:
    """(kind, charge, source) of the document an event calls for, if any."""
    if event.kind == EventKind.payment_succeeded:
        charge = payment_charge(event)
        return (DocumentKind.receipt, charge, charge) if charge else None
    # A refund event that names only its charge (the refund is unknown yet) waits for the next.
    if event.kind == EventKind.refund and event.related_id and event.object_id != event.related_id:
        return DocumentKind.credit_note, event.related_id, event.object_id
    return None


class DocumentListener(Listener):
    """Requests receipts for payments and credit notes for refunds, wherever they come from."""

    async def record_event(
        self, services: Services, session: AsyncSession, event: GatewayEvent
    ) -> None:
        wanted = _event_request(event)
        if wanted is not None:
            kind, charge, source = wanted
            await request(
                services, session, kind, event.gateway, charge_id=charge, source_id=source
            )

    async def after_event(self, services: Services, event: GatewayEvent) -> None:
        wanted = _event_request(event)
        if wanted is not None:
            kind, _, source = wanted
            await start(services, kind, event.gateway, source)

    async def record_action(
        self, services: Services, session: AsyncSession, view: ApprovalView
    ) -> None:
        charge = _refunded(view)
        if charge is not None and view.result_id:
            await request(
                services, session, DocumentKind.credit_note, view.gateway,
                charge_id=charge, source_id=view.result_id, reason=view.reason,
            )  # fmt: skip

    async def after_action(self, services: Services, view: ApprovalView) -> None:
        if _refunded(view) is not None and view.result_id:
            await start(services, DocumentKind.credit_note, view.gateway, view.result_id)


def _refunded(view: ApprovalView) -> str | None:
    """The charge a succeeded action gave money back on, whose refund is its result: a
    refund's, or a cancellation's that refunded (`cancel ... now and-refund`). None for one a
    gateway carried out as a void of the whole payment (Braintree before settlement), whose
    result is the payment itself and moved no money, so it has no credit note."""
    planned = planned_refund(view) if view.action == "cancel" else None
    charge = view.target_id if view.action == "refund" else planned and planned.charge_id
    return charge if charge and view.result_id and view.result_id != charge else None


# Requests are written and jobs queued in batches: one row and one job per payment made a
# 100,000-charge import take minutes, most of it in the import's write transaction.
_BULK = 1_000


def import_recorder(services: Services) -> OnWrite:
    """For `import_file(on_write=...)`: request documents for the payments and refunds an import adds."""

    async def record(session: AsyncSession, added: NewMoney) -> None:
        if added.payment_rows is not None and added.refund_rows is not None:
            await request_selected(
                services, session, DocumentKind.receipt, LEDGER, added.payment_rows
            )
            await request_selected(
                services, session, DocumentKind.credit_note, LEDGER, added.refund_rows
            )
            return
        await request_many(services, session, DocumentKind.receipt, LEDGER,
                           [(charge, charge, None) for charge in added.payments])  # fmt: skip
        await request_many(services, session, DocumentKind.credit_note, LEDGER,
                           [(charge, refund, reason) for charge, refund, reason in added.refunds])  # fmt: skip

    return record


async def start_imported(services: Services, added: NewMoney) -> None:
    """After the import committed: start the jobs it requested, a batch of sources per job."""
    await start_many(services, DocumentKind.receipt, LEDGER, added.payments)
    await start_many(services, DocumentKind.credit_note, LEDGER, [r for _, r, _ in added.refunds])


async def request_many(
    services: Services,
    session: AsyncSession,
    kind: DocumentKind,
    gateway: str,
    wanted: Sequence[tuple[str, str, str | None]],
) -> None:
    """`request` for many (charge, source, reason) at once: one statement per batch, and a
    source already asked for is left as it is (the table's uniqueness decides, not a read)."""
    if not wanted or not services.branding.automatic(kind.value, gateway):
        return
    dialect = session.bind.dialect.name
    upsert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    statement = upsert(DocumentRequest).on_conflict_do_nothing(
        index_elements=["kind", "gateway", "source_id"]
    )
    now = datetime.now(UTC)
    for start_at in range(0, len(wanted), _BULK):
        await session.execute(statement, [
            {"kind": kind.value, "gateway": gateway, "source_id": source, "charge_id": charge,
             "reason": reason, "state": PENDING, "attempts": 0, "created": now, "updated": now}
            for charge, source, reason in wanted[start_at : start_at + _BULK]
        ])  # fmt: skip


async def request_selected(
    services: Services,
    session: AsyncSession,
    kind: DocumentKind,
    gateway: str,
    wanted: Select[Any],
) -> None:
    """`request` for every (charge_id, source_id, reason) row `wanted` selects, in one
    `INSERT ... SELECT`; a source already asked for is left as it is."""
    if not services.branding.automatic(kind.value, gateway):
        return
    rows = wanted.subquery()
    asked = select(DocumentRequest.id).where(
        DocumentRequest.kind == kind.value,
        DocumentRequest.gateway == gateway,
        DocumentRequest.source_id == rows.c.source_id,
    )
    now = datetime.now(UTC)
    query = select(
        literal(kind.value), literal(gateway), rows.c.source_id, rows.c.charge_id, rows.c.reason,
        literal(PENDING), literal(0), literal(now, UTCDateTime), literal(now, UTCDateTime),
    ).where(~asked.exists())  # fmt: skip
    columns = ["kind", "gateway", "source_id", "charge_id", "reason", "state", "attempts",
               "created", "updated"]  # fmt: skip
    await session.execute(insert(DocumentRequest).from_select(columns, query))


async def start_many(
    services: Services, kind: DocumentKind, gateway: str, source_ids: Sequence[str]
) -> None:
    """Enqueue `issue_documents` jobs of up to _BULK sources; a Redis failure leaves it to the sweep."""
    for start_at in range(0, len(source_ids), _BULK):
        chunk = list(source_ids[start_at : start_at + _BULK])
        digest = hashlib.sha256("\n".join(chunk).encode()).hexdigest()[:24]
        await _enqueue_or_leave(
            services, "issue_documents", kind.value, gateway, chunk,
            job_id=f"documents:{kind.value}:{gateway}:{digest}",
            what=f"{len(chunk)} {kind.value}s",
        )  # fmt: skip


async def _enqueue_or_leave(
    services: Services, name: str, *args: Any, job_id: str, what: str
) -> None:
    """Enqueue a document job; a Redis failure only delays it until the sweep."""
    try:
        await jobs.enqueue(services, name, *args, job_id=job_id)
    except Exception:
        log.warning("could not enqueue %s now; the sweep will", what, exc_info=True)


async def request(
    services: Services,
    session: AsyncSession,
    kind: DocumentKind,
    gateway: str,
    *,
    charge_id: str,
    source_id: str,
    reason: str | None = None,
) -> bool:
    """Ask for a document in the caller's transaction; False if not wanted or already asked."""
    if not services.branding.automatic(kind.value, gateway):
        return False
    existing = await session.scalar(
        select(DocumentRequest.id).where(
            DocumentRequest.kind == kind.value,
            DocumentRequest.gateway == gateway,
            DocumentRequest.source_id == source_id,
        )
    )
    if existing is not None:
        return False
    now = datetime.now(UTC)
    try:
        async with session.begin_nested():  # a concurrent twin loses only this insert
            session.add(DocumentRequest(
                kind=kind.value, gateway=gateway, source_id=source_id, charge_id=charge_id,
                reason=reason, state=PENDING, attempts=0, created=now, updated=now,
            ))  # fmt: skip
    except IntegrityError:
        return False
    return True


async def start(services: Services, kind: DocumentKind, gateway: str, source_id: str) -> None:
    """Enqueue the job for a request; a Redis failure only delays it until the sweep."""
    await _enqueue_or_leave(
        services, "issue_document", kind.value, gateway, source_id,
        job_id=f"document:{kind.value}:{gateway}:{source_id}", what=f"{kind.value} for {source_id}",
    )  # fmt: skip


async def fulfil(services: Services, kind: DocumentKind, gateway: str, source_id: str) -> str:
    """Issue the requested document, queue its email, mark the request done; returns its state.

    Raises GatewayError for a transient gateway answer (the job retries), until
    MAX_ATTEMPTS, after which the request is skipped with the error kept. Without a
    seller in branding.toml the request stays pending, with the refusal as its error.
    """
    async with services.db.read() as session:
        row = await session.scalar(
            select(DocumentRequest).where(
                DocumentRequest.kind == kind.value,
                DocumentRequest.gateway == gateway,
                DocumentRequest.source_id == source_id,
            )
        )
    if row is None or row.state != PENDING:
        return row.state if row is not None else "missing"
    try:
        require_seller(services.branding, gateway)  # before asking any gateway
        document = await _issue(services, row)
    except SellerMissing as exc:
        return await _wait_for_seller(services, row, exc)
    except UserError as exc:  # a GatewayError too
        return await failed(services, row, exc)
    email_id = None
    async with services.db.write() as session:
        if document.customer_email or document.content.buyer.email:
            try:
                email_id = await queue_document_email(
                    services, session, document, purpose=f"auto:{document.id}"
                )
            except UserError as exc:  # an unusable address on file: the document stands
                log.warning("%s issued, not emailed: %s", document.number, exc.message)
        await session.execute(
            update(DocumentRequest)
            .where(DocumentRequest.id == row.id)
            .values(state=DONE, document_id=document.id, updated=datetime.now(UTC))
        )
    if email_id is not None:
        await deliver_soon(services, email_id)
    return DONE


async def _issue(services: Services, row: DocumentRequest) -> IssuedDocument:
    ref = f"{row.gateway}:{row.charge_id}"
    if row.kind == DocumentKind.receipt.value:
        return await on_demand.receipt(services, ref, actor=SYSTEM)
    return await on_demand.credit_note(
        services, ref, row.source_id, actor=SYSTEM, reason=row.reason
    )


async def failed(
    services: Services,
    row: DocumentRequest,
    exc: UserError,
    *,
    transient: tuple[ErrorCode, ...] = _TRANSIENT,
) -> str:
    """A failed attempt at a document request: a gateway failure that may pass is raised
    again, so the job retries, until MAX_ATTEMPTS; anything else skips the request with its
    reason kept as its error."""
    if isinstance(exc, GatewayError) and exc.code in transient and row.attempts + 1 < MAX_ATTEMPTS:
        await _mark(services, row.id, PENDING, error=exc.message, attempt=True)
        raise exc
    log.warning("no %s for %s:%s: %s", row.kind, row.gateway, row.source_id, exc.message)
    await _mark(services, row.id, SKIPPED, error=exc.message, attempt=True)
    return SKIPPED


# Messages already logged: every payment meets the same missing seller, one warning says it.
_told: set[str] = set()


async def _wait_for_seller(services: Services, row: DocumentRequest, exc: SellerMissing) -> str:
    """Keep the request pending, its attempts untouched: it is issued once a seller is set."""
    if exc.message not in _told:
        _told.add(exc.message)
        log.warning("%s; document requests stay pending until then", exc.message)
    if row.last_error != exc.message:
        await _mark(services, row.id, PENDING, error=exc.message, attempt=False)
    return PENDING


def _has_seller(branding: Branding) -> ColumnElement[bool]:
    """Requests whose gateway's entity names a seller: the others wait for branding.toml."""
    named = {g: branding.entities[key].has_seller for g, key in branding.gateways.items()}
    if branding.entities[branding.default_entity].has_seller:
        return DocumentRequest.gateway.not_in([g for g, ok in named.items() if not ok])
    return DocumentRequest.gateway.in_([g for g, ok in named.items() if ok])


async def _mark(
    services: Services, request_id: int, state: str, *, error: str, attempt: bool
) -> None:
    async with services.db.write() as session:
        await session.execute(
            update(DocumentRequest)
            .where(DocumentRequest.id == request_id)
            .values(
                state=state,
                last_error=error,
                attempts=DocumentRequest.attempts + (1 if attempt else 0),
                updated=datetime.now(UTC),
            )
        )


async def sweep(services: Services, now: datetime | None = None) -> int:
    """Re-enqueue every request still pending a while after it was made; returns how many."""
    cutoff = (now or datetime.now(UTC)) - SWEEP_GRACE
    async with services.db.read() as session:
        rows = list(
            await session.execute(
                select(DocumentRequest.kind, DocumentRequest.gateway, DocumentRequest.source_id)
                .where(DocumentRequest.state == PENDING, DocumentRequest.updated <= cutoff)
                .where(DocumentRequest.kind.in_([k.value for k in DocumentKind]))  # not reissues
                .where(_has_seller(services.branding))  # no job per payment per sweep to refuse
                .order_by(DocumentRequest.id)
                .limit(500)
            )
        )
    for kind, gateway, source_id in rows:
        await start(services, DocumentKind(kind), gateway, source_id)
    return len(rows)


@jobs.job(max_tries=1)
async def issue_documents(
    ctx: dict[str, Any], kind: str, gateway: str, source_ids: list[str]
) -> int:
    """Job: fulfil a batch of document requests; one that meets a transient gateway failure
    goes on as its own `issue_document` job, which retries with backoff."""
    services: Services = ctx["services"]
    done = 0
    for source_id in source_ids:
        try:
            await fulfil(services, DocumentKind(kind), gateway, source_id)
            done += 1
        except GatewayError:
            await start(services, DocumentKind(kind), gateway, source_id)
    return done


# SQL counts the attempts and decides when to give up (MAX_ATTEMPTS), not arq.
@jobs.job(max_tries=1000)
async def issue_document(ctx: dict[str, Any], kind: str, gateway: str, source_id: str) -> str:
    """Job: fulfil one document request; transient gateway failures retry with backoff."""
    services: Services = ctx["services"]
    try:
        return await fulfil(services, DocumentKind(kind), gateway, source_id)
    except GatewayError:
        raise retry_later(ctx) from None


def retry_later(ctx: dict[str, Any]) -> Retry:
    """A document job's transient gateway failure: run it again, backing off up to an hour."""
    tries = int(ctx.get("job_try") or 1)
    return Retry(defer=min(30 * 2 ** (tries - 1), 3600))


@jobs.periodic(second=30, run_at_startup=True)
async def sweep_documents(ctx: dict[str, Any]) -> int:
    """Periodic: re-enqueue pending document requests whose job was lost."""
    return await sweep(ctx["services"])
