"""The agent confirms their email: how an unvouched panel session gets to show anything.

Front's `auth_secret` is one value every teammate can read, and a Freshdesk app's front
end can name any agent: such entries open a session whose helpdesk did not vouch for the
agent's email (`Entry.vouched` False). Until the agent proves they read that mailbox, the
session shows no billing data at all (no card, search, requests or approvals: every other
page of it redirects here or refuses with 403, `app._guarded`): only who the helpdesk says
they are, and this step, done with the bot's one-time codes (`bot/identity.py`, the same
code system as customers' `verify` and the billing pages):

    GET  /panel/s/<session>/confirm                     the page: send a code, type it
    POST /panel/s/<session>/confirm  action=send        a six-digit code to the session's email
    POST /panel/s/<session>/confirm  action=check       the code typed: the session is confirmed
    POST /panel/s/<session>/forget                      sign out and forget this browser

- The code goes only to the email the session names (never one typed here), through the
  mail outbox, and is bound to this session (`panel:<session id>`): a code sent for one
  session confirms no other.
- A code works once, for `identity.CODE_MINUTES` minutes, `identity.MAX_TRIES` guesses;
  its HMAC is compared in constant time; checks are limited per session
  (`identity.CHECKS_PER_HOUR`). Sending is limited per session, per email and per client
  address (SENDS_PER_HOUR and friends), so nobody can flood an agent's mailbox.
- Only an email `[helpdesk.<name>]` lists (agents, managers, admins) gets a code: anyone
  holding Front's secret can name their own mailbox, and proving it must not let them in.
- Every POST carries the session's CSRF token and must come from our own page.
- A confirmed session is in the audit log (`panel_email_confirmed`), then acts with the
  roles the email has in `[helpdesk.<name>]`; this browser is remembered for that email
  (`browsers.py`, `[panel] trusted_days`), so the next Front load opens confirmed.
- Forgetting this browser (`/forget`, beside "Sign out") revokes its remembered row, ends
  the sessions it confirmed and this one, and drops both cookies.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from bot import identity
from bot.actors import normalize_identity
from bot.audit.log import AuditRecord, append
from bot.errors import UserError
from bot.panel import browsers, session
from bot.panel.security import BadForm, csrf_ok, read_form
from bot.panel.session import PanelSession
from bot.services import Services
from bot.settings import Settings
from bot.translations import LANGUAGES, N_, gettext, language_of

log = logging.getLogger(__name__)

PATH = "/confirm"
FORGET_PATH = "/forget"
SENDS_PER_HOUR = 3  # per session
SENDS_TO_EMAIL_PER_HOUR = 6  # per agent email, across their sessions
SENDS_PER_CLIENT_PER_HOUR = 10  # per client address
HELPDESK_NAMES = {
    "front": "Front",
    "freshdesk": "Freshdesk",
    "zendesk": "Zendesk",
    "helpscout": "Help Scout",
}
# What each refusal of `identity.check_code` (or of our own limits) tells the agent.
_ERRORS = {
    "invalid_code": N_("panel", "confirm_err_invalid"),
    "no_code": N_("panel", "confirm_err_no_code"),
    "code_expired": N_("panel", "confirm_err_expired"),
    "wrong_code": N_("panel", "confirm_err_wrong"),
    "code_used_up": N_("panel", "confirm_err_used_up"),
    "rate_limited": N_("panel", "confirm_err_rate_limited"),
    "try_again": N_("panel", "confirm_err_try_again"),
    "not_listed": N_("panel", "confirm_err_not_listed"),
}


def subject(live: PanelSession) -> str:
    """Whom a code is for: this session, and no other."""
    return f"panel:{live.id}"


def _words(live: PanelSession) -> str:
    return language_of(live.language)


def _next_page(live: PanelSession) -> str:
    return session.url(live.id, "card" if live.requester else "search")


def _error(language: str, code: str, live: PanelSession | None = None) -> str:
    values = {"email": live.agent_email, "helpdesk": _helpdesk(live)} if live else {}
    return gettext(language, "panel", _ERRORS.get(code, _ERRORS["try_again"]), **values)


def _helpdesk(live: PanelSession) -> str:
    return HELPDESK_NAMES.get(live.helpdesk, live.helpdesk)


async def _send(services: Services, request: Request, live: PanelSession) -> str | None:
    """Queue a code to the session's email; None, or the error to show."""
    language = _words(live)
    if not live.listed:
        return _error(language, "not_listed", live)
    client = request.client.host if request.client else "unknown"
    try:
        await identity.limit(
            services, "panel-code", live.id, SENDS_PER_HOUR, "codes asked too often"
        )
        await identity.limit(
            services, "panel-code-to", live.agent_email, SENDS_TO_EMAIL_PER_HOUR,
            "codes asked too often",
        )  # fmt: skip
        await identity.limit(
            services, "panel-code-from", client, SENDS_PER_CLIENT_PER_HOUR, "codes asked too often"
        )
    except UserError as exc:
        return _error(language, exc.code)
    await identity.queue_code(services, subject(live), live.agent_email, language)
    log.info("panel %s: a confirmation code was sent to the session's email", live.id)
    return None


