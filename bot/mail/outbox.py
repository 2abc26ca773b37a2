"""The durable email queue, in SQL: an email exists exactly when its cause does, and is sent once.

`queue` adds the email inside the caller's transaction. `deliver` claims it
with a conditional UPDATE (pending → sending), sends, and records the outcome
under that claim; a claim older than its lease (a worker that died mid-send) is
taken over. The job queue only says *when* to try: the rows here say *what*.

Secrets (billing links, one-time codes) are not stored: the message holds
placeholders that `deliver` fills in at each try (`bot/mail/placeholders.py`).

The one window left is SMTP's own: a server that accepted the message before
the process died (and before `sent` was written) gets it again when the claim
is taken over, under the same Message-ID, which receivers use to spot repeats.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import TYPE_CHECKING

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from bot.mail import placeholders, transport
from bot.mail.transport import PermanentFailure, TemporaryFailure
from bot.settings import MailSettings, Settings
from bot.store.db import Database
from bot.store.tables import EmailRow

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)

PENDING = "pending"
SENDING = "sending"
SENT = "sent"
FAILED = "failed"
BUSY = "busy"  # returned by `deliver` when another deliverer holds the claim

MAX_RETRY_DELAY = 3600.0
DEFAULT_LEASE = timedelta(seconds=2 * MailSettings().timeout)


class RetryLater(Exception):
    """A temporary failure: the email is pending again and should be tried after `delay` seconds."""

    def __init__(self, delay: float, reason: str) -> None:
        super().__init__(f"retry in {delay:g}s: {reason}")
        self.delay = delay
        self.reason = reason


@dataclass(frozen=True)
class EmailStatus:
    id: str
    purpose: str
    document_id: str | None
    recipient: str
    subject: str
    state: str
    attempts: int
    last_error: str | None
    created: datetime
    sent_at: datetime | None


def lease(settings: Settings) -> timedelta:
    """How long a claim holds: twice the time one send may take."""
    return timedelta(seconds=2 * settings.mail.timeout)


def retry_delay(settings: Settings, attempts: int) -> float:
    """Seconds before the next try after `attempts` failed ones: doubling, at most an hour."""
    return min(settings.mail.retry_seconds * 2 ** max(attempts - 1, 0), MAX_RETRY_DELAY)


async def queue(
    session: AsyncSession,
    *,
    purpose: str,
    recipient: str,
    subject: str,
    message: EmailMessage,
    document_id: str | None = None,
) -> str | None:
    """Queue an email in the caller's transaction; its id, or None if `purpose` already has one.

    The caller enqueues the send job after committing (`bot.jobs.enqueue_email`);
    if that never happens, the sweeper finds the email anyway.
    """
    if await session.scalar(select(EmailRow.id).where(EmailRow.purpose == purpose)) is not None:
        return None
    email_id = f"em_{secrets.token_hex(10)}"
    try:
        # A savepoint: losing a race on the unique purpose undoes this insert only,
        # not the caller's transaction.
        async with session.begin_nested():
            session.add(
                EmailRow(
                    id=email_id,
                    purpose=purpose,
                    document_id=document_id,
                    recipient=recipient,
                    subject=subject[:300],
                    message=message.as_bytes(),
                    state=PENDING,
                    attempts=0,
                    created=_now(),
                )
            )
    except IntegrityError:
        return None
    return email_id


async def deliver(services: Services, email_id: str) -> str:
    """Send one queued email unless it is sent, failed or being sent; returns its state (or "busy").

    Raises RetryLater after a temporary failure (the email is pending again) and
    LookupError for an unknown id.
    """
    settings = services.settings
    claimed_at = _now()
    async with services.db.write() as session:
        result = await session.execute(
            update(EmailRow)
            .where(EmailRow.id == email_id, _claimable(claimed_at, lease(settings)))
            # Counted at the claim, so a deliverer dying mid-send still uses up an attempt.
            .values(state=SENDING, claimed_at=claimed_at, attempts=EmailRow.attempts + 1)
            .execution_options(synchronize_session=False)
        )
        row = await session.get(EmailRow, email_id)
        if row is None:
            raise LookupError(f"no email {email_id}")
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return row.state if row.state in (SENT, FAILED) else BUSY
        purpose, attempts = row.purpose, row.attempts
        message, recipient = row.message, row.recipient

    claim = _Claim(services.db, email_id, purpose, claimed_at, attempts)
    try:
        # Links and codes are made now, from their rows: the stored message has placeholders.
        message = await placeholders.render(services, message, recipient)
        where = await transport.send(
            settings,
            message,
            sender=settings.mail.from_address,
            recipients=[recipient],
            email_id=email_id,
        )
    except PermanentFailure as exc:
        return await claim.fail(str(exc))
    except TemporaryFailure as exc:
        return await claim.retry_or_fail(settings, str(exc))
    except Exception as exc:
        # Not a failure the transport knows: keep the email and try again, loudly.
        log.exception("email %s (%s): unexpected error while sending", email_id, purpose)
        return await claim.retry_or_fail(settings, f"{type(exc).__name__}: {exc}")
    return await claim.sent(where)


async def pending_ids(
    db: Database, limit: int = 100, *, lease: timedelta = DEFAULT_LEASE
) -> list[str]:
    """Emails waiting for a send, oldest first: pending, or claimed longer ago than `lease`."""
    async with db.read() as session:
        rows = await session.scalars(
            select(EmailRow.id)
            .where(_claimable(_now(), lease))
            .order_by(EmailRow.created, EmailRow.id)
            .limit(limit)
        )
        return list(rows)


async def status(db: Database, email_id: str) -> EmailStatus | None:
    """Where one email stands, or None if there is no such email."""
    async with db.read() as session:
        row = await session.get(EmailRow, email_id)
        if row is None:
            return None
        return EmailStatus(
            id=row.id,
            purpose=row.purpose,
            document_id=row.document_id,
            recipient=row.recipient,
            subject=row.subject,
            state=row.state,
            attempts=row.attempts,
            last_error=row.last_error,
            created=row.created,
            sent_at=row.sent_at,
        )


@dataclass
class _Claim:
    """One deliverer's hold on an email; each outcome is written only while the hold is still ours."""

    db: Database
    email_id: str
    purpose: str
    claimed_at: datetime
    attempts: int

    async def sent(self, where: str) -> str:
        if not await self._finish(state=SENT, sent_at=_now(), last_error=None):
            log.warning(
                "email %s (%s) was sent, but its claim had been taken over meanwhile "
                "(a send outlasted the lease)",
                self.email_id,
                self.purpose,
            )
        log.info("email %s (%s) sent: %s", self.email_id, self.purpose, where)
        return SENT

    async def fail(self, error: str) -> str:
        if await self._finish(state=FAILED, last_error=error[:2000]):
            log.error(
                "email %s (%s) failed after %d attempt(s): %s",
                self.email_id,
                self.purpose,
                self.attempts,
                error,
            )
            return FAILED
        return BUSY

    async def retry_or_fail(self, settings: Settings, error: str) -> str:
        if self.attempts >= settings.mail.max_attempts:
            return await self.fail(error)
        if not await self._finish(state=PENDING, last_error=error[:2000]):
            return BUSY
        delay = retry_delay(settings, self.attempts)
        log.warning(
            "email %s (%s): attempt %d failed, retrying in %gs: %s",
            self.email_id,
            self.purpose,
            self.attempts,
            delay,
            error,
        )
        raise RetryLater(delay, error)

    async def _finish(self, **values: object) -> bool:
        async with self.db.write() as session:
            result = await session.execute(
                update(EmailRow)
                .where(
                    EmailRow.id == self.email_id,
                    EmailRow.state == SENDING,
                    EmailRow.claimed_at == self.claimed_at,
                )
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            return result.rowcount == 1  # type: ignore[attr-defined]


def _claimable(now: datetime, lease: timedelta) -> ColumnElement[bool]:
    return or_(
        EmailRow.state == PENDING,
        and_(
            EmailRow.state == SENDING,
            or_(EmailRow.claimed_at.is_(None), EmailRow.claimed_at < now - lease),
        ),
    )


def _now() -> datetime:
    return datetime.now(UTC)
