"""The panel's two loader pages: the only pages that run a script, to learn in the browser
what a helpdesk tells only its apps' scripts, and nothing more.

Zendesk. The signed entry (a ZAF JWT) names the agent, not the ticket: the session lands on

    GET /panel/s/<session>/zendesk?origin=…&app_guid=…     the loader (`zendesk_loader`)
    GET /panel/s/<session>/zendesk/ticket/<number>          the ticket, bound (`zendesk_ticket`)

The loader loads Zendesk's ZAF SDK (`[helpdesk.zendesk] zaf_sdk_url`) and our
`static/zendesk-loader.js`, which asks `ZAFClient.init().get('ticket.id')` and goes to the
ticket route. That number is all the browser gives: the ticket route reads the ticket's
requester from Zendesk's API with our token (`zendesk.panel_entry.ticket_requester`), binds
ticket and requester to the session once (a session bound to a ticket refuses another:
each ticket tab is its own app instance, with its own entry) and sends the agent to the
card, verified. Without script, or when the SDK says nothing, the page links to search.
The ZAF SDK finds Zendesk's frame from `origin` and `app_guid` in its page's address: the
entry carries them over from its own query, and the loader runs the SDK only when `origin`
is the account's Zendesk (or a `[panel] frame_ancestors` origin, for a test's host page).

Front. The plugin URL is one for every teammate, so it cannot carry who looks at which
conversation. It is this page, `GET /panel/front?auth_secret=…` (`front_plugin`): checked
first (a wrong or missing secret gets the entries' plain refusal and no script), it loads
Front's plugin SDK (`[helpdesk.front] plugin_sdk_url`) and our `static/front-loader.js`,
which subscribes to `Front.contextUpdates` and, for each conversation the teammate opens,
loads the signed entry `/panel/entry/front?auth_secret=…&teammate=…&conversation=…&contact=…`
in a frame of this page (the plugin stays on the URL Front knows, so its context keeps
coming; a session per conversation, showing nothing until the teammate's email is confirmed).

Each page's Content-Security-Policy allows exactly its two scripts (`security.allow`: our
own origin and the SDK's exact address), no inline script; every other panel page runs none.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from urllib.parse import urlencode

from sqlalchemy import update
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from bot.helpdesk.front import panel_entry as front_entry
from bot.helpdesk.zendesk import panel_entry as zendesk_entry
from bot.panel import entries, session
from bot.panel.door import Page, Screen
from bot.panel.entry import EntryRefused
from bot.panel.security import SELF, allow, same_origin
from bot.panel.session import ROOT
from bot.services import Services
from bot.store.tables import PanelSessionRow
from bot.translations import N_

log = logging.getLogger(__name__)

ZENDESK_PAGE = "zendesk"  # the loader, under the session's address
SCRIPTS = ("zendesk-loader.js", "front-loader.js")  # what /panel/static serves
ZAF_PARAMS = ("origin", "app_guid")  # what the ZAF SDK reads from its page's address
_APP_GUID = re.compile(r"[A-Za-z0-9-]{1,64}")
_TICKET = re.compile(r"[0-9]{1,20}")  # a Zendesk ticket ID is a number
_REFUSED = N_("panel", "ticket_refused_title")
# Why Zendesk named no requester for a ticket: the words, the status.
_PROBLEMS = {
    "unknown": (N_("panel", "ticket_unknown_text"), 404),
    "no_requester": (N_("panel", "ticket_no_requester_text"), 422),
    "unavailable": (N_("panel", "ticket_unavailable_text"), 503),
}


def static_url(name: str) -> str:
    return f"{ROOT}/static/{name}"


# --- Zendesk -------------------------------------------------------------------------------


def zendesk_landing(request: Request) -> str:
    """Where a Zendesk entry lands: the loader, with the `origin` and `app_guid` Zendesk put
    in the entry's address (checked by the loader before its SDK may use them)."""
    carried = {name: request.query_params.get(name, "")[:200] for name in ZAF_PARAMS}
    query = urlencode({name: value for name, value in carried.items() if value})
    return f"{ZENDESK_PAGE}?{query}" if query else ZENDESK_PAGE


def _zaf_origin_ok(request: Request, services: Services) -> bool:
    """Is the SDK's `origin` the account's Zendesk (or an extra framing origin), with a
    well-formed `app_guid`? The SDK talks to no other window than the one named there."""
    settings = services.settings
    origin = request.query_params.get("origin", "")
    subdomain = (settings.helpdesk.zendesk.subdomain or "").strip().lower()
    allowed = {f"https://{subdomain}.zendesk.com", *settings.panel.frame_ancestors}
    guid = request.query_params.get("app_guid", "")
    return bool(subdomain) and origin in allowed and bool(_APP_GUID.fullmatch(guid))


