"""Agent panel fixtures: `chargedesk serve`'s app on the test's services, agents with sessions.

A session is opened the way a helpdesk's signed entry opens one: an `Entry` handed to
`open_session`. The signed entries themselves (Zendesk's JWT, Front's secret, the signed
links) are tested beside their code; here a test route stands in for them (it exists only
in this wrapper app), so each agent gets the real 303 and the real cookie.
"""

from __future__ import annotations

import html
import itertools
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route

from bot.panel.entry import Entry, EntryRefused
from bot.panel.session import open_session
from bot.services import Services
from bot.settings import (
    FrontSettings,
    HelpdeskSettings,
    PanelSettings,
    Settings,
    ZendeskSettings,
)
from bot.store.tables import HelpdeskNote
from bot.web import create_app
from chargedesk_emulators.zendesk import ZendeskEmulator, zendesk_api

BASE = "https://panel.test"
AGENT = "alex@example.com"
MANAGER = "maria@example.com"
OTHER_MANAGER = "mark@example.com"
STRANGER = "nobody@example.com"
JANE = "jane.doe@example.com"
JOHN = "john.smith@example.com"
TICKET = "4242"
_tokens = itertools.count(1)


def panel_settings(
    settings: Settings, zendesk: ZendeskEmulator | None = None, **panel: Any
) -> Settings:
    """The test's settings with Zendesk and Front configured for the panel, and its people."""
    people: dict[str, Any] = {"agents": [AGENT], "managers": [MANAGER, OTHER_MANAGER.upper()]}
    desk: dict[str, Any] = {"subdomain": "acme", **people}
    if zendesk is not None:
        desk |= {
            "base_url": zendesk.base_url,
            "email": zendesk.email,
            "api_token": SecretStr(zendesk.api_token),
        }
    helpdesk = HelpdeskSettings(
        zendesk=ZendeskSettings(**desk),
        front=FrontSettings(plugin_auth_secret=SecretStr("front-plugin-secret"), **people),
    )
    return settings.model_copy(update={"helpdesk": helpdesk, "panel": PanelSettings(**panel)})


def entry(
    who: str,
    *,
    ticket: str | None = TICKET,
    requester: str | None = JANE,
    helpdesk: str = "zendesk",
    vouched: bool = True,
    locale: str | None = None,
    token: str | None = None,
    name: str | None = None,
) -> Entry:
    return Entry(
        helpdesk=helpdesk,
        agent_email=who,
        agent_name=name or who.split("@")[0].capitalize(),
        ticket=ticket,
        requester=requester,
        token_id=token or f"test-entry-{next(_tokens)}-{secrets.token_hex(4)}",
        vouched=vouched,
        locale=locale,
    )


def entry_app(app: Starlette, services: Services | None = None) -> Starlette:
    """`app` behind a test-only entry route: an Entry (JSON, or the query of a GET), and the
    panel's answer. Without `services`, the app's own (opened by its start-up) are used."""

    async def enter(request: Request) -> Response:
        given = await request.json() if request.method == "POST" else dict(request.query_params)
        given["vouched"] = given.get("vouched") in (True, "1", "true")
        for optional in ("agent_name", "ticket", "requester"):
            given.setdefault(optional, None)
        request.app.state.services = services or app.state.services
        try:
            return await open_session(request, Entry(**given))
        except EntryRefused as exc:
            return PlainTextResponse(str(exc), status_code=403)

    return Starlette(
        routes=[Route("/test/enter", enter, methods=["GET", "POST"]), Mount("/", app)],
        lifespan=lambda _: app.router.lifespan_context(app),
    )


# --- reading pages ------------------------------------------------------------------------


@dataclass
class Form:
    action: str
    fields: dict[str, str]
    button: str


_FORM = re.compile(r'<form method="post" action="([^"]+)"[^>]*>(.*?)</form>', re.S)
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')
_BUTTON = re.compile(r"<button[^>]*>(.*?)</button>", re.S)
_TAG = re.compile(r"<[^>]+>")


def forms(page: str) -> list[Form]:
    found = []
    for action, body in _FORM.findall(page):
        fields = {name: html.unescape(value) for name, value in _HIDDEN.findall(body)}
        label = _BUTTON.search(body)
        text = html.unescape(_TAG.sub("", label.group(1))).strip() if label else ""
        found.append(Form(html.unescape(action), fields, text))
    return found


def text(page: str) -> str:
    """What a reader sees, roughly: the tags gone, whitespace collapsed."""
    body = page.split("<body>", 1)[-1]
    return " ".join(html.unescape(_TAG.sub(" ", body)).split())


def buttons(page: str) -> list[str]:
    return [f.button for f in forms(page)]


@dataclass
class Agent:
    """One helpdesk agent's browser: their own cookies, their own panel session."""

    web: httpx.AsyncClient
    root: str
    email: str
    pages: list[httpx.Response] = field(default_factory=list)

    async def get(self, page: str = "card", **params: str) -> httpx.Response:
        answer = await self.web.get(self.root + page, params=params)
        self.pages.append(answer)
        return answer

    async def post(self, path: str, data: dict[str, str], **headers: str) -> httpx.Response:
        answer = await self.web.post(path, data=data, headers=headers)
        self.pages.append(answer)
        return answer

    async def click(self, page: str, label: str, **headers: str) -> httpx.Response:
        """Send the form of the button labelled `label` on `page`, as a browser would."""
        found = [f for f in forms(page) if f.button == label]
        assert found, f"no button {label!r} in {buttons(page)}"
        return await self.post(found[0].action, found[0].fields, **headers)

    async def fill(self, page: str, values: dict[str, str]) -> httpx.Response:
        """Send the core form on `page` with `values` (by field name)."""
        form = next(f for f in forms(page) if f.action.endswith("/submit"))
        data = form.fields | {f"f_{k}": v for k, v in values.items()}
        return await self.post(form.action, data)


@dataclass
class Panel:
    services: Services
    app: Starlette
    transport: httpx.ASGITransport
    clients: list[httpx.AsyncClient] = field(default_factory=list)

    def client(self) -> httpx.AsyncClient:
        web = httpx.AsyncClient(transport=self.transport, base_url=BASE)
        self.clients.append(web)
        return web

    async def enter(self, who: str, **options: Any) -> Agent:
        """`who` opens the panel from a ticket: a session and its cookie, then the card."""
        web = self.client()
        given = entry(who, **options)
        answer = await web.post("/test/enter", json=given.__dict__)
        assert answer.status_code == 303, answer.text
        root = answer.headers["location"].rsplit("/", 1)[0] + "/"
        return Agent(web, root, who)


@pytest.fixture
def zendesk() -> Iterator[ZendeskEmulator]:
    with zendesk_api() as fake:
        yield fake


@pytest.fixture
async def panel(services: Services, zendesk: ZendeskEmulator) -> AsyncIterator[Panel]:
    services.settings = panel_settings(services.settings, zendesk)
    app = create_app(services.settings, services)
    async with app.router.lifespan_context(app):
        wrapped = entry_app(app, services)
        opened = Panel(services, wrapped, httpx.ASGITransport(app=wrapped))
        try:
            yield opened
        finally:
            for web in opened.clients:
                await web.aclose()


async def traces(services: Services, ticket: str = TICKET) -> dict[str, str]:
    """The notes recorded for a ticket: topic -> the note as written."""
    async with services.db.read() as db:
        rows = await db.scalars(
            select(HelpdeskNote).where(
                HelpdeskNote.helpdesk == "zendesk", HelpdeskNote.ticket_id == ticket
            )
        )
        return {row.topic: row.body or "" for row in rows}
