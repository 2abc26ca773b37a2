"""Remembered browsers: an agent who proved their email in an unvouched panel is not asked
again in that browser, for `[panel] trusted_days`.

Front opens a new panel session on every plugin load (its URL is the same each time, so a
load cannot be told from a replay), and a Freshdesk app's front end can name any agent:
those sessions show nothing until the agent confirms their email (`confirm.py`). So that
they do not type a code on every load:

- After a code comes back, `remember` writes a `panel_browsers` row (helpdesk, agent email,
  expiry) and its cookie is set: `chargedesk_panel_browser=<row id>.<HMAC of the ID with the
  deployment's key>`, `Path=/panel; HttpOnly; Secure; SameSite=None; Partitioned` (CHIPS:
  kept apart per helpdesk site, like the session's). The email is never in the cookie, and
  a row ID seen in the audit log opens nothing without the key.
- When a later entry opens an unvouched session (`session.open_session`), `confirm_session`
  reads that cookie: if its HMAC holds and its row is for the same helpdesk and the same
  email, not revoked, not past its expiry (nor `trusted_days` after it was made, should the
  setting shrink), the session opens confirmed, in one transaction with its audit entry
  (`panel_email_confirmed`, via `trusted_browser`). Anything else (another email, expired,
  revoked, forged) confirms nothing: the code step again.
- `forget` revokes a row (the agent signs out with "forget this browser", or a newer
  confirmation in the same browser replaces it) and ends the sessions it confirmed;
  `forget_agent` does it for every row of an email. Each grant and revocation is audited
  (`panel_browser_trusted`, `panel_browser_forgotten`).
- A remembered browser proves an email, nothing more: roles still come from
  `[helpdesk.<name>]` on every request, so removing the email there takes effect at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from bot.actors import Actor, normalize_identity
from bot.audit.log import AuditRecord, append
from bot.keys import signing_key
from bot.services import Services
from bot.settings import Settings
from bot.store.tables import PanelBrowserRow, PanelSessionRow

log = logging.getLogger(__name__)

COOKIE = "chargedesk_panel_browser"
PATH = "/panel"  # every panel address: the entries read it, the sign-out clears it
_MAC = b"chargedesk:panel-browser:"
_ID = re.compile(r"pb_[A-Za-z0-9_-]{24}")


def _mac(settings: Settings, browser_id: str) -> str:
    digest = hmac.new(signing_key(settings), _MAC + browser_id.encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()).decode().rstrip("=")


def cookie_value(settings: Settings, browser_id: str) -> str:
    """What the browser's cookie holds: the row ID and its HMAC with the deployment's key."""
    return f"{browser_id}.{_mac(settings, browser_id)}"


def named(settings: Settings, value: str | None) -> str | None:
    """The row ID a cookie value names, if its HMAC is ours; None for anything else."""
    browser_id, _, given = (value or "").partition(".")
    if not _ID.fullmatch(browser_id) or len(given) > 64:
        return None
    if not hmac.compare_digest(_mac(settings, browser_id).encode(), given.encode()):
        return None
    return browser_id


def cookie_header(settings: Settings, browser_id: str) -> str:
    """The Set-Cookie value that makes this browser remembered (`[panel] trusted_days`)."""
    max_age = settings.panel.trusted_days * 86400
    return (
        f"{COOKIE}={cookie_value(settings, browser_id)}; Path={PATH}; Max-Age={max_age}; "
        "HttpOnly; Secure; SameSite=None; Partitioned"
    )


def clear_header() -> str:
    """The Set-Cookie value that drops this browser's cookie."""
    return f"{COOKIE}=; Path={PATH}; Max-Age=0; HttpOnly; Secure; SameSite=None; Partitioned"


def _live(settings: Settings, row: PanelBrowserRow, now: datetime) -> bool:
    days = settings.panel.trusted_days
    return (
        days > 0
        and row.revoked_at is None
        and row.expires_at > now
        and row.created > now - timedelta(days=days)
    )