async def zendesk_loader(request: Request, screen: Screen) -> Page:
    """The page that asks Zendesk's app framework which ticket this sidebar is on."""
    live = screen.session
    if live.helpdesk != zendesk_entry.NAME:
        return _refused(request, 403, N_("panel", "ticket_not_zendesk_text"))
    if live.ticket is not None:
        return Page("", redirect=session.url(live.id, "card"))
    services: Services = request.app.state.services
    sdk = services.settings.helpdesk.zendesk.zaf_sdk_url
    scripts: tuple[str, ...] = ()
    if _zaf_origin_ok(request, services):
        scripts = (sdk, static_url("zendesk-loader.js"))
        allow(request, scripts=(SELF, sdk))
    else:
        log.info("panel %s: no Zendesk frame named for the ZAF SDK: search only", live.id)
    return Page(
        "zendesk_loader.html",
        {
            "scripts": scripts,
            "ticket_url": session.url(live.id, f"{ZENDESK_PAGE}/ticket/"),
            "search_url": session.url(live.id, "search"),
        },
    )


async def zendesk_ticket(request: Request, screen: Screen) -> Page:
    """Bind the Zendesk ticket the loader learned, and its requester as Zendesk names them,
    to this session (once), then show the requester's card."""
    live = screen.session
    ticket = str(request.path_params.get("ticket", ""))
    services: Services = request.app.state.services
    if live.helpdesk != zendesk_entry.NAME:
        return _refused(request, 403, N_("panel", "ticket_not_zendesk_text"))
    if not _TICKET.fullmatch(ticket):
        return _refused(request, 400, N_("panel", "ticket_invalid_text"))
    if not same_origin(request, services.settings):
        # Only our loader page leads here; a link from elsewhere binds nothing.
        log.warning("panel %s: ticket route reached from another site: refused", live.id)
        return _refused(request, 403, N_("panel", "ticket_cross_site_text"))
    if live.ticket is not None:
        return _bound_already(request, live.id, live.ticket, ticket)
    try:
        requester = await zendesk_entry.ticket_requester(services.settings.helpdesk.zendesk, ticket)
    except zendesk_entry.TicketProblem as problem:
        log.warning("panel %s: Zendesk ticket %s not bound: %s", live.id, ticket, problem)
        words, status = _PROBLEMS[problem.kind]
        return _refused(request, status, words, ticket=ticket)
    if not await bind_ticket(services, live.id, ticket, requester):
        again = await session.load(services, live.id)
        return _bound_already(request, live.id, again.ticket if again else None, ticket)
    log.info("panel %s: bound to Zendesk ticket %s", live.id, ticket)
    return Page("", redirect=session.url(live.id, "card"))


async def bind_ticket(services: Services, session_id: str, ticket: str, requester: str) -> bool:
    """Give a live session its ticket and requester, if it has no ticket yet (one conditional
    update: of two binds at once, one wins). Whether this call bound it."""
    async with services.db.write() as db:
        result = await db.execute(
            update(PanelSessionRow)
            .where(
                PanelSessionRow.id == session_id,
                PanelSessionRow.ticket.is_(None),
                PanelSessionRow.ended_at.is_(None),
                PanelSessionRow.expires_at > datetime.now(UTC),
            )
            .values(ticket=ticket, requester=requester)
        )
    return int(result.rowcount or 0) == 1  # type: ignore[attr-defined]


def _bound_already(request: Request, session_id: str, bound: str | None, asked: str) -> Page:
    if bound == asked:  # the loader ran twice (a reload): the same ticket, nothing new
        return Page("", redirect=session.url(session_id, "card"))
    return _refused(request, 409, N_("panel", "ticket_other_text"), ticket=bound or "?")


def _refused(request: Request, status: int, text: str, **values: str) -> Page:
    """A message page in the agent's language; nothing was bound."""
    words = request.state.words
    return Page(
        "message.html", {"title_key": _REFUSED, "text": words(text, **values)}, status=status
    )


# --- Front ---------------------------------------------------------------------------------


async def front_plugin(request: Request) -> Page | Response:
    """Front's plugin page: shown only with the plugin's `auth_secret`, it reads the context
    with Front's SDK and opens the signed entry in its frame for each conversation."""
    services: Services = request.app.state.services
    address = request.client.host if request.client else "unknown"
    if await entries.refused_too_often(services, address):
        return entries.refusal(429, "too many refused entries from here: try again within the hour")
    settings = services.settings.helpdesk.front
    try:
        items = request.query_params.multi_items()
        params = dict(items)
        if len(params) != len(items):
            raise EntryRefused("malformed entry: a parameter is given twice")
        front_entry.check_secret(params, settings)
    except EntryRefused as refused:
        log.warning("panel plugin page from front refused: %s (client %s)", refused, address)
        await entries.count_refusal(services, address)
        return entries.refusal(403, str(refused))
    allow(request, scripts=(SELF, settings.plugin_sdk_url), frames=(SELF,))
    return Page(
        "front_loader.html",
        {
            "scripts": (settings.plugin_sdk_url, static_url("front-loader.js")),
            "entry_url": f"{ROOT}/entry/front",
        },
    )


# --- our scripts ---------------------------------------------------------------------------


@cache
def _script(name: str) -> str:
    return resources.files("bot.panel").joinpath("static", name).read_text("utf-8")


async def script(request: Request) -> Response:
    """One of the loaders' own scripts (GET /panel/static/<name>); nothing else is served."""
    name = request.path_params.get("name", "")
    if name not in SCRIPTS:
        return PlainTextResponse("not found", status_code=404)
    return Response(
        _script(name),
        media_type="text/javascript; charset=utf-8",
        headers={"Cache-Control": "public, max-age=3600"},
    )