async def _check(
    services: Services, request: Request, live: PanelSession, code: str
) -> tuple[str | None, str | None]:
    """Confirm the session if `code` is this session's: (the error to show, or None; the
    remembered browser's Set-Cookie value, or None)."""
    language = _words(live)
    if not live.listed:
        return _error(language, "not_listed", live), None
    try:
        proved = await identity.check_code(services, subject(live), code)
    except UserError as exc:
        return _error(language, exc.code), None
    if normalize_identity(proved) != live.agent_email:
        # Codes are bound to the session and sent only to its email: this cannot happen
        # unless a row was tampered with. Refuse rather than confirm another address.
        log.error("panel %s: a code proved another email than the session's", live.id)
        return _error(language, "try_again"), None
    if not await session.confirm(services, live.id):
        return _error(language, "try_again"), None
    actor = session.actor(services.settings, replace(live, confirmed=True))
    async with services.db.write() as db:
        await append(db, AuditRecord(
            actor=actor, action="panel_email_confirmed", outcome="confirmed",
            detail={"helpdesk": live.helpdesk, "session": live.id, "via": "email_code"},
        ))  # fmt: skip
    cookie = await browsers.remember(
        services, request, actor, live.helpdesk, live.agent_email, live.id
    )
    return None, cookie


def _page(
    request: Request, live: PanelSession, *, status: int = 200, notice: str | None = None,
    error: str | None = None,
) -> Response:  # fmt: skip
    from bot.panel.app import render  # the panel's page renderer (it imports this module lazily)

    services: Services = request.app.state.services
    language = _words(live)
    helpdesk = _helpdesk(live)
    who = f"{live.agent_name} ({live.agent_email})" if live.agent_name else live.agent_email
    days = services.settings.panel.trusted_days
    return render(
        request,
        live,
        "confirm.html",
        status=status,
        heading=gettext(language, "panel", "confirm_title"),
        claim=gettext(language, "panel", "confirm_claim", helpdesk=helpdesk, who=who),
        why=gettext(language, "panel", "confirm_why", helpdesk=helpdesk, email=live.agent_email),
        not_listed=None if live.listed else _error(language, "not_listed", live),
        remember=gettext(language, "panel", "confirm_remember", days=days) if days else None,
        send_label=gettext(language, "panel", "confirm_send", email=live.agent_email),
        code_label=gettext(language, "panel", "confirm_code"),
        check_label=gettext(language, "panel", "confirm_check"),
        action=session.url(live.id, PATH.lstrip("/")),
        notice=notice,
        error=error,
    )


