"""The agent panel's own session: opened once by a signed entry, carried by a cookie after it.

Only the first request of an embedded panel carries the helpdesk's signature (a Zendesk
JWT, Front's `auth_secret`, our signed URL). `open_session` turns that verified `Entry`
into a row of `panel_sessions` and a cookie, and every later request shows the cookie.

- One session per entry: the entry's `token_id` is claimed by a unique column in the same
  transaction that writes the row, so a replayed entry opens nothing (`EntryRefused`).
- Each session has its own address, `/panel/s/<session id>/…`, and its cookie is scoped
  to that path: two tickets open side by side in one helpdesk keep two sessions, and a
  page of one ticket never shows another ticket's customer.
- The cookie is an HMAC of the session ID with the deployment's key (`bot.keys`), set for
  a cross-site iframe: `HttpOnly; Secure; SameSite=None; Partitioned` (CHIPS: the browser
  keeps it apart per helpdesk site). Knowing a session ID from a log opens nothing.
- Every request reads the row: an ended session (signed out, ended from the server) or
  one past `[panel] session_hours` opens nothing, whatever cookie comes with it.
- Roles are worked out again on every request from `[helpdesk.<name>]` (agents, managers,
  admins, by email, through `bot.helpdesk.agents.helpdesk_actor`): removing someone from
  the configuration takes effect on their next click.
- A session whose helpdesk did not vouch for the agent's email (`Entry.vouched` False:
  Front's shared plugin secret, a Freshdesk app's front end) is not `admitted`: it shows
  no billing data at all and its person has no staff role, until `confirm()` marks the
  email proved (a one-time code, `confirm.py`, or a browser remembered after one,
  `browsers.py`) and that email is listed in `[helpdesk.<name>]` (an unvouched email
  nobody listed proves only that someone reads that mailbox: still nothing shown).
- The CSRF token of a session is another HMAC of its ID: every form carries it.

For other modules of the panel: `current(request)` is the live session of a request under
`/panel/s/{sid}/` (None when there is none), `actor(settings, session)` its person with
roles, `csrf_token(settings, session_id)` what a form must carry, `url(session_id, page)`
the address of one of its pages.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from bot.actors import SYSTEM, Actor, Role, normalize_identity
from bot.helpdesk.agents import NAME_CHARS, helpdesk_actor, roles_for
from bot.keys import signing_key
from bot.panel import browsers
from bot.panel.entry import Entry, EntryRefused
from bot.services import Services
from bot.settings import Settings
from bot.store.tables import PanelSessionRow
from bot.translations import LANGUAGES

log = logging.getLogger(__name__)

ROOT = "/panel"
COOKIE = "chargedesk_panel"
# The helpdesks that open the panel: the iframe apps, and Help Scout's sidebar links.
HELPDESKS = ("zendesk", "front", "freshdesk", "helpscout")
TICKET_CHARS = 54  # stored as "<helpdesk>:<ticket>" where approval copies are (64 characters)
EMAIL_CHARS = 320
_COOKIE_MAC = b"chargedesk:panel-session:"
_CSRF_MAC = b"chargedesk:panel-csrf:"
_ENTRY_KEY = b"chargedesk:panel-entry:"


@dataclass(frozen=True)
class PanelSession:
    """A live panel session: who the helpdesk said is at the screen, and which ticket."""

    id: str
    helpdesk: str
    agent_email: str
    agent_name: str | None
    ticket: str | None
    requester: str | None
    vouched: bool
    confirmed: bool
    language: str | None
    expires_at: datetime
    listed: bool = False  # the email has a role in `[helpdesk.<name>]` now (read on load)

    @property
    def trusted(self) -> bool:
        """Whether the agent's email is proved (by the helpdesk, or by a code)."""
        return self.vouched or self.confirmed

    @property
    def admitted(self) -> bool:
        """Whether this session may see billing data: its helpdesk vouched for the agent, or
        the agent proved an email `[helpdesk.<name>]` lists."""
        return self.vouched or (self.confirmed and self.listed)

    @property
    def root(self) -> str:
        return url(self.id)


def url(session_id: str, page: str = "") -> str:
    """The address of one of a session's pages (`card`, `approvals`…)."""
    return f"{ROOT}/s/{session_id}/{page}"


