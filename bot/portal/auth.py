"""Who is signed in to the billing pages, and how they appear in the audit log.

A session is a row in SQL (`portal_sessions`: the email, how it was proved, the
link's grant, when it ends); the signed, HttpOnly cookie holds only that row's
ID and email, a random browser ID (the subject of one-time codes), the CSRF
token and the language the reader picked. Every request checks the row, so a
session ends for every copy of its cookie at once: on sign-out, after
`portal.session_hours`, or when the link that opened it (or its email) is
revoked. Signing in starts a fresh session, so nothing from before (a CSRF
token, another customer's email) survives it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.actors import Actor, Role
from bot.audit.log import AuditRecord, append
from bot.keys import signing_key
from bot.services import Services
from bot.store.tables import PortalGrant, PortalSession

SID, EMAIL, BROWSER, LANG = "sid", "email", "browser", "lang"


def browser_id(session: dict[str, Any]) -> str:
    """This browser's random ID: one-time codes are bound to it."""
    value = session.get(BROWSER)
    if not isinstance(value, str):
        value = secrets.token_urlsafe(16)
        session[BROWSER] = value
    return value


async def sign_in(
    services: Services, session: dict[str, Any], email: str, *, via: str, grant: str | None = None
) -> None:
    """Start a fresh session for `email`; only the reader's language choice carries over."""
    now = datetime.now(UTC)
    sid = f"ps_{secrets.token_urlsafe(24)}"
    async with services.db.write() as db:
        await _end(db, session, "replaced", now)
        db.add(PortalSession(
            id=sid, email=email, via=via, grant_id=grant, created=now,
            expires_at=now + timedelta(hours=services.settings.portal.session_hours),
        ))  # fmt: skip
    _clear(session)
    session.update({SID: sid, EMAIL: email, BROWSER: secrets.token_urlsafe(16)})


async def sign_out(services: Services, session: dict[str, Any]) -> None:
    """End the session on the server (a copied cookie opens nothing after) and in this browser."""
    async with services.db.write() as db:
        await _end(db, session, "signed_out", datetime.now(UTC))
    _clear(session)


async def signed_in(services: Services, session: dict[str, Any]) -> str | None:
    """The session's verified email, or None (and the cookie emptied) if it no longer counts.

    It counts while its row is not ended or expired and the link that opened it
    is not revoked (checked here too: a link opened while it was being revoked).
    """
    sid, email = session.get(SID), session.get(EMAIL)
    if not isinstance(sid, str) or not isinstance(email, str):
        if EMAIL in session or SID in session:
            _clear(session)
        return None
    async with services.db.read() as db:
        found = (
            await db.execute(
                select(PortalSession, PortalGrant.revoked_at)
                .outerjoin(PortalGrant, PortalGrant.id == PortalSession.grant_id)
                .where(PortalSession.id == sid)
            )
        ).first()
    if found is not None:
        row, grant_revoked = found
        live = (
            row.ended_at is None
            and row.expires_at > datetime.now(UTC)
            and grant_revoked is None
            and row.email == email
        )
        if live:
            return email
    _clear(session)
    return None


async def _end(db: AsyncSession, session: dict[str, Any], why: str, now: datetime) -> None:
    sid = session.get(SID)
    if isinstance(sid, str):
        await db.execute(
            update(PortalSession)
            .where(PortalSession.id == sid, PortalSession.ended_at.is_(None))
            .values(ended_at=now, ended_why=why)
        )


def _clear(session: dict[str, Any]) -> None:
    language = session.get(LANG)
    session.clear()
    if isinstance(language, str):
        session[LANG] = language


def actor(services: Services, email: str) -> Actor:
    """The customer as the audit log names them: `portal:c<keyed hash>` and their email.

    The ID is stable per email but reveals nothing by itself (keyed with the
    deployment's secret, so a list of emails cannot be hashed to match it).
    """
    digest = hmac.new(signing_key(services.settings), email.encode(), hashlib.sha256).hexdigest()
    return Actor(
        platform="portal",
        id=f"c{digest[:16]}",
        name=email,
        email=email,
        roles=frozenset({Role.customer}),
    )


async def audit(services: Services, email: str, action: str, outcome: str, **fields: Any) -> None:
    """One customer action in the audit log."""
    async with services.db.write() as db:
        await append(
            db, AuditRecord(actor=actor(services, email), action=action, outcome=outcome, **fields)
        )
