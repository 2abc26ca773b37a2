"""Verified identity: who may see which customer's billing.

A chat user (or a browser on the billing pages) proves they read the mailbox of
an email on file by typing back a one-time code sent there. Codes are single
use, expire after CODE_MINUTES, allow MAX_TRIES guesses, and sending them is
rate-limited per asker and per email. Whether an email is on file is never
revealed: the answer is the same either way. A verified chat user gets a link
in SQL (who, which email, when); an agent can revoke it, and with it every
billing-page link and session that came from it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from bot import jobs
from bot.actors import Actor
from bot.audit.log import AuditRecord, append
from bot.billing_links import withdraw
from bot.documents.build import document_locale
from bot.errors import UserError
from bot.keys import code_for, signing_key
from bot.mail import outbox, placeholders
from bot.mail.message import build_message
from bot.models import Customer
from bot.services import Services
from bot.store.tables import CustomerLink, VerificationCode
from bot.translations import gettext

log = logging.getLogger(__name__)

CODE_MINUTES = 10
MAX_TRIES = 5
SENDS_PER_HOUR = 3  # per asker, and per email
CHECKS_PER_HOUR = 20  # per asker, across codes
SENT = "if {email} is on file, a code is on its way there: type `verify <code>` within {minutes} minutes"


def normalize_email(email: str) -> str:
    value = email.strip().lower()
    if value.count("@") != 1 or not value.split("@")[0] or "." not in value.split("@")[1]:
        raise UserError("invalid_email", f"{email!r} is not an email address")
    if any(c.isspace() for c in value) or len(value) > 320:
        raise UserError("invalid_email", f"{email!r} is not an email address")
    return value


async def send_code(
    services: Services, subject: str, email: str, *, language: str | None = None
) -> str:
    """Email a one-time code to `email` if it is on file; the same answer either way.

    The lookup and the email happen in a job, so the answer also takes the same
    time either way. The email is in `language`, else the customer's language.
    """
    email = normalize_email(email)
    await limit(services, "send", subject, SENDS_PER_HOUR, "codes were asked for too often")
    await limit(services, "send-to", email, SENDS_PER_HOUR, "codes were asked for too often")
    await jobs.enqueue(
        services, "send_verification_code", subject, email, language,
        job_id=f"code:{secrets.token_hex(8)}",
    )  # fmt: skip
    return SENT.format(email=email, minutes=CODE_MINUTES)


async def issue_code(
    services: Services, subject: str, email: str, language: str | None = None
) -> str | None:
    """Make a code for `subject` and queue its email, if `email` is on file; the email's ID."""
    customer = await customer_on_file(services, email)
    if customer is None:
        log.info("verification asked by %s for an email not on file", subject)
        return None
    language = language or document_locale(customer, services.settings.locale)[1]
    return await queue_code(services, subject, email, language)


async def queue_code(services: Services, subject: str, email: str, language: str) -> str | None:
    """Make a code for `subject` and queue its email to `email`, whoever owns it; the email's ID.

    The caller decides who may be sent a code (`issue_code`: an email on file; the agent
    panel: the agent's own helpdesk email). `check_code` checks what comes back.
    """
    code_id = f"vc_{secrets.token_hex(10)}"
    code = code_for(services, code_id)
    now = datetime.now(UTC)
    # The `verification` messages of the catalogs. The subject names no code: subjects show in
    # notifications, lock screens and mail logs.
    subject_line = gettext(language, "verification", "subject")
    # The code goes in when the email is sent (bot/mail/placeholders.py): only its HMAC is stored.
    body = gettext(
        language, "verification", "body", code=placeholders.code(code_id), minutes=CODE_MINUTES
    )
    message = build_message(
        settings=services.settings,
        sender_name=services.branding.entity_for("ledger")[1].legal_name,
        to=email,
        subject=subject_line,
        text=body,
    )
    async with services.db.write() as session:
        # A new code replaces the asker's older ones.
        await session.execute(
            update(VerificationCode)
            .where(VerificationCode.subject == subject, VerificationCode.used_at.is_(None))
            .values(used_at=now)
        )
        session.add(VerificationCode(
            id=code_id, subject=subject, email=email, code_hash=_hash(services, code_id, code),
            created=now, expires_at=now + timedelta(minutes=CODE_MINUTES), attempts=0,
        ))  # fmt: skip
        email_id = await outbox.queue(
            session,
            purpose=f"code:{code_id}",
            recipient=email,
            subject=subject_line,
            message=message,
        )
    if email_id is not None:
        try:
            await jobs.enqueue_email(services, email_id)
        except Exception:
            log.warning("could not enqueue code email %s now; the sweeper sends it", email_id)
    return email_id


