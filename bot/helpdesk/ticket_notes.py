"""Internal notes on helpdesk tickets, in every helpdesk: each recorded once, posted once.

A ticket carries one note per topic: `billing`, the billing summary every new ticket gets,
and the traces of actions taken from the agent panel (`ticket_trace.py`: `reply:<id>`,
`decided:<approval id>`). Every topic goes the same way; only what the note says differs.

1. A verified delivery (`bot/helpdesk/webhook.py`) records the ticket in `helpdesk_notes`,
   unique by (helpdesk, ticket, topic): a redelivery or a concurrent twin inserts nothing
   and queues nothing. The first one enqueues `post_ticket_note` and the helpdesk hears 200.
   A trace is recorded the same way (`add`), its note already written, marker and all.
2. The job claims the row with a Redis lock and a conditional UPDATE (pending → posting,
   or posting past its lease); only the winner goes on. For the billing note it matches
   the customer (`matching.py`) and writes the note (`summary.py`, `render.py`); a trace
   posts the body it was recorded with. Each carries a marker unique to the row
   (`ChargeDesk note cdn_…`); then posting → posted, and the body is dropped.
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
BILLING = "billing"  # the topic of a new ticket's billing note
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


class _Waiting(Exception):
    """The note cannot be written well yet (a gateway did not answer): try again later."""


def job_id(helpdesk: str, ticket_id: str, topic: str = BILLING) -> str:
    # Ticket IDs never hold `:` (`errors.segment`), so the topic after them keeps ids apart.
    base = f"helpdesk-note:{helpdesk}:{ticket_id}"
    return base if topic == BILLING else f"{base}:{topic}"


def _job_args(helpdesk: str, ticket_id: str, topic: str) -> tuple[str, ...]:
    # The billing note's job keeps its two arguments: jobs queued before topics still run.
    return (helpdesk, ticket_id) if topic == BILLING else (helpdesk, ticket_id, topic)


def _where(helpdesk: str, ticket_id: str, topic: str) -> str:
    return f"{helpdesk} ticket {ticket_id}" + ("" if topic == BILLING else f" ({topic})")


# --- 1. recording ---------------------------------------------------------------------------


# Letters only: the marker is written into the note, and a run of 13 to 19 digits that passes
# the Luhn check would be masked there as a card number, leaving the note unfindable.
_ID_LETTERS = "abcdefghijkmnpqrstuvwxyz"  # 24 letters, 20 of them: about 92 bits


def draft(helpdesk: str, ticket_id: str, topic: str, **written: str | None) -> HelpdeskNote:
    """A new, unrecorded row for `topic` on a ticket, with its own ID and marker."""
    now = datetime.now(UTC)
    note_id = "cdn_" + "".join(secrets.choice(_ID_LETTERS) for _ in range(20))
    return HelpdeskNote(
        id=note_id, helpdesk=helpdesk, ticket_id=ticket_id, topic=topic, state=PENDING,
        attempts=0, marker=marker(note_id), created=now, updated=now, **written,
    )  # fmt: skip


def _billing(ticket: NewTicket) -> HelpdeskNote:
    """A new ticket's billing note: what the delivery said, kept for matching until posted."""
    return draft(
        ticket.helpdesk, ticket.ticket_id, BILLING,
        requester_email=_cut(ticket.requester_email, 320),
        subject=ticket.subject[:SUBJECT_CHARS], text=ticket.text[:TEXT_CHARS],
        delivery_id=_cut(ticket.delivery_id, 128),
    )  # fmt: skip


async def receive(services: Services, ticket: NewTicket) -> bool:
    """Record a new ticket and queue its note; False (nothing recorded or queued) if known."""
    return await add(services, _billing(ticket))


async def add(services: Services, row: HelpdeskNote) -> bool:
    """Record a drafted note and queue it; False (nothing recorded or queued) if its topic is known."""
    if not await _record(services, row):
        log.info("%s: already recorded", _where(row.helpdesk, row.ticket_id, row.topic))
        return False
    await start(services, row.helpdesk, row.ticket_id, row.topic)
    return True


