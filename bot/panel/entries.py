"""The signed ways into the agent panel, one route per helpdesk.

    POST /entry/zendesk     form field `token`: the ZAF JWT (bot/helpdesk/zendesk/panel_entry.py)
    GET  /entry/front       ?auth_secret=…&teammate=…   (bot/helpdesk/front/panel_entry.py)
    GET  /entry/freshdesk   a URL the app signed          (bot/helpdesk/freshdesk/panel_entry.py)
    GET  /entry/helpscout   a sidebar link we signed      (bot/helpdesk/helpscout/panel_entry.py)

(paths under the panel's root, /panel). Each checks its helpdesk's signature, hands the
`Entry` to the panel's session (`bot.panel.session.open_session`: claimed once, cookie,
303 to the card, or to the page `routes` is given for that helpdesk: Zendesk's loader)
and is done: only this first request carries a signature.

A refusal is a 403 plain-text page with the one-line reason (it names what was wrong,
never a secret) and a log line with the helpdesk, the reason and the client's address:
never the token, the link or the query string. A client refused REFUSALS_PER_HOUR times
in an hour is answered 429 without the check.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from bot.helpdesk.freshdesk import panel_entry as freshdesk
from bot.helpdesk.front import panel_entry as front
from bot.helpdesk.helpscout import panel_entry as helpscout
from bot.helpdesk.zendesk import panel_entry as zendesk
from bot.panel.entry import Entry, EntryRefused
from bot.panel.security import BadForm, read_form
from bot.panel.session import open_session
from bot.services import Services
from bot.settings import Settings

log = logging.getLogger(__name__)

REFUSALS_PER_HOUR = 30  # per client address: forged, expired, replayed entries

Verifier = Callable[[Request, Settings], Awaitable[Entry]]
Landing = Callable[[Request], str]  # the session page an entry lands on (`page?query`)


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _query(request: Request) -> dict[str, str]:
    """The query's parameters; a parameter given twice is refused (which one would count?)."""
    items = request.query_params.multi_items()
    params = dict(items)
    if len(params) != len(items):
        raise EntryRefused("malformed entry: a parameter is given twice")
    return params


async def _zendesk(request: Request, settings: Settings) -> Entry:
    section = settings.helpdesk.zendesk
    try:
        form = await read_form(request)
    except BadForm:
        raise EntryRefused("malformed entry: Zendesk posts a form with a token") from None
    token = zendesk.verify_token(form.get("token", ""), section)
    agent = await zendesk.user(section, token.user_id)
    return Entry(
        helpdesk=zendesk.NAME,
        agent_email=agent.email,
        agent_name=agent.name,
        ticket=None,
        requester=None,
        token_id=token.token_id,
        vouched=True,
        locale=agent.locale,
    )


async def _front(request: Request, settings: Settings) -> Entry:
    return front.verify(_query(request), settings.helpdesk.front)


async def _freshdesk(request: Request, settings: Settings) -> Entry:
    return freshdesk.verify(_query(request), settings.helpdesk.freshdesk)


async def _helpscout(request: Request, settings: Settings) -> Entry:
    return helpscout.verify(_query(request), settings)


def _endpoint(
    name: str, verifier: Verifier, landing: Landing | None = None
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        services: Services = request.app.state.services
        address = _client(request)
        if await refused_too_often(services, address):
            return refusal(429, "too many refused entries from here: try again within the hour")
        try:
            entry = await verifier(request, services.settings)
            page = landing(request) if landing is not None else None
            return await open_session(request, entry, page=page)
        except EntryRefused as refused:
            log.warning("panel entry from %s refused: %s (client %s)", name, refused, address)
            await count_refusal(services, address)
            return refusal(403, str(refused))

    return endpoint


async def refused_too_often(services: Services, address: str) -> bool:
    """Whether this client address was refused REFUSALS_PER_HOUR times in the last hour."""
    refused_before = await services.redis.get(_counter(services, address))
    return refused_before is not None and int(refused_before) >= REFUSALS_PER_HOUR


async def count_refusal(services: Services, address: str) -> None:
    """Count one refusal (a forged, expired, replayed entry) against a client address."""
    counter = _counter(services, address)
    if await services.redis.incr(counter) == 1:
        await services.redis.expire(counter, 3600)


def _counter(services: Services, address: str) -> str:
    return services.key("limit", "panel-entry-refused", _hashed(address))


def _hashed(address: str) -> str:
    return hashlib.sha256(address.encode()).hexdigest()[:32]


def refusal(status: int, reason: str) -> Response:
    """The plain page of a refused entry: `reason` (never a secret) and nothing else."""
    return PlainTextResponse(
        f"ChargeDesk panel: not opened.\n{reason}\n",
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )


def routes(settings: Settings, *, landings: Mapping[str, Landing] | None = None) -> list[Route]:
    """The entry routes of every helpdesk; each refuses with a reason until it is configured.

    `landings` names, per helpdesk, the session page its entries land on instead of the card."""
    landing = landings or {}
    return [
        Route(
            "/entry/zendesk",
            _endpoint(zendesk.NAME, _zendesk, landing.get(zendesk.NAME)),
            methods=["POST"],
        ),
        Route("/entry/front", _endpoint(front.NAME, _front), methods=["GET"]),
        Route("/entry/freshdesk", _endpoint(freshdesk.NAME, _freshdesk), methods=["GET"]),
        Route("/entry/helpscout", _endpoint(helpscout.NAME, _helpscout), methods=["GET"]),
    ]
