"""One billing note on every new ticket, in every helpdesk: recorded once, posted once.

1. A verified delivery (`bot/helpdesk/webhook.py`) records the ticket in `helpdesk_notes`,
   unique by (helpdesk, ticket): a redelivery or a concurrent twin inserts nothing and
   queues nothing. The first one enqueues `post_ticket_note` and the helpdesk hears 200.
2. The job claims the row with a Redis lock and a conditional UPDATE (pending → posting,
   or posting past its lease); only the winner goes on. It matches the customer
   (`matching.py`), writes the note (`summary.py`, `render.py`) with a marker unique to
   the row (`ChargeDesk note cdn_…`) and posts it; then posting → posted.
3. A failed attempt goes back to pending and comes back through arq after a doubling
   delay, up to MAX_ATTEMPTS (then failed, the error kept). A refusal that cannot change
   (bad credentials, no such ticket) fails at once.
4. The outcome of an attempt is unknown when it timed out, or the worker died after the
   helpdesk took the note but before `posted` was written. So every attempt after the
   first asks the helpdesk for a note carrying the marker (`find_note`) before posting,
   and records the one it finds instead of posting a second. A row left in `posting` is
   picked up once its lease has passed.
5. `sweep_ticket_notes` re-enqueues pending rows older than a grace period and posting
   rows past their lease, whatever happened to their jobs (Redis is not the record).
"""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from arq.worker import Retry
from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot import jobs
from bot.helpdesk import registry
from bot.helpdesk.base import Helpdesk, NewTicket
from bot.helpdesk.errors import HelpdeskRefused
from bot.helpdesk.matching import match_ticket
from bot.helpdesk.render import as_html, as_text
from bot.helpdesk.summary import marker, note_card
from bot.job_schedule import job, periodic
from bot.services import Services
from bot.store.tables import HelpdeskNote

log = logging.getLogger(__name__)

PENDING, POSTING, POSTED, FAILED = "pending", "posting", "posted", "failed"
MAX_ATTEMPTS = 8
# Lookups that found nobody while a gateway was down are tried again this many times
# before the note goes out saying which gateway could not be asked.
LOOKUP_ATTEMPTS = 3
RETRY_SECONDS = 10.0  # the first retry's delay; it doubles, up to RETRY_MAX_SECONDS
RETRY_MAX_SECONDS = 900.0
# A job is cut off after JOB_SECONDS; a claim older than LEASE had an outcome nobody knows.
JOB_SECONDS = 90.0
LEASE = timedelta(seconds=150)
# Leave fresh rows to the job their delivery queued.
SWEEP_GRACE = timedelta(seconds=60)
SWEEP_BATCH = 500
# How much of the ticket is kept for matching: IDs are near the top.
SUBJECT_CHARS = 1_000
TEXT_CHARS = 20_000


class RetryLater(Exception):
    def __init__(self, delay: float) -> None:
        super().__init__(f"retry in {delay:g} s")
        self.delay = delay


def job_id(helpdesk: str, ticket_id: str) -> str:
    return f"helpdesk-note:{helpdesk}:{ticket_id}"


# --- 1. the delivery ------------------------------------------------------------------------


async def receive(services: Services, ticket: NewTicket) -> bool:
    """Record a new ticket and queue its note; False (nothing recorded or queued) if known."""
    if not await record(services, ticket):
        log.info("%s ticket %s: already recorded", ticket.helpdesk, ticket.ticket_id)
        return False
    await start(services, ticket.helpdesk, ticket.ticket_id)
    return True


async def record(services: Services, ticket: NewTicket) -> bool:
    """Insert the ticket's row once: True if this call inserted it."""
    async with services.db.write() as session:
        return await _insert(session, ticket)