def _mac(settings: Settings, purpose: bytes, session_id: str) -> str:
    digest = hmac.new(signing_key(settings), purpose + session_id.encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()).decode().rstrip("=")


def cookie_value(settings: Settings, session_id: str) -> str:
    """What the session's cookie holds: the session ID signed with the deployment's key."""
    return _mac(settings, _COOKIE_MAC, session_id)


def csrf_token(settings: Settings, session_id: str) -> str:
    """The token every form of this session carries."""
    return _mac(settings, _CSRF_MAC, session_id)


def cookie_header(settings: Settings, session_id: str) -> str:
    """The Set-Cookie value for a cross-site iframe (a helpdesk's sidebar)."""
    max_age = settings.panel.session_hours * 3600
    return (
        f"{COOKIE}={cookie_value(settings, session_id)}; Path={url(session_id)}; "
        f"Max-Age={max_age}; HttpOnly; Secure; SameSite=None; Partitioned"
    )


def _entry_key(entry: Entry) -> str:
    return hashlib.sha256(_ENTRY_KEY + f"{entry.helpdesk}\n{entry.token_id}".encode()).hexdigest()


def _checked(entry: Entry) -> Entry:
    """The entry, refused when it names nothing the panel can stand behind."""
    if entry.helpdesk not in HELPDESKS:
        raise EntryRefused(f"the panel does not open from {entry.helpdesk!r}")
    if not entry.token_id:
        raise EntryRefused("the entry carries no token ID")
    email = normalize_identity(entry.agent_email or "")
    if "@" not in email or len(email) > EMAIL_CHARS:
        raise EntryRefused("the entry names no agent email")
    if entry.ticket is not None and not 0 < len(entry.ticket) <= TICKET_CHARS:
        raise EntryRefused(f"a ticket ID has 1 to {TICKET_CHARS} characters")
    if entry.requester is not None and (
        "@" not in entry.requester or len(entry.requester) > EMAIL_CHARS
    ):
        raise EntryRefused("the requester is not an email address")
    return entry


async def start(services: Services, entry: Entry) -> PanelSession:
    """Claim the entry and write its session row; `EntryRefused` for a replayed entry."""
    entry = _checked(entry)
    now = datetime.now(UTC)
    sid = f"pn_{secrets.token_urlsafe(18)}"
    name = " ".join((entry.agent_name or "").split())[:NAME_CHARS] or None
    language = entry.locale.split("-")[0].split("_")[0].lower() if entry.locale else None
    row = PanelSessionRow(
        id=sid, entry_key=_entry_key(entry), helpdesk=entry.helpdesk,
        agent_email=normalize_identity(entry.agent_email), agent_name=name, ticket=entry.ticket,
        requester=entry.requester.strip().lower() if entry.requester else None,
        vouched=entry.vouched, confirmed_at=None,
        language=language if language in LANGUAGES else None, created=now,
        expires_at=now + timedelta(hours=services.settings.panel.session_hours),
    )  # fmt: skip
    try:
        async with services.db.write() as db:
            db.add(row)
    except IntegrityError:
        log.warning("panel entry from %s replayed: refused", entry.helpdesk)
        raise EntryRefused("this entry was already used") from None
    return _session(row, services.settings)


async def open_session(request: Request, entry: Entry, *, page: str | None = None) -> Response:
    """A verified entry's session: its row, its cookie, and 303 to its card (or its search,
    or the session's `page` the caller names). An unvouched session opens confirmed in a
    browser remembered for its email (`browsers.py`); one not admitted lands on the
    confirmation step instead.

    Raises `EntryRefused` (nothing opened) for an entry already used or one that names
    nothing usable.
    """
    services: Services = request.app.state.services
    session = await start(services, entry)
    if not session.trusted:
        proved = replace(session, confirmed=True)
        vouching = await browsers.confirm_session(
            services, request, actor(services.settings, proved), session.helpdesk,
            session.agent_email, session.id,
        )  # fmt: skip
        session = proved if vouching is not None else session
    if not session.admitted:
        page = "confirm"
    page = page or ("card" if session.requester else "search")
    response = RedirectResponse(url(session.id, page), status_code=303)
    response.headers.append("set-cookie", cookie_header(services.settings, session.id))
    response.headers["Cache-Control"] = "no-store"
    return response