@jobs.job(max_tries=3)
async def send_verification_code(
    ctx: dict[str, Any], subject: str, email: str, language: str | None
) -> str:
    """Job: the code for a `send_code` request, emailed if the address is on file."""
    email_id = await issue_code(ctx["services"], subject, email, language)
    return "queued" if email_id else "not on file"


async def check_code(services: Services, subject: str, code: str) -> str:
    """The email a correct code proves; raises UserError saying what is wrong, never which email."""
    code = "".join(code.split())
    if not code.isdigit() or len(code) != 6:
        raise UserError("invalid_code", "a code is six digits, as in the email")
    await limit(services, "check", subject, CHECKS_PER_HOUR, "too many codes were tried")
    now = datetime.now(UTC)
    async with services.db.write() as session:
        row = await session.scalar(
            select(VerificationCode)
            .where(VerificationCode.subject == subject, VerificationCode.used_at.is_(None))
            .order_by(VerificationCode.created.desc())
            .limit(1)
        )
        if row is None:
            raise UserError(
                "no_code", "no code is waiting: ask for one with `verify <email>` first"
            )
        if row.expires_at <= now:
            raise UserError(
                "code_expired", "that code expired: ask for a new one with `verify <email>`"
            )
        right = hmac.compare_digest(row.code_hash, _hash(services, row.id, code))
        tries = row.attempts + 1
        # Conditional: two guesses at once cannot both be the fifth, nor both use the code.
        taken = await session.execute(
            update(VerificationCode)
            .where(VerificationCode.id == row.id, VerificationCode.attempts == row.attempts,
                   VerificationCode.used_at.is_(None))
            .values(attempts=tries, used_at=now if right or tries >= MAX_TRIES else None)
        )  # fmt: skip
        if taken.rowcount != 1:  # type: ignore[attr-defined]
            raise UserError("try_again", "another try of this code is under way: try again")
        email = row.email
    if not right:
        left = MAX_TRIES - tries
        if left <= 0:
            raise UserError("code_used_up", "that code was wrong too often: ask for a new one")
        raise UserError("wrong_code", f"that code is not right: {left} tries left")
    return email


async def verify(services: Services, actor: Actor, code: str) -> str:
    """Complete a chat user's verification: link them to the email the code proves."""
    email = await check_code(services, actor.key, code)
    now = datetime.now(UTC)
    async with services.db.write() as session:
        before = await session.scalars(
            update(CustomerLink)
            .where(CustomerLink.actor_key == actor.key, CustomerLink.revoked_at.is_(None))
            .values(revoked_at=now, revoked_by="replaced")
            .returning(CustomerLink.email)
        )
        # The billing-page links this user got for another email go with that link.
        for other in set(before) - {email}:
            await withdraw(session, email=other, issued_by=actor.key, why="replaced")
        session.add(
            CustomerLink(actor_key=actor.key, actor_name=actor.name, email=email, verified_at=now)
        )
        await append(session, AuditRecord(
            actor=actor, action="customer_verified", outcome="linked",
            detail={"email": email, "via": "email_code"},
        ))  # fmt: skip
    return email


