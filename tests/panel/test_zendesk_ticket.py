"""Zendesk's ticket context: the loader page, and the ticket route that binds a ticket once.

A Zendesk entry (the ZAF JWT) names the agent, not the ticket. It lands on a loader page
that runs the ZAF SDK and our own script, which send only `ticket.id` back; the server reads
the ticket's requester from Zendesk's API (the emulator here) and binds both to the
session once. What the browser does is in test_embedding_browser.py; here, HTTP.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from bot.panel import session as panel_session
from bot.services import Services
from bot.settings import Settings
from chargedesk_emulators.helpdesk_hosts import HelpdeskHosts
from chargedesk_emulators.zendesk import ZendeskEmulator, zendesk_api
from tests.panel.entries_support import (
    ALEX,
    FRESHDESK_SECRET,
    FRONT_SECRET,
    JANE,
    client_for,
    session_row,
    with_helpdesk,
)

pytestmark = pytest.mark.storage

HOST = "https://chargedesk.zendesk.com"  # the account's Zendesk: the ZAF SDK's `origin`
GUID = "a1b2c3d4-0000-4000-8000-000000000001"
ENTRY = "/panel/entry/zendesk"
SDK = "https://static.zdassets.com/zendesk_app_framework_sdk/2.0/zaf_sdk.min.js"
SCRIPT_TAG = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.S)


@pytest.fixture
def zendesk() -> Iterator[ZendeskEmulator]:
    with zendesk_api(subdomain="chargedesk") as api:
        yield api


@pytest.fixture
def hosts() -> HelpdeskHosts:
    return HelpdeskHosts("http://localhost:8000")


@pytest.fixture
def settings(settings: Settings, zendesk: ZendeskEmulator, hosts: HelpdeskHosts) -> Settings:
    settings = with_helpdesk(
        settings, "zendesk", subdomain="chargedesk", email=zendesk.email,
        api_token=zendesk.api_token, base_url=zendesk.base_url,
        app_public_key=hosts.zaf_public_key, app_audience=hosts.zaf_audience,
    )  # fmt: skip
    settings = with_helpdesk(settings, "front", plugin_auth_secret=FRONT_SECRET)
    return with_helpdesk(settings, "freshdesk", panel_secret=FRESHDESK_SECRET)


@pytest.fixture
async def web(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    async for client in client_for(services):
        yield client


@pytest.fixture
def ticket(zendesk: ZendeskEmulator) -> str:
    return str(
        zendesk.ticket("Refund", "I was charged twice.", requester_email="Jane.Doe@example.com")
    )


async def enter(
    web: httpx.AsyncClient, zendesk: ZendeskEmulator, hosts: HelpdeskHosts, **query: str
) -> str:
    """Alex opens a ticket's sidebar in Zendesk: the loader's address (the entry's 303)."""
    alex = zendesk.agent(ALEX, "Alex Agent")
    query = {"origin": HOST, "app_guid": GUID} | query
    answer = await web.post(ENTRY, params=query, data={"token": hosts.zaf_token(alex)})
    assert answer.status_code == 303, answer.text
    return answer.headers["location"]


def session_of(address: str) -> str:
    found = re.match(r"/panel/s/(pn_[A-Za-z0-9_-]+)/", address)
    assert found, address
    return found.group(1)


def scripts(page: str) -> list[str]:
    """The src of every <script> on a page, asserting none has a body (no inline script)."""
    found = []
    for attributes, body in SCRIPT_TAG.findall(page):
        assert body.strip() == "", f"inline script: {body[:80]!r}"
        source = re.search(r'src="([^"]+)"', attributes)
        assert source, attributes
        found.append(source.group(1))
    assert page.count("<script") == len(found)
    return found


async def bind(web: httpx.AsyncClient, loader: str, ticket: str, **headers: str) -> httpx.Response:
    """What the loader's script does once the SDK said `ticket`: go to the ticket route."""
    return await web.get(
        f"/panel/s/{session_of(loader)}/zendesk/ticket/{ticket}",
        headers={"Sec-Fetch-Site": "same-origin", **headers},
    )


# --- the loader page ----------------------------------------------------------------------


async def test_a_zendesk_entry_lands_on_the_loader_with_the_frameworks_origin_and_guid(
    web, zendesk, hosts
) -> None:
    loader = await enter(web, zendesk, hosts)
    path, query = urlsplit(loader).path, parse_qs(urlsplit(loader).query)
    assert path.endswith("/zendesk")
    assert query == {"origin": [HOST], "app_guid": [GUID]}


async def test_the_loader_runs_only_the_zaf_sdk_and_our_own_script(web, zendesk, hosts) -> None:
    loader = await enter(web, zendesk, hosts)
    page = await web.get(loader)
    assert page.status_code == 200
    assert scripts(page.text) == [SDK, "/panel/static/zendesk-loader.js"]
    policy = page.headers["content-security-policy"]
    assert f"script-src 'self' {SDK};" in policy
    assert "default-src 'none'" in policy and "'unsafe-inline'" not in policy
    # Progressive: without script, or if Zendesk says nothing, the agent can still search.
    assert f'href="/panel/s/{session_of(loader)}/search"' in page.text
    # Every other page of the same session still runs nothing.
    search = await web.get(f"/panel/s/{session_of(loader)}/search")
    assert "script-src" not in search.headers["content-security-policy"]
    assert "<script" not in search.text


@pytest.mark.parametrize(
    "query",
    [
        {"origin": "https://evil.example"},
        {"origin": "https://other.zendesk.com"},
        {"app_guid": "<script>"},
        {"origin": ""},
    ],
    ids=["foreign origin", "another account", "odd guid", "no origin"],
)
async def test_a_loader_naming_another_frame_runs_no_script_and_offers_search(
    web, zendesk, hosts, query
) -> None:
    loader = await enter(web, zendesk, hosts, **query)
    page = await web.get(loader)
    assert page.status_code == 200
    assert scripts(page.text) == []
    assert "script-src" not in page.headers["content-security-policy"]
    assert "Search for a customer" in page.text and "<script>" not in page.text


async def test_the_loaders_script_is_served_as_javascript(web) -> None:
    answer = await web.get("/panel/static/zendesk-loader.js")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/javascript")
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert "ZAFClient.init()" in answer.text and 'client.get("ticket.id")' in answer.text
    for other in ("panel.css", "../app.py", "nothing.js"):
        assert (await web.get(f"/panel/static/{other}")).status_code == 404


# --- binding the ticket ---------------------------------------------------------------------


async def test_the_ticket_zendesk_names_binds_its_requester_verified(
    web, services, zendesk, hosts, ticket
) -> None:
    loader = await enter(web, zendesk, hosts)
    answer = await bind(web, loader, ticket)
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/panel/s/{session_of(loader)}/card"
    row = await session_row(services, session_of(loader))
    assert (row.ticket, row.requester) == (ticket, JANE)  # from Zendesk's API, lower-cased
    card = await web.get(answer.headers["location"])
    assert "Jane Doe" in card.text and "Verified" in card.text
    assert f"Zendesk ticket {ticket}" in card.text
    # Bound: the loader sends the agent straight to the card.
    again = await web.get(loader)
    assert again.status_code == 303 and again.headers["location"].endswith("/card")
    assert zendesk.problems == []


async def test_a_session_bound_to_a_ticket_refuses_another(
    web, services, zendesk, hosts, ticket
) -> None:
    other = str(zendesk.ticket("Other", "Hello", requester_email="john.smith@example.com"))
    loader = await enter(web, zendesk, hosts)
    assert (await bind(web, loader, ticket)).status_code == 303
    refused = await bind(web, loader, other)
    assert refused.status_code == 409
    assert f"already open on ticket {ticket}" in refused.text
    row = await session_row(services, session_of(loader))
    assert (row.ticket, row.requester) == (ticket, JANE)
    # The same ticket again (the loader reloaded) is no new binding: the card.
    same = await bind(web, loader, ticket)
    assert same.status_code == 303 and same.headers["location"].endswith("/card")


async def test_a_ticket_zendesk_does_not_have_is_refused_clearly(
    web, services, zendesk, hosts
) -> None:
    loader = await enter(web, zendesk, hosts)
    answer = await bind(web, loader, "4040404")
    assert answer.status_code == 404
    assert "Zendesk has no ticket 4040404" in answer.text
    row = await session_row(services, session_of(loader))
    assert (row.ticket, row.requester) == (None, None)


async def test_a_ticket_whose_requester_has_no_email_binds_nothing(
    web, services, zendesk, hosts
) -> None:
    phoned = str(zendesk.ticket("Call", "Voicemail", requester_email=None))
    loader = await enter(web, zendesk, hosts)
    answer = await bind(web, loader, phoned)
    assert answer.status_code == 422
    assert f"Ticket {phoned} has no requester with an email address" in answer.text
    assert (await session_row(services, session_of(loader))).ticket is None


async def test_a_ticket_whose_requester_is_gone_binds_nothing(
    web, services, zendesk, hosts, ticket
) -> None:
    zendesk.forget_user(zendesk.tickets[int(ticket)].requester_id)
    loader = await enter(web, zendesk, hosts)
    answer = await bind(web, loader, ticket)
    assert answer.status_code == 422 and "no requester with an email" in answer.text
    assert (await session_row(services, session_of(loader))).ticket is None


async def test_when_zendesk_cannot_be_asked_nothing_is_bound_and_a_retry_works(
    web, services, zendesk, hosts, ticket
) -> None:
    loader = await enter(web, zendesk, hosts)
    zendesk.fail_next(1, 503)
    answer = await bind(web, loader, ticket)
    assert answer.status_code == 503 and "reload to try again" in answer.text
    assert (await session_row(services, session_of(loader))).ticket is None
    assert (await bind(web, loader, ticket)).status_code == 303


@pytest.mark.parametrize("given", ["12a", "-1", "1" * 21, "%2e%2e", "1%2F2"])
async def test_a_ticket_that_is_not_a_zendesk_number_is_refused(
    web, services, zendesk, hosts, given
) -> None:
    loader = await enter(web, zendesk, hosts)
    answer = await bind(web, loader, given)
    assert answer.status_code in (400, 404)
    assert (await session_row(services, session_of(loader))).ticket is None
    assert [e for e in zendesk.exchanges if "/tickets/" in e.path] == []


@pytest.mark.parametrize("site", ["cross-site", "same-site", "none"])
async def test_the_ticket_route_reached_from_anywhere_but_our_loader_binds_nothing(
    web, services, zendesk, hosts, ticket, site
) -> None:
    loader = await enter(web, zendesk, hosts)
    answer = await bind(web, loader, ticket, **{"Sec-Fetch-Site": site})
    assert answer.status_code == 403
    assert (await session_row(services, session_of(loader))).ticket is None


async def test_a_forged_or_foreign_session_path_opens_nothing(
    web, services, zendesk, hosts, ticket
) -> None:
    loader = await enter(web, zendesk, hosts)
    forged = "pn_" + "A" * 24
    for path in (f"/panel/s/{forged}/zendesk/ticket/{ticket}", f"/panel/s/{forged}/zendesk"):
        assert (await web.get(path, headers={"Sec-Fetch-Site": "same-origin"})).status_code == 401
    # Another agent's session, with this agent's cookie: nothing either.
    async for other in client_for(services):
        theirs = await enter(other, zendesk, hosts)
        answer = await bind(web, theirs, ticket)
        assert answer.status_code == 401
        assert (await session_row(services, session_of(theirs))).ticket is None
    # Without any cookie.
    web.cookies.clear()
    assert (await bind(web, loader, ticket)).status_code == 401
    assert (await session_row(services, session_of(loader))).ticket is None


@pytest.mark.parametrize("helpdesk", ["front", "freshdesk"])
async def test_the_ticket_route_and_loader_refuse_a_session_not_opened_from_zendesk(
    web, services, hosts, ticket, helpdesk
) -> None:
    if helpdesk == "front":
        answer = await web.get(
            "/panel/entry/front",
            params={"auth_secret": FRONT_SECRET, "teammate": ALEX, "conversation": "cnv_1"},
        )
    else:
        answer = await web.get(hosts.freshdesk_url(FRESHDESK_SECRET, agent=ALEX, ticket="77"))
    assert answer.status_code == 303
    root = answer.headers["location"].rsplit("/", 1)[0]
    # Its agent proved their email (Front and Freshdesk do not vouch): still not Zendesk's.
    await panel_session.confirm(services, session_of(answer.headers["location"]))
    refused = await web.get(
        f"{root}/zendesk/ticket/{ticket}", headers={"Sec-Fetch-Site": "same-origin"}
    )
    assert refused.status_code == 403 and "Only a panel opened from Zendesk" in refused.text
    assert (await web.get(f"{root}/zendesk")).status_code == 403
    row = await session_row(services, session_of(answer.headers["location"]))
    assert row.requester is None and row.ticket != ticket


async def test_markup_in_the_requesters_email_reaches_the_card_as_text(web, zendesk, hosts) -> None:
    hostile = str(zendesk.ticket("x", "y", requester_email='"><svg/onload=alert(1)>@evil.example'))
    loader = await enter(web, zendesk, hosts)
    answer = await bind(web, loader, hostile)
    assert answer.status_code == 303
    card = await web.get(answer.headers["location"])
    assert "<svg" not in card.text


async def test_the_api_token_and_the_requesters_email_stay_out_of_the_logs(
    web, zendesk, hosts, ticket, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    loader = await enter(web, zendesk, hosts)
    await bind(web, loader, "4040404")
    await bind(web, loader, ticket)
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("bot"))
    assert f"bound to Zendesk ticket {ticket}" in logged
    assert zendesk.api_token not in logged and JANE not in logged.lower()