async def _insert(session: AsyncSession, ticket: NewTicket) -> bool:
    known = await session.scalar(
        select(HelpdeskNote.id).where(
            HelpdeskNote.helpdesk == ticket.helpdesk, HelpdeskNote.ticket_id == ticket.ticket_id
        )
    )
    if known is not None:
        return False
    now = datetime.now(UTC)
    note_id = f"cdn_{secrets.token_hex(10)}"
    try:
        async with session.begin_nested():  # a concurrent twin loses only this insert
            session.add(HelpdeskNote(
                id=note_id, helpdesk=ticket.helpdesk, ticket_id=ticket.ticket_id, state=PENDING,
                attempts=0, marker=marker(note_id),
                requester_email=_cut(ticket.requester_email, 320),
                subject=ticket.subject[:SUBJECT_CHARS], text=ticket.text[:TEXT_CHARS],
                delivery_id=_cut(ticket.delivery_id, 128),
                created=now, updated=now,
            ))  # fmt: skip
    except IntegrityError:
        return False
    return True


def _cut(value: str | None, limit: int) -> str | None:
    return value[:limit] if value else None


async def start(services: Services, helpdesk: str, ticket_id: str) -> None:
    """Enqueue the note's job; a Redis failure only delays it until the sweep."""
    try:
        await jobs.enqueue(
            services, "post_ticket_note", helpdesk, ticket_id, job_id=job_id(helpdesk, ticket_id)
        )
    except Exception:
        log.warning(
            "could not enqueue the note for %s ticket %s now; the sweep will",
            helpdesk, ticket_id, exc_info=True,
        )  # fmt: skip


# --- 2-4. the job ---------------------------------------------------------------------------


@job(max_tries=1000, timeout=JOB_SECONDS)
async def post_ticket_note(ctx: dict[str, Any], helpdesk: str, ticket_id: str) -> str:
    """Post the ticket's note once; a failed attempt comes back through arq after its delay."""
    try:
        return await deliver(ctx["services"], helpdesk, ticket_id)
    except RetryLater as later:
        raise Retry(defer=later.delay) from None


async def deliver(services: Services, helpdesk: str, ticket_id: str) -> str:
    """Claim, match, post, record; returns the row's state (or `busy`, `missing`)."""
    row = await _row(services, helpdesk, ticket_id)
    if row is None:
        # Enqueued before its transaction committed, or rolled back: the sweep finds it if it exists.
        return "missing"
    if row.state in (POSTED, FAILED):
        return row.state
    lock = services.redis.lock(
        services.key("lock", "helpdesk-note", helpdesk, ticket_id),
        timeout=LEASE.total_seconds(),
    )
    if not await lock.acquire(blocking=False):
        return "busy"
    try:
        attempt = await _claim(services, row.id)
        if attempt is None:
            return "busy"
        desk = registry.open_helpdesk(services.settings, helpdesk)
        if desk is None:
            return await _finish(services, row.id, FAILED, error=f"{helpdesk} is not configured")
        try:
            return await _attempt(services, desk, row, attempt)
        finally:
            await desk.close()
    finally:
        try:
            await lock.release()
        except Exception:  # expired (a slow attempt) or Redis gone: the SQL claim still holds
            log.debug("note lock on %s ticket %s not released", helpdesk, ticket_id)


async def _attempt(services: Services, desk: Helpdesk, row: HelpdeskNote, attempt: int) -> str:
    where = f"{row.helpdesk} ticket {row.ticket_id}"
    try:
        if attempt > 1:
            # An earlier attempt may have posted before it failed, timed out or died.
            found = await desk.find_note(row.ticket_id, row.marker)
            if found is not None:
                log.info("%s: note %s was posted by an earlier attempt", where, found)
                return await _finish(services, row.id, POSTED, note_id=found)
        match = await match_ticket(
            services,
            requester_email=row.requester_email,
            subject=row.subject or "",
            text=row.text or "",
        )
        if match.profile is None and match.failures and attempt < LOOKUP_ATTEMPTS:
            down = ", ".join(sorted({f.gateway for f in match.failures}))
            return await _again(services, row, attempt, f"gateways not answering: {down}")
        card = note_card(services, match, requester_email=row.requester_email, mark=row.marker)
        body = as_html(card) if desk.note_format == "html" else as_text(card)
        note_id = await desk.post_note(row.ticket_id, body)
    except HelpdeskRefused as exc:
        log.warning("%s: no note: %s", where, exc.message)
        return await _finish(services, row.id, FAILED, error=exc.message)
    except RetryLater:
        raise
    except Exception as exc:
        message = getattr(exc, "message", None) or type(exc).__name__
        log.warning("%s: note attempt %d failed: %s", where, attempt, message)
        return await _again(services, row, attempt, message)
    log.info("%s: note %s posted (%s)", where, note_id, match.how)
    return await _finish(services, row.id, POSTED, note_id=note_id, matched=match.how)