async def linked_email(services: Services, actor: Actor) -> str | None:
    """The email a chat user verified, or None: then they see nobody's billing."""
    async with services.db.read() as session:
        return await session.scalar(
            select(CustomerLink.email)
            .where(CustomerLink.actor_key == actor.key, CustomerLink.revoked_at.is_(None))
            .order_by(CustomerLink.verified_at.desc())
            .limit(1)
        )


@dataclass(frozen=True)
class Revoked:
    """What one `revoke` ended: chat links, billing-page links (grants) and page sessions."""

    links: int
    grants: int
    sessions: int

    def __bool__(self) -> bool:
        return bool(self.links or self.grants or self.sessions)


async def revoke(
    services: Services, agent: Actor, who: str, *, reason: str | None = None
) -> Revoked:
    """Revoke a chat user's (`slack:U123`) or an email's access to its billing, at once.

    A chat user: their links, and the billing-page links they were given with
    `portal`, with every session those opened. An email: everyone's links to it,
    every billing-page link to it (from chat or in document emails), every
    session on it, and the codes still waiting to be typed.
    """
    by_email = "@" in who
    value = normalize_email(who) if by_email else who.strip()
    column = CustomerLink.email if by_email else CustomerLink.actor_key
    now = datetime.now(UTC)
    async with services.db.write() as session:
        result = await session.execute(
            update(CustomerLink)
            .where(column == value, CustomerLink.revoked_at.is_(None))
            .values(revoked_at=now, revoked_by=agent.key)
        )
        count = int(result.rowcount or 0)  # type: ignore[attr-defined]
        if by_email:
            grants, sessions = await withdraw(session, email=value)
            await session.execute(
                update(VerificationCode)
                .where(VerificationCode.email == value, VerificationCode.used_at.is_(None))
                .values(used_at=now)
            )
        else:
            grants, sessions = await withdraw(session, issued_by=value)
        revoked = Revoked(links=count, grants=grants, sessions=sessions)
        if revoked:
            await append(session, AuditRecord(
                actor=agent, action="customer_unlinked", outcome="revoked", reason=reason,
                detail={"who": value, "links": count, "page_links": grants, "sessions": sessions},
            ))  # fmt: skip
    return revoked


async def links(services: Services, who: str) -> list[CustomerLink]:
    """Active links of a chat user or an email, newest first (for agents)."""
    column = CustomerLink.email if "@" in who else CustomerLink.actor_key
    value = who.strip().lower() if "@" in who else who.strip()
    async with services.db.read() as session:
        rows = await session.scalars(
            select(CustomerLink)
            .where(column == value, CustomerLink.revoked_at.is_(None))
            .order_by(CustomerLink.verified_at.desc())
        )
        return list(rows)


async def customer_on_file(services: Services, email: str) -> Customer | None:
    """A customer with exactly this email in any gateway, or None."""
    profile = await services.gateways.lookup(email)
    return next(
        (p.customer for p in profile.profiles if (p.customer.email or "").lower() == email), None
    )


def _hash(services: Services, code_id: str, code: str) -> str:
    return hmac.new(
        signing_key(services.settings), f"{code_id}:{code}".encode(), hashlib.sha256
    ).hexdigest()


async def limit(services: Services, action: str, who: str, per_hour: int, why: str) -> None:
    """Count one `action` by `who` this hour; UserError rate_limited past `per_hour`."""
    key = services.key("limit", action, hashlib.sha256(who.encode()).hexdigest()[:32])
    count = await services.redis.incr(key)
    if count == 1:
        await services.redis.expire(key, 3600)
    if count > per_hour:
        ttl = await services.redis.ttl(key)
        minutes = max(1, (ttl if ttl and ttl > 0 else 3600) // 60)
        log.warning("rate limit: %s %s", action, who if action != "send-to" else "(an email)")
        raise UserError("rate_limited", f"{why}: try again in {minutes} minutes")
