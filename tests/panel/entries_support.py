"""What the entry tests share: the app on the test's services, helpdesk settings, codes.

Not a conftest: the entry tests import what they use, so they stay apart from the panel's
own test fixtures.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
from pydantic import SecretStr
from sqlalchemy import select

from bot.keys import code_for
from bot.panel.session import COOKIE
from bot.services import Services
from bot.settings import Settings
from bot.store.tables import EmailRow, PanelSessionRow, VerificationCode
from bot.web import create_app

BASE = "https://localhost:8000"  # our own origin (https: the panel's cookie is Secure)
ALEX = "alex.agent@example.com"  # an agent in every helpdesk section below
MARIA = "maria.manager@example.com"  # a manager
NOBODY = "new.hire@example.com"  # listed nowhere
JANE = "jane.doe@example.com"  # a demo customer
FRONT_SECRET = "front-plugin-auth-secret-0123456789"
FRESHDESK_SECRET = "freshdesk-panel-secret-0123456789abcdef"
# Where an entry lands: the card, the search, Zendesk's loader (which asks for the ticket),
# or, for an entry nobody vouched for, the confirmation step (it shows nothing else).
SESSION_PATH = re.compile(r"^/panel/s/(pn_[A-Za-z0-9_-]+)/(card|search|confirm|zendesk(\?[^/]*)?)$")


def with_helpdesk(settings: Settings, name: str, **values: Any) -> Settings:
    """`settings` with `[helpdesk.<name>]` given `values` (and the usual agents and managers)."""
    section = getattr(settings.helpdesk, name)
    values = {"agents": [ALEX], "managers": [MARIA], **values}
    for key, value in list(values.items()):
        if key in {"plugin_auth_secret", "panel_secret", "api_token", "secret_key", "app_id",
                   "app_secret"} and isinstance(value, str):  # fmt: skip
            values[key] = SecretStr(value)
    updated = section.model_copy(update=values)
    return settings.model_copy(
        update={"helpdesk": settings.helpdesk.model_copy(update={name: updated})}
    )


async def client_for(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    """`chargedesk serve`'s app on `services`, through an httpx client at our own origin."""
    app = create_app(services.settings, services)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 4321))
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            yield client


def opened(answer: httpx.Response) -> str:
    """The session ID an entry opened (asserting it did: 303 to its card or search page)."""
    assert answer.status_code == 303, answer.text
    found = SESSION_PATH.match(answer.headers["location"])
    assert found, answer.headers["location"]
    cookie = next(h for h in answer.headers.get_list("set-cookie") if h.startswith(f"{COOKIE}="))
    for part in (
        "HttpOnly",
        "Secure",
        "SameSite=None",
        "Partitioned",
        f"Path=/panel/s/{found[1]}/",
    ):
        assert part in cookie, (part, cookie)
    return found[1]


def refused(answer: httpx.Response, reason: str) -> None:
    """A refused entry: 403, the reason said, no session cookie."""
    assert answer.status_code == 403, answer.text
    assert reason in answer.text, answer.text
    assert not any(h.startswith(f"{COOKIE}=") for h in answer.headers.get_list("set-cookie"))


async def session_row(services: Services, session_id: str) -> PanelSessionRow:
    async with services.db.read() as db:
        row = await db.get(PanelSessionRow, session_id)
    assert row is not None
    return row


async def sessions(services: Services) -> int:
    async with services.db.read() as db:
        return len((await db.scalars(select(PanelSessionRow.id))).all())


async def latest_code(services: Services, session_id: str) -> tuple[VerificationCode, str]:
    """The session's newest confirmation code row, and the six digits its email carries."""
    async with services.db.read() as db:
        row = await db.scalar(
            select(VerificationCode)
            .where(VerificationCode.subject == f"panel:{session_id}")
            .order_by(VerificationCode.created.desc())
            .limit(1)
        )
    assert row is not None, "no code was made"
    return row, code_for(services, row.id)


async def emails_to(services: Services, address: str) -> list[EmailRow]:
    async with services.db.read() as db:
        return list(await db.scalars(select(EmailRow).where(EmailRow.recipient == address)))


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "no CSRF field on the page"
    return found.group(1)