async def load(services: Services, session_id: str) -> PanelSession | None:
    """The session if it is live: not ended, not expired."""
    async with services.db.read() as db:
        row = await db.get(PanelSessionRow, session_id)
    if row is None or row.ended_at is not None or row.expires_at <= datetime.now(UTC):
        return None
    return _session(row, services.settings)


async def current(request: Request) -> PanelSession | None:
    """The live session of a request under `/panel/s/{sid}/`, proved by its cookie; else None."""
    session_id = request.path_params.get("sid")
    given = request.cookies.get(COOKIE)
    if not isinstance(session_id, str) or not given or len(session_id) > 40:
        return None
    services: Services = request.app.state.services
    expected = cookie_value(services.settings, session_id)
    if not hmac.compare_digest(expected.encode(), given.encode()):
        return None
    return await load(services, session_id)


def actor(settings: Settings, session: PanelSession) -> Actor:
    """The agent with the roles their email has in `[helpdesk.<name>]` now.

    A session not admitted (an unvouched email not yet proved, or proved but listed nowhere)
    has no staff role at all (a customer at most, as anyone): it may look nobody up.
    """
    section = getattr(settings.helpdesk, session.helpdesk)
    person = helpdesk_actor(
        session.helpdesk, section, session.agent_email, session.agent_name, None
    )
    if session.admitted:
        return person
    return person.model_copy(update={"roles": frozenset({Role.customer})})


def listed(settings: Settings, helpdesk: str, email: str) -> bool:
    """Whether `[helpdesk.<name>]` gives this email a role (agent, manager or admin) now."""
    section = getattr(settings.helpdesk, helpdesk, None)
    if section is None:
        return False
    return roles_for(section, normalize_identity(email)) != frozenset({Role.viewer})


async def confirm(services: Services, session_id: str) -> bool:
    """Mark a live session's agent email as proved (a one-time code sent to it came back);
    whether this call did."""
    async with services.db.write() as db:
        result = await db.execute(
            update(PanelSessionRow)
            .where(
                PanelSessionRow.id == session_id,
                PanelSessionRow.ended_at.is_(None),
                PanelSessionRow.expires_at > datetime.now(UTC),
                PanelSessionRow.confirmed_at.is_(None),
            )
            .values(confirmed_at=datetime.now(UTC))
        )
    return int(result.rowcount or 0) == 1  # type: ignore[attr-defined]


async def end(services: Services, session_id: str, why: str) -> None:
    """End a session for every copy of its cookie (sign-out, or ended from the server)."""
    async with services.db.write() as db:
        await db.execute(
            update(PanelSessionRow)
            .where(PanelSessionRow.id == session_id, PanelSessionRow.ended_at.is_(None))
            .values(ended_at=datetime.now(UTC), ended_why=why[:40])
        )


async def end_for_agent(services: Services, email: str, why: str) -> int:
    """End every live session of one agent email (their helpdesk account was taken away), and
    forget every browser remembered for it."""
    await browsers.forget_agent(services, email, SYSTEM, why)
    async with services.db.write() as db:
        result = await db.execute(
            update(PanelSessionRow)
            .where(
                PanelSessionRow.agent_email == normalize_identity(email),
                PanelSessionRow.ended_at.is_(None),
            )
            .values(ended_at=datetime.now(UTC), ended_why=why[:40])
        )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def choose_language(services: Services, session_id: str, language: str) -> None:
    """Remember the language the agent picked for the rest of this session."""
    if language not in LANGUAGES:
        return
    async with services.db.write() as db:
        await db.execute(
            update(PanelSessionRow)
            .where(PanelSessionRow.id == session_id)
            .values(language=language)
        )


def _session(row: PanelSessionRow, settings: Settings) -> PanelSession:
    return PanelSession(
        id=row.id, helpdesk=row.helpdesk, agent_email=row.agent_email, agent_name=row.agent_name,
        ticket=row.ticket, requester=row.requester, vouched=row.vouched,
        confirmed=row.confirmed_at is not None, language=row.language, expires_at=row.expires_at,
        listed=listed(settings, row.helpdesk, row.agent_email),
    )  # fmt: skip
