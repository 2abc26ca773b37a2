"""Who is signed in to the billing pages, and how they appear in the audit log.

The session (a signed, HttpOnly cookie) holds only: the verified email and
when it was verified, how (link or code) and the link's grant ID, a random
browser ID (the subject of one-time codes), the CSRF token and the language the
reader picked. Signing in starts a fresh session, so nothing from before
(a CSRF token, another customer's email) survives it. A session ends after
`portal.session_hours`, on sign-out, or when the link that opened it is revoked.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Any

from sqlalchemy import select

from bot.actors import Actor, Role
from bot.app import Services
from bot.audit.log import AuditRecord, append
from bot.keys import signing_key
from bot.store.tables import PortalGrant

EMAIL, SINCE, VIA, GRANT, BROWSER, LANG = "email", "since", "via", "grant", "browser", "lang"


def browser_id(session: dict[str, Any]) -> str:
    """This browser's random ID: one-time codes are bound to it."""
    value = session.get(BROWSER)
    if not isinstance(value, str):
        value = secrets.token_urlsafe(16)
        session[BROWSER] = value
    return value


def sign_in(session: dict[str, Any], email: str, *, via: str, grant: str | None = None) -> None:
    """Start a fresh session for `email`; only the reader's language choice carries over."""
    language = session.get(LANG)
    session.clear()
    if isinstance(language, str):
        session[LANG] = language
    session.update(
        {EMAIL: email, SINCE: int(time.time()), VIA: via, BROWSER: secrets.token_urlsafe(16)}
    )
    if grant is not None:
        session[GRANT] = grant


def sign_out(session: dict[str, Any]) -> None:
    language = session.get(LANG)
    session.clear()
    if isinstance(language, str):
        session[LANG] = language


async def signed_in(services: Services, session: dict[str, Any]) -> str | None:
    """The session's verified email, or None (and the session ended) if it no longer counts."""
    email, since = session.get(EMAIL), session.get(SINCE)
    if not isinstance(email, str) or not isinstance(since, int):
        return None
    if time.time() - since > services.settings.portal.session_hours * 3600:
        sign_out(session)
        return None
    grant = session.get(GRANT)
    if isinstance(grant, str):
        async with services.db.read() as db:
            revoked = await db.scalar(select(PortalGrant.revoked_at).where(PortalGrant.id == grant))
        if revoked is not None:
            sign_out(session)
            return None
    return email


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