async def remember(
    services: Services, request: Request, actor: Actor, helpdesk: str, email: str, session_id: str
) -> str | None:
    """Remember this browser for `email` in `helpdesk` (its code just came back): the row, its
    audit entry, and the Set-Cookie value to send; None when `trusted_days` is 0.

    A row the browser held before (another email, say) is revoked: one browser, one cookie."""
    settings = services.settings
    if settings.panel.trusted_days == 0:
        return None
    before = named(settings, request.cookies.get(COOKIE))
    if before is not None:
        await forget(services, before, actor, "replaced")
    now = datetime.now(UTC)
    row = PanelBrowserRow(
        id=f"pb_{secrets.token_urlsafe(18)}",
        helpdesk=helpdesk,
        agent_email=normalize_identity(email),
        created=now,
        expires_at=now + timedelta(days=settings.panel.trusted_days),
        revoked_at=None,
    )
    async with services.db.write() as db:
        db.add(row)
        await append(db, AuditRecord(
            actor=actor, action="panel_browser_trusted", outcome="trusted",
            detail={"helpdesk": helpdesk, "browser": row.id, "session": session_id,
                    "days": settings.panel.trusted_days},
        ))  # fmt: skip
    log.info("panel %s: this browser is remembered as %s", session_id, row.id)
    return cookie_header(settings, row.id)


async def confirm_session(
    services: Services, request: Request, actor: Actor, helpdesk: str, email: str, session_id: str
) -> str | None:
    """Open an unvouched session confirmed if this browser is remembered for its helpdesk and
    email: the row ID that vouched, or None (nothing changed)."""
    settings = services.settings
    browser_id = named(settings, request.cookies.get(COOKIE))
    if browser_id is None:
        return None
    now = datetime.now(UTC)
    async with services.db.write() as db:
        # Locked, so a revocation committing now cannot slip between this check and the update.
        row = await db.scalar(
            select(PanelBrowserRow).where(PanelBrowserRow.id == browser_id).with_for_update()
        )
        if row is None or not _live(settings, row, now):
            return None
        if row.helpdesk != helpdesk or row.agent_email != normalize_identity(email):
            log.info(
                "panel %s: the remembered browser is another agent's: not confirmed", session_id
            )
            return None
        done = await db.execute(
            update(PanelSessionRow)
            .where(
                PanelSessionRow.id == session_id,
                PanelSessionRow.ended_at.is_(None),
                PanelSessionRow.confirmed_at.is_(None),
            )
            .values(confirmed_at=now, trusted_browser=browser_id)
        )
        if int(done.rowcount or 0) != 1:  # type: ignore[attr-defined]
            return None
        await append(db, AuditRecord(
            actor=actor, action="panel_email_confirmed", outcome="confirmed",
            detail={"helpdesk": helpdesk, "session": session_id, "via": "trusted_browser",
                    "browser": browser_id},
        ))  # fmt: skip
    return browser_id


async def forget(services: Services, browser_id: str, actor: Actor, why: str) -> bool:
    """Revoke a remembered browser and end the sessions it confirmed; whether it was live."""
    now = datetime.now(UTC)
    async with services.db.write() as db:
        revoked = await db.execute(
            update(PanelBrowserRow)
            .where(PanelBrowserRow.id == browser_id, PanelBrowserRow.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        if int(revoked.rowcount or 0) != 1:  # type: ignore[attr-defined]
            return False
        await _end_sessions(db, [browser_id], now)
        await append(db, AuditRecord(
            actor=actor, action="panel_browser_forgotten", outcome=why[:40],
            detail={"browser": browser_id},
        ))  # fmt: skip
    return True


async def forget_agent(services: Services, email: str, actor: Actor, why: str) -> int:
    """Revoke every remembered browser of one agent email (and end what they confirmed)."""
    now = datetime.now(UTC)
    address = normalize_identity(email)
    async with services.db.write() as db:
        ids = list(
            await db.scalars(
                select(PanelBrowserRow.id).where(
                    PanelBrowserRow.agent_email == address, PanelBrowserRow.revoked_at.is_(None)
                )
            )
        )
        if not ids:
            return 0
        await db.execute(
            update(PanelBrowserRow).where(PanelBrowserRow.id.in_(ids)).values(revoked_at=now)
        )
        await _end_sessions(db, ids, now)
        await append(db, AuditRecord(
            actor=actor, action="panel_browser_forgotten", outcome=why[:40],
            detail={"browsers": ids, "agent": address},
        ))  # fmt: skip
    return len(ids)


async def _end_sessions(db: AsyncSession, browser_ids: list[str], now: datetime) -> None:
    await db.execute(
        update(PanelSessionRow)
        .where(PanelSessionRow.trusted_browser.in_(browser_ids), PanelSessionRow.ended_at.is_(None))
        .values(ended_at=now, ended_why="browser_forgotten")
    )