async def _again(services: Services, row: HelpdeskNote, attempt: int, error: str) -> str:
    """Back to pending to be tried again later, or failed after MAX_ATTEMPTS."""
    if attempt >= MAX_ATTEMPTS:
        log.warning("%s ticket %s: no note after %d attempts", row.helpdesk, row.ticket_id, attempt)
        return await _finish(services, row.id, FAILED, error=error)
    await _finish(services, row.id, PENDING, error=error)
    raise RetryLater(min(RETRY_SECONDS * 2 ** (attempt - 1), RETRY_MAX_SECONDS))


async def _row(services: Services, helpdesk: str, ticket_id: str) -> HelpdeskNote | None:
    async with services.db.read() as session:
        return await session.scalar(
            select(HelpdeskNote).where(
                HelpdeskNote.helpdesk == helpdesk, HelpdeskNote.ticket_id == ticket_id
            )
        )


async def _claim(services: Services, row_id: str) -> int | None:
    """pending → posting, or a posting claim past its lease taken over; the attempt number."""
    now = datetime.now(UTC)
    async with services.db.write() as session:
        claimed = await session.execute(
            update(HelpdeskNote)
            .where(
                HelpdeskNote.id == row_id,
                or_(
                    HelpdeskNote.state == PENDING,
                    and_(HelpdeskNote.state == POSTING, HelpdeskNote.updated < now - LEASE),
                ),
            )
            .values(state=POSTING, attempts=HelpdeskNote.attempts + 1, updated=now)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            return None
        return await session.scalar(select(HelpdeskNote.attempts).where(HelpdeskNote.id == row_id))


async def _finish(
    services: Services,
    row_id: str,
    state: str,
    *,
    note_id: str | None = None,
    matched: str | None = None,
    error: str | None = None,
) -> str:
    """Leave `posting` for `state`; the ticket's text goes once the note is out for good."""
    now = datetime.now(UTC)
    values: dict[str, Any] = {"state": state, "updated": now, "last_error": error}
    if state == POSTED:
        values.update(note_id=note_id, posted_at=now)
        if matched is not None:
            values["matched"] = matched
    if state in (POSTED, FAILED):
        values["text"] = None
    async with services.db.write() as session:
        await session.execute(
            update(HelpdeskNote)
            .where(HelpdeskNote.id == row_id, HelpdeskNote.state == POSTING)
            .values(**values)
        )
    return state


# --- 5. the sweep ---------------------------------------------------------------------------


async def waiting(services: Services, *, now: datetime | None = None) -> list[tuple[str, str]]:
    """(helpdesk, ticket) of rows whose job may be lost: pending past the grace, posting past the lease."""
    now = now or datetime.now(UTC)
    async with services.db.read() as session:
        rows = await session.execute(
            select(HelpdeskNote.helpdesk, HelpdeskNote.ticket_id)
            .where(
                or_(
                    and_(HelpdeskNote.state == PENDING, HelpdeskNote.updated < now - SWEEP_GRACE),
                    and_(HelpdeskNote.state == POSTING, HelpdeskNote.updated < now - LEASE),
                )
            )
            .order_by(HelpdeskNote.updated)
            .limit(SWEEP_BATCH)
        )
        return [(h, t) for h, t in rows]


@periodic(second=30, run_at_startup=True)
async def sweep_ticket_notes(ctx: dict[str, Any]) -> int:
    """Re-enqueue every note still waiting, whatever happened to its job; how many were queued."""
    services: Services = ctx["services"]
    queued = 0
    for helpdesk, ticket_id in await waiting(services):
        if await jobs.enqueue(
            services, "post_ticket_note", helpdesk, ticket_id, job_id=job_id(helpdesk, ticket_id)
        ):
            queued += 1
    if queued:
        log.info("sweep: re-enqueued %d ticket note(s)", queued)
    return queued
