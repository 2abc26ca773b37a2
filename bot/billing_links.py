"""Billing-page links: `<base_url>/portal/l/<grant>.<expiry>.<signature>`.

Core, not part of the portal door: commands and document emails issue links,
emails are filled in with them at send time (`bot/mail/placeholders.py`), and
the portal (`bot/portal/app.py`) opens them.

The link carries no customer data: only the ID of a `portal_grants` row (which
holds the email), its expiry, and an HMAC-SHA256 over both with the
deployment's key (`bot/keys.py`). A forged or altered link fails the signature;
an expired one leads to sign-in by email code; a grant can be revoked, which
ends the sessions it opened too (`withdraw`).

Since the signature is computed from the row and the key, a link is never
stored: an email names its grant (`placeholder`) and the link is made at send
time (`render`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.errors import UserError
from bot.keys import signing_key
from bot.services import Services
from bot.store.tables import PortalGrant, PortalSession


class LinkRefused(UserError):
    """A link that opens nothing: `forged` (bad signature or shape), `expired` or `revoked`."""


def _signature(key: bytes, grant_id: str, expires: int) -> str:
    digest = hmac.new(key, f"{grant_id}.{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def token(key: bytes, grant_id: str, expires: datetime) -> str:
    stamp = int(expires.timestamp())
    return f"{grant_id}.{stamp}.{_signature(key, grant_id, stamp)}"


async def issue_link(services: Services, email: str, *, issued_by: str) -> str:
    """A new link to `email`'s billing pages, valid `portal.link_days` days."""
    async with services.db.write() as session:
        return await add_link(services, session, email, issued_by=issued_by)


async def add_link(services: Services, session: AsyncSession, email: str, *, issued_by: str) -> str:
    """`issue_link` inside the caller's transaction (an email and its link exist together)."""
    now = datetime.now(UTC)
    expires = now + timedelta(days=services.settings.portal.link_days)
    grant_id = f"pg_{secrets.token_urlsafe(18)}"
    session.add(PortalGrant(
        id=grant_id, email=email.lower(), created=now, expires_at=expires, issued_by=issued_by,
    ))  # fmt: skip
    return url(services, grant_id, expires)


def url(services: Services, grant_id: str, expires: datetime) -> str:
    """The link of a grant, made from the row and the key (so it need never be stored)."""
    base = services.settings.portal.base_url.rstrip("/")
    return f"{base}/portal/l/{token(signing_key(services.settings), grant_id, expires)}"


def grant_of(link: str) -> str:
    """The grant ID a link names (not a secret: it opens nothing without the signature)."""
    return link.rsplit("/", 1)[-1].split(".", 1)[0]


async def open_link(services: Services, value: str, *, now: datetime | None = None) -> str:
    """The email a link opens; raises LinkRefused (checked in this order: shape, signature, expiry)."""
    parts = value.split(".")
    if len(parts) != 3 or not parts[1].isdigit():
        raise LinkRefused("forged", "this link is not one of ours")
    grant_id, stamp, signature = parts[0], int(parts[1]), parts[2]
    expected = _signature(signing_key(services.settings), grant_id, stamp)
    if not hmac.compare_digest(expected, signature):
        raise LinkRefused("forged", "this link is not one of ours")
    if stamp <= int((now or datetime.now(UTC)).timestamp()):
        raise LinkRefused("expired", "this link has expired")
    async with services.db.read() as session:
        grant = await session.scalar(select(PortalGrant).where(PortalGrant.id == grant_id))
    if grant is None or grant.revoked_at is not None:
        raise LinkRefused("revoked", "this link was withdrawn")
    return grant.email


async def withdraw(
    session: AsyncSession,
    *,
    email: str | None = None,
    issued_by: str | None = None,
    grants: list[str] | None = None,
    why: str = "revoked",
) -> tuple[int, int]:
    """Revoke grants, and end every session they opened; (grants, sessions) ended.

    `email`: every grant to that email, and every session on it (signed in by
    link or by code). `issued_by`: the grants one chat user was given with
    `portal`. `grants`: those IDs. Conditions combine with AND; at least one is needed.
    """
    if email is None and issued_by is None and grants is None:
        raise ValueError("withdraw: name an email, an issuer or grants")
    now = datetime.now(UTC)
    which = []
    if email is not None:
        which.append(PortalGrant.email == email.lower())
    if issued_by is not None:
        which.append(PortalGrant.issued_by == issued_by)
    if grants is not None:
        which.append(PortalGrant.id.in_(grants))
    revoked = await session.execute(
        update(PortalGrant)
        .where(*which, PortalGrant.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    # Sessions of these grants, revoked now or before (ending one twice changes nothing).
    opened = PortalSession.grant_id.in_(select(PortalGrant.id).where(*which))
    if email is not None and issued_by is None and grants is None:
        opened = opened | (PortalSession.email == email.lower())
    ended = await session.execute(
        update(PortalSession)
        .where(opened, PortalSession.ended_at.is_(None))
        .values(ended_at=now, ended_why=why)
        .execution_options(synchronize_session=False)
    )
    return int(revoked.rowcount or 0), int(ended.rowcount or 0)  # type: ignore[attr-defined]