async def record(services: Services, ticket: NewTicket) -> bool:
    """Insert the ticket's billing row once (not queued): True if this call inserted it."""
    return await _record(services, _billing(ticket))


async def _record(services: Services, row: HelpdeskNote) -> bool:
    async with services.db.write() as session:
        return await _insert(session, row)


async def _insert(session: AsyncSession, row: HelpdeskNote) -> bool:
    known = await session.scalar(
        select(HelpdeskNote.id).where(
            HelpdeskNote.helpdesk == row.helpdesk,
            HelpdeskNote.ticket_id == row.ticket_id,
            HelpdeskNote.topic == row.topic,
        )
    )
    if known is not None:
        return False
    try:
        async with session.begin_nested():  # a concurrent twin loses only this insert
            session.add(row)
    except IntegrityError:
        return False
    return True


def _cut(value: str | None, limit: int) -> str | None:
    return value[:limit] if value else None


async def start(services: Services, helpdesk: str, ticket_id: str, topic: str = BILLING) -> None:
    """Enqueue the note's job; a Redis failure only delays it until the sweep."""
    try:
        await jobs.enqueue(
            services, "post_ticket_note", *_job_args(helpdesk, ticket_id, topic),
            job_id=job_id(helpdesk, ticket_id, topic),
        )  # fmt: skip
    except Exception:
        log.warning(
            "could not enqueue the note for %s now; the sweep will",
            _where(helpdesk, ticket_id, topic), exc_info=True,
        )  # fmt: skip


# --- 2-4. the job ---------------------------------------------------------------------------


@job(max_tries=1000, timeout=JOB_SECONDS)
async def post_ticket_note(
    ctx: dict[str, Any], helpdesk: str, ticket_id: str, topic: str = BILLING
) -> str:
    """Post the ticket's note on `topic` once; a failed attempt comes back after its delay."""
    try:
        return await deliver(ctx["services"], helpdesk, ticket_id, topic)
    except RetryLater as later:
        raise Retry(defer=later.delay) from None