async def confirm_page(request: Request) -> Response:
    """The confirmation page of a live, unconfirmed session (see the module docstring)."""
    services: Services = request.app.state.services
    live = await session.current(request)
    if live is None:
        return PlainTextResponse(
            "ChargeDesk panel: this session has ended. Open the panel again from the helpdesk.\n",
            status_code=401,
        )
    picked = request.query_params.get("lang")
    if picked in LANGUAGES and picked != live.language:
        await session.choose_language(services, live.id, picked)
        live = replace(live, language=picked)
    if live.admitted:
        return RedirectResponse(_next_page(live), status_code=303)
    language = _words(live)
    if request.method == "GET":
        sent = request.query_params.get("sent") == "1"
        notice = (
            gettext(
                language,
                "panel",
                "confirm_sent",
                email=live.agent_email,
                minutes=identity.CODE_MINUTES,
            )
            if sent
            else None
        )
        return _page(request, live, notice=notice)
    try:
        form = await read_form(request)
    except BadForm:
        return _page(request, live, status=400, error=_error(language, "try_again"))
    if not csrf_ok(request, form, live, services.settings):
        log.warning("panel %s: confirmation POST failed the CSRF or origin check", live.id)
        return _page(
            request, live, status=403, error=gettext(language, "panel", "confirm_err_refused")
        )
    if not live.listed:  # the page says so, and offers nothing to send or check
        return _page(request, live, status=403)
    action = form.get("action", "")
    if action == "send":
        error = await _send(services, request, live)
        if error is not None:
            return _page(request, live, status=429, error=error)
        return RedirectResponse(session.url(live.id, "confirm?sent=1"), status_code=303)
    if action == "check":
        error, cookie = await _check(services, request, live, form.get("code", "")[:40])
        if error is not None:
            return _page(request, live, status=400, error=error)
        done = RedirectResponse(_next_page(live), status_code=303)
        if cookie is not None:
            done.headers.append("set-cookie", cookie)
        return done
    return _page(request, live, status=400, error=_error(language, "try_again"))


async def forget_page(request: Request) -> Response:
    """Sign out and forget this browser: its remembered row revoked (and every session it
    confirmed ended), this session ended, both cookies dropped."""
    from bot.panel.app import choose_words, render  # as in `_page`

    services: Services = request.app.state.services
    live = await session.current(request)
    if live is None:
        return PlainTextResponse(
            "ChargeDesk panel: this session has ended. Open the panel again from the helpdesk.\n",
            status_code=401,
        )
    request.state.words = choose_words(live.language, request.headers.get("accept-language"))
    try:
        form = await read_form(request)
    except BadForm:
        form = {}
    if not csrf_ok(request, form, live, services.settings):
        log.warning("panel %s: forget-this-browser POST failed the CSRF or origin check", live.id)
        return render(
            request, None, "message.html", status=403,
            title_key=N_("panel", "refused_title"),
            text=gettext(_words(live), "panel", "refused_text"),
        )  # fmt: skip
    browser = browsers.named(services.settings, request.cookies.get(browsers.COOKIE))
    if browser is not None:
        actor = session.actor(services.settings, live)
        await browsers.forget(services, browser, actor, "forgotten")
    await session.end(services, live.id, "signed_out")
    log.info("panel %s: signed out, this browser forgotten", live.id)
    answer = render(
        request, None, "message.html",
        title_key=N_("panel", "forgotten_title"),
        text=gettext(_words(live), "panel", "forgotten_text"),
    )  # fmt: skip
    answer.headers.append(
        "set-cookie",
        f"{session.COOKIE}=; Path={live.root}; Max-Age=0; HttpOnly; Secure; SameSite=None; "
        "Partitioned",
    )
    answer.headers.append("set-cookie", browsers.clear_header())
    return answer


def routes(settings: Settings) -> list[Route]:
    """The confirmation page and "forget this browser", relative to a session's address
    (`/panel/s/<session>`)."""
    return [
        Route(PATH, confirm_page, methods=["GET", "POST"]),
        Route(FORGET_PATH, forget_page, methods=["POST"]),
    ]
