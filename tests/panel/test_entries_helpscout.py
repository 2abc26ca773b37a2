"""Help Scout's entry: the sidebar's links into the panel, signed by us for the agent Help
Scout named in its signed request, short-lived and single-use."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import AsyncIterator, Iterator
from html import unescape
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest

from bot.actors import Role
from bot.helpdesk.helpscout import panel_entry
from bot.panel import links
from bot.panel import session as panel_session
from bot.portal.redact import redact
from bot.services import Services
from bot.settings import Settings
from chargedesk_emulators.helpscout import HelpScoutEmulator, helpscout_api
from tests.panel.entries_support import (
    ALEX,
    JANE,
    NOBODY,
    client_for,
    opened,
    refused,
    session_row,
    sessions,
    with_helpdesk,
)

pytestmark = pytest.mark.storage

JOHN = "john.smith@example.com"
SIDEBAR = "/helpdesk/helpscout/sidebar"
LINK = re.compile(r'<a href="([^"]+/panel/entry/helpscout\?[^"]+)" target="_blank" rel="noopener')


@pytest.fixture
def helpscout() -> Iterator[HelpScoutEmulator]:
    with helpscout_api() as api:
        yield api


@pytest.fixture
def settings(settings: Settings, helpscout: HelpScoutEmulator) -> Settings:
    return with_helpdesk(
        settings, "helpscout", app_id=helpscout.app_id, app_secret=helpscout.app_secret,
        secret_key=helpscout.secret_key, base_url=helpscout.base_url,
    )  # fmt: skip


@pytest.fixture
async def web(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    async for client in client_for(services):
        yield client


async def sidebar(
    web: httpx.AsyncClient, helpscout: HelpScoutEmulator, agent: str | None = ALEX, **customer
) -> str:
    """The sidebar's HTML for a signed request naming `agent` (None: a user without email)."""
    body, _ = helpscout.sidebar_request({"id": 7, "email": JANE, **customer}, ticket={"id": 4242})
    payload = json.loads(body)
    if agent is not None:
        payload["user"]["email"] = agent
    body = json.dumps(payload).encode()
    answer = await web.post(SIDEBAR, content=body, headers=helpscout.headers(body))
    assert answer.status_code == 200, answer.text
    return answer.json()["html"]


def path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def panel_links(page: str) -> list[str]:
    return [unescape(m) for m in LINK.findall(page)]


async def test_a_listed_agent_gets_a_signed_link_that_opens_a_vouched_session(
    web, services, helpscout
) -> None:
    (link,) = panel_links(await sidebar(web, helpscout))
    assert link.startswith(f"{services.settings.portal.base_url}/panel/entry/helpscout?")
    answer = await web.get(path(link))
    session_id = opened(answer)
    assert answer.headers["location"].endswith("/card")
    row = await session_row(services, session_id)
    assert (row.helpdesk, row.agent_email, row.ticket, row.requester) == (
        "helpscout", ALEX, "4242", JANE,
    )  # fmt: skip
    assert row.vouched
    live = await panel_session.load(services, session_id)
    assert live is not None and panel_session.actor(services.settings, live).has(Role.agent)


async def test_each_sidebar_gets_new_links_and_each_opens_once(web, services, helpscout) -> None:
    (first,) = panel_links(await sidebar(web, helpscout))
    (second,) = panel_links(await sidebar(web, helpscout))
    assert first != second
    opened(await web.get(path(first)))
    refused(await web.get(path(first)), "already used")
    opened(await web.get(path(second)))
    assert await sessions(services) == 2


async def test_only_the_conversations_own_email_gets_a_link(web, helpscout) -> None:
    page = await sidebar(web, helpscout, emails=[JANE, JOHN])
    (link,) = panel_links(page)
    assert dict(parse_qsl(urlsplit(link).query))["requester"] == JANE


@pytest.mark.parametrize("agent", [NOBODY, None], ids=["unlisted", "no email"])
async def test_someone_who_may_act_on_nothing_gets_no_link(web, helpscout, agent) -> None:
    page = await sidebar(web, helpscout, agent=agent)
    assert panel_links(page) == [] and "/panel/entry" not in page


async def test_the_sidebar_carries_no_secret(web, services, helpscout) -> None:
    page = await sidebar(web, helpscout)
    assert helpscout.secret_key not in page
    assert services.settings.portal.secret.get_secret_value() not in page
    assert links.helpscout_key(services.settings).hex() not in page


def signed(services: Services, **overrides: object) -> dict[str, str]:
    values: dict = {"agent_email": ALEX, "agent_name": "Alex", "ticket": "1", "requester": JANE,
                    "lifetime": panel_entry.LIFETIME, **overrides}  # fmt: skip
    return links.sign(links.helpscout_key(services.settings), "helpscout", **values)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda s: signed(s, now=time.time() - panel_entry.LIFETIME - 60), "expired"),
        (lambda s: signed(s, lifetime=24 * 3600), "lives too long"),
        (lambda s: {**signed(s), "agent": "maria.manager@example.com"}, "forged"),
        (lambda s: {**signed(s), "sig": "0" * 64}, "forged"),
        (
            lambda s: links.sign(b"not-our-key", "helpscout", agent_email=ALEX, lifetime=60),
            "forged",
        ),
    ],
    ids=["expired", "too long", "agent swapped", "signature zeroed", "another key"],
)
async def test_a_link_we_did_not_sign_or_that_is_stale_is_refused(
    web, services, make, reason
) -> None:
    answer = await web.get(f"/panel/entry/helpscout?{urlencode(make(services))}")
    refused(answer, reason)
    assert await sessions(services) == 0


async def test_a_help_scout_link_opens_no_other_entry(web, services, helpscout) -> None:
    (link,) = panel_links(await sidebar(web, helpscout))
    refused(await web.get(path(link).replace("/entry/helpscout", "/entry/freshdesk")), "")


async def test_links_never_reach_the_logs(web, helpscout, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    (link,) = panel_links(await sidebar(web, helpscout))
    opened(await web.get(path(link)))
    refused(await web.get(path(link)), "already used")
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("bot"))
    assert dict(parse_qsl(urlsplit(link).query))["sig"] not in logged


def test_an_access_log_line_of_an_entry_keeps_no_query() -> None:
    line = (
        '203.0.113.7:0 - "GET /panel/entry/helpscout?agent=a%40b.c&nonce=n&sig=beef HTTP/1.1" 303'
    )
    assert redact(line) == '203.0.113.7:0 - "GET /panel/entry/helpscout?[redacted] HTTP/1.1" 303'
    secret = "GET /panel/entry/front?auth_secret=s3cret&teammate=x HTTP/1.1"
    assert "s3cret" not in redact(secret)