async def deliver(services: Services, helpdesk: str, ticket_id: str, topic: str = BILLING) -> str:
    """Claim, write, post, record; returns the row's state (or `busy`, `missing`)."""
    row = await _row(services, helpdesk, ticket_id, topic)
    if row is None:
        # Enqueued before its transaction committed, or rolled back: the sweep finds it if it exists.
        return "missing"
    if row.state in (POSTED, FAILED):
        return row.state
    # One lock per note: the billing note and a trace on one ticket do not wait for each other.
    lock = services.redis.lock(
        services.key("lock", "helpdesk-note", row.id), timeout=LEASE.total_seconds()
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
            log.debug("note lock on %s not released", _where(helpdesk, ticket_id, topic))


async def _attempt(services: Services, desk: Helpdesk, row: HelpdeskNote, attempt: int) -> str:
    where = _where(row.helpdesk, row.ticket_id, row.topic)
    if row.topic != BILLING and not row.body:
        return await _finish(services, row.id, FAILED, error="the note has no body to post")
    try:
        if attempt > 1:
            # An earlier attempt may have posted before it failed, timed out or died.
            found = await desk.find_note(row.ticket_id, row.marker)
            if found is not None:
                log.info("%s: note %s was posted by an earlier attempt", where, found)
                return await _finish(services, row.id, POSTED, note_id=found)
        body, matched = await _write(services, desk, row, attempt)
        note_id = await desk.post_note(row.ticket_id, body)
    except HelpdeskRefused as exc:
        log.warning("%s: no note: %s", where, exc.message)
        return await _finish(services, row.id, FAILED, error=exc.message)
    except _Waiting as wait:
        return await _again(services, row, attempt, str(wait))
    except Exception as exc:
        message = getattr(exc, "message", None) or type(exc).__name__
        log.warning("%s: note attempt %d failed: %s", where, attempt, message)
        return await _again(services, row, attempt, message)
    log.info("%s: note %s posted%s", where, note_id, f" ({matched})" if matched else "")
    return await _finish(services, row.id, POSTED, note_id=note_id, matched=matched)


async def _write(
    services: Services, desk: Helpdesk, row: HelpdeskNote, attempt: int
) -> tuple[str, str | None]:
    """The note's body, and how the customer was matched (billing) or None (a trace)."""
    if row.topic != BILLING:
        assert row.body is not None  # `_attempt` fails a trace without one
        return row.body, None
    match = await match_ticket(
        services,
        requester_email=row.requester_email,
        subject=row.subject or "",
        text=row.text or "",
    )
    if match.profile is None and match.failures and attempt < LOOKUP_ATTEMPTS:
        down = ", ".join(sorted({f.gateway for f in match.failures}))
        raise _Waiting(f"gateways not answering: {down}")
    card = note_card(services, match, requester_email=row.requester_email, mark=row.marker)
    return (as_html(card) if desk.note_format == "html" else as_text(card)), match.how


async def _again(services: Services, row: HelpdeskNote, attempt: int, error: str) -> str:
    """Back to pending to be tried again later, or failed after MAX_ATTEMPTS."""
    if attempt >= MAX_ATTEMPTS:
        where = _where(row.helpdesk, row.ticket_id, row.topic)
        log.warning("%s: no note after %d attempts", where, attempt)
        return await _finish(services, row.id, FAILED, error=error)
    await _finish(services, row.id, PENDING, error=error)
    raise RetryLater(min(RETRY_SECONDS * 2 ** (attempt - 1), RETRY_MAX_SECONDS))


async def _row(
    services: Services, helpdesk: str, ticket_id: str, topic: str
) -> HelpdeskNote | None:
    async with services.db.read() as session:
        return await session.scalar(
            select(HelpdeskNote).where(
                HelpdeskNote.helpdesk == helpdesk,
                HelpdeskNote.ticket_id == ticket_id,
                HelpdeskNote.topic == topic,
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
    """Leave `posting` for `state`; the ticket's text and the body go once it is over for good."""
    now = datetime.now(UTC)
    values: dict[str, Any] = {"state": state, "updated": now, "last_error": error}
    if state == POSTED:
        values.update(note_id=note_id, posted_at=now)
        if matched is not None:
            values["matched"] = matched
    if state in (POSTED, FAILED):
        values.update(text=None, body=None)
    async with services.db.write() as session:
        await session.execute(
            update(HelpdeskNote)
            .where(HelpdeskNote.id == row_id, HelpdeskNote.state == POSTING)
            .values(**values)
        )
    return state


# --- 5. the sweep ---------------------------------------------------------------------------


async def waiting(services: Services, *, now: datetime | None = None) -> list[tuple[str, str, str]]:
    """(helpdesk, ticket, topic) of notes whose job may be lost: pending past the grace,
    posting past the lease."""
    now = now or datetime.now(UTC)
    async with services.db.read() as session:
        rows = await session.execute(
            select(HelpdeskNote.helpdesk, HelpdeskNote.ticket_id, HelpdeskNote.topic)
            .where(
                or_(
                    and_(HelpdeskNote.state == PENDING, HelpdeskNote.updated < now - SWEEP_GRACE),
                    and_(HelpdeskNote.state == POSTING, HelpdeskNote.updated < now - LEASE),
                )
            )
            .order_by(HelpdeskNote.updated)
            .limit(SWEEP_BATCH)
        )
        return [(h, t, topic) for h, t, topic in rows]


@periodic(second=30, run_at_startup=True)
async def sweep_ticket_notes(ctx: dict[str, Any]) -> int:
    """Re-enqueue every note still waiting, whatever happened to its job; how many were queued."""
    services: Services = ctx["services"]
    queued = 0
    for helpdesk, ticket_id, topic in await waiting(services):
        if await jobs.enqueue(
            services, "post_ticket_note", *_job_args(helpdesk, ticket_id, topic),
            job_id=job_id(helpdesk, ticket_id, topic),
        ):  # fmt: skip
            queued += 1
    if queued:
        log.info("sweep: re-enqueued %d ticket note(s)", queued)
    return queued
