"""Issue a document: number it gaplessly, render it, store it, never change it.

The number comes from `document_series` in the same transaction that stores the
document, so a failure anywhere rolls the number back with it: numbers have no
gaps, on SQLite (BEGIN IMMEDIATE) and on PostgreSQL (the series row is locked by
the UPDATE until commit). A source object (charge, gateway invoice, refund) gets
one document of each kind: asking again returns the one already issued.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.actors import Actor
from bot.audit.log import AuditRecord, append
from bot.documents.model import DocumentContent, DocumentKind
from bot.money import Money
from bot.store.db import Database
from bot.store.tables import DocumentRow, DocumentSeries

log = logging.getLogger(__name__)

Renderer = Callable[[DocumentContent], bytes]
# Runs inside the issuing transaction: whatever it writes exists exactly when the document does.
OnIssue = Callable[[AsyncSession, "IssuedDocument"], Awaitable[None]]


@dataclass(frozen=True)
class IssuedDocument:
    id: str
    content: DocumentContent
    pdf: bytes
    customer_email: str | None
    new: bool  # False when it had been issued before

    @property
    def number(self) -> str:
        return self.content.number

    @property
    def kind(self) -> DocumentKind:
        return self.content.kind

    @property
    def filename(self) -> str:
        return f"{self.number}.pdf"

    @property
    def gross(self) -> Money:
        return self.content.money(self.content.gross)


def format_number(prefix: str, year: int, seq: int) -> str:
    """`INV-2026-000042`: the year is for people; the sequence never restarts."""
    return f"{prefix}-{year}-{seq:06d}"


async def issue(
    db: Database,
    draft: DocumentContent,
    *,
    prefix: str,
    render: Renderer,
    actor: Actor,
    related_id: str | None = None,
    on_issue: OnIssue | None = None,
) -> IssuedDocument:
    """Number, render and store `draft`, or return the document already issued for its source."""
    existing = await find_by_source(db, draft.kind, draft.source_gateway, draft.source_id)
    if existing is not None:
        return existing
    for _ in range(5):
        try:
            return await _issue_once(db, draft, prefix, render, actor, related_id, on_issue)
        except IntegrityError:
            # Another process issued this source's document, or created the series row,
            # at the same moment; our transaction (and its number) rolled back.
            existing = await find_by_source(db, draft.kind, draft.source_gateway, draft.source_id)
            if existing is not None:
                return existing
    raise RuntimeError(f"could not issue a {draft.kind} for {draft.source_id}: kept colliding")


async def _issue_once(
    db: Database,
    draft: DocumentContent,
    prefix: str,
    render: Renderer,
    actor: Actor,
    related_id: str | None,
    on_issue: OnIssue | None,
) -> IssuedDocument:
    async with db.write() as session:
        seq = await _next_number(session, draft.entity, draft.kind)
        content = draft.model_copy(
            update={"number": format_number(prefix, draft.issued_at.astimezone(UTC).year, seq)}
        )
        pdf = render(content)
        digest = hashlib.sha256(pdf).hexdigest()
        document = IssuedDocument(
            id=f"doc_{secrets.token_hex(10)}",
            content=content,
            pdf=pdf,
            customer_email=content.buyer.email,
            new=True,
        )
        session.add(_row(document, seq, digest, related_id))
        await session.flush()
        await append(
            session,
            AuditRecord(
                actor=actor,
                action=f"issue_{content.kind.value}",
                outcome="issued",
                gateway=content.source_gateway,
                object_id=content.source_id,
                customer_id=content.customer_id,
                amount=content.money(content.gross),
                detail={"number": content.number, "document_id": document.id, "sha256": digest},
            ),
        )
        if on_issue is not None:
            await on_issue(session, document)
    log.info("issued %s %s for %s", content.kind.value, content.number, content.source_id)
    return document


async def _next_number(session: AsyncSession, entity: str, kind: DocumentKind) -> int:
    """The next number in the series, taken inside the caller's transaction."""
    taken = await session.scalar(
        update(DocumentSeries)
        .where(DocumentSeries.entity == entity, DocumentSeries.kind == kind.value)
        .values(last=DocumentSeries.last + 1)
        .returning(DocumentSeries.last)
    )
    if taken is not None:
        return int(taken)
    session.add(DocumentSeries(entity=entity, kind=kind.value, last=1))
    await session.flush()  # a concurrent first issue collides here and retries
    return 1


def _row(document: IssuedDocument, seq: int, digest: str, related_id: str | None) -> DocumentRow:
    content = document.content
    return DocumentRow(
        id=document.id,
        entity=content.entity,
        kind=content.kind.value,
        seq=seq,
        number=content.number,
        source_gateway=content.source_gateway,
        source_id=content.source_id,
        customer_id=content.customer_id,
        customer_email=(content.buyer.email or "").lower() or None,
        related_id=related_id,
        currency=content.currency,
        net=content.net,
        tax=content.tax,
        gross=content.gross,
        treatment=content.treatment.value,
        country=content.buyer.country,
        language=content.language,
        issued_at=content.issued_at,
        content=content.model_dump(mode="json"),
        pdf=document.pdf,
        sha256=digest,
    )


def _issued(row: DocumentRow) -> IssuedDocument:
    return IssuedDocument(
        id=row.id,
        content=DocumentContent.model_validate(row.content),
        pdf=row.pdf,
        customer_email=row.customer_email,
        new=False,
    )


async def find_by_source(
    db: Database, kind: DocumentKind, gateway: str, source_id: str
) -> IssuedDocument | None:
    async with db.read() as session:
        row = await session.scalar(
            select(DocumentRow).where(
                DocumentRow.kind == kind.value,
                DocumentRow.source_gateway == gateway,
                DocumentRow.source_id == source_id,
            )
        )
        return _issued(row) if row is not None else None


async def find(db: Database, ref: str) -> IssuedDocument | None:
    """A document by its number (`INV-2026-000042`) or ID (`doc_...`)."""
    column = DocumentRow.id if ref.startswith("doc_") else DocumentRow.number
    async with db.read() as session:
        row = await session.scalar(select(DocumentRow).where(column == ref))
        return _issued(row) if row is not None else None


async def current(db: Database, document: IssuedDocument) -> IssuedDocument:
    """The last re-issue of `document` (bot/documents/reissue.py), or itself if never corrected:
    a re-issued document's source is the document it replaces."""
    while True:
        newer = await find_by_source(
            db, document.kind, document.content.source_gateway, document.id
        )
        if newer is None:
            return document
        document = newer
