"""Freshdesk's entry: a panel URL the app's serverless function signed (bot/panel/links.py).

The app's server.js and our verifier must agree byte for byte: a fixed vector pins the
canonical string, and where `node` is installed the real server.js signs and we verify.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest

from bot.actors import Role
from bot.panel import links
from bot.panel import session as panel_session
from bot.panel.entry import EntryRefused
from bot.services import Services
from bot.settings import Settings
from chargedesk_emulators.helpdesk_hosts import HelpdeskHosts
from tests.panel.entries_support import (
    ALEX,
    FRESHDESK_SECRET,
    JANE,
    client_for,
    opened,
    refused,
    session_row,
    sessions,
    with_helpdesk,
)

REPO = Path(__file__).resolve().parents[2]
SERVER_JS = REPO / "apps" / "freshdesk" / "server" / "server.js"
NODE = shutil.which("node")
# One link, pinned: what server.js and bot/panel/links.py both make of these inputs.
VECTOR = {
    "context": {
        "agent": ALEX,
        "name": "Zoë O'Brien & <Co>",
        "ticket": "42",
        "requester": JANE,
        "locale": "de",
    },
    "now": 1_900_000_000,
    "nonce": "nonce-0123456789abcdef",
    "sig": "3b1c04ec54f8ead7ac8bcef5c7d1f25498baaa2912fd646037fdd6cb17fb117d",
}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return with_helpdesk(settings, "freshdesk", panel_secret=FRESHDESK_SECRET)


@pytest.fixture
async def web(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    async for client in client_for(services):
        yield client


@pytest.fixture
def hosts() -> HelpdeskHosts:
    return HelpdeskHosts("https://localhost:8000")


def path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def params(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def app_link(hosts: HelpdeskHosts, **overrides: object) -> str:
    values: dict = {"agent": ALEX, "name": "Alex Agent", "ticket": "1001", "requester": JANE}
    return hosts.freshdesk_url(FRESHDESK_SECRET, **{**values, **overrides})


# --- the canonical string, one for both sides -----------------------------------------------


def test_the_pinned_vector_is_what_our_signer_makes() -> None:
    context = VECTOR["context"]
    signed = links.sign(
        FRESHDESK_SECRET.encode(), "freshdesk", agent_email=context["agent"],
        agent_name=context["name"], ticket=context["ticket"], requester=context["requester"],
        locale=context["locale"], lifetime=60, now=VECTOR["now"], nonce=VECTOR["nonce"],
    )  # fmt: skip
    assert signed["sig"] == VECTOR["sig"]
    found = links.verify(
        FRESHDESK_SECRET.encode(), "freshdesk", signed, max_lifetime=120, now=VECTOR["now"]
    )
    assert (found.agent_name, found.ticket, found.locale) == ("Zoë O'Brien & <Co>", "42", "de")


@pytest.mark.skipif(NODE is None, reason="node is not installed: the pinned vector stands in")
def test_the_apps_server_js_signs_what_we_verify() -> None:
    script = (
        f"const s = require({json.dumps(str(SERVER_JS))});"
        f"const c = {json.dumps(VECTOR['context'])};"
        f"c.name += '\\n';"  # a line break in a name becomes nothing server.js signs
        f"console.log(s._signedUrl('https://h.example/panel/entry/freshdesk', "
        f"{json.dumps(FRESHDESK_SECRET)}, c, {VECTOR['now']} * 1000, {json.dumps(VECTOR['nonce'])}));"
    )
    url = subprocess.run(
        [NODE, "-e", script], check=True, capture_output=True, text=True, timeout=30
    ).stdout.strip()
    given = params(url)
    assert given["sig"] == VECTOR["sig"]
    found = links.verify(
        FRESHDESK_SECRET.encode(), "freshdesk", given, max_lifetime=120, now=VECTOR["now"]
    )
    assert found.agent_email == ALEX and found.requester == JANE


def test_the_host_page_signs_as_server_js_does(hosts) -> None:
    context = VECTOR["context"]
    url = hosts.freshdesk_url(
        FRESHDESK_SECRET, agent=context["agent"], name=context["name"], ticket=context["ticket"],
        requester=context["requester"], locale=context["locale"], lifetime=60,
        issued_at=VECTOR["now"], nonce=VECTOR["nonce"],
    )  # fmt: skip
    assert params(url)["sig"] == VECTOR["sig"]


@pytest.mark.parametrize("field", ["agent", "name", "ticket", "requester", "locale", "exp"])
def test_changing_any_signed_field_breaks_the_signature(hosts, field) -> None:
    given = params(app_link(hosts, locale="en"))
    given[field] = "1" + given[field] if field == "exp" else given[field] + "x"
    with pytest.raises(EntryRefused, match="forged"):
        links.verify(FRESHDESK_SECRET.encode(), "freshdesk", given, max_lifetime=120)


def test_a_value_cannot_forge_a_line_of_the_canonical_string() -> None:
    # "a\nb" as a name must not sign like name "a" and ticket "b": values are encoded.
    one = links.canonical("freshdesk", {"name": "a\nb"})
    two = links.canonical("freshdesk", {"name": "a", "ticket": "b"})
    assert one != two and one.count("\n") == two.count("\n") == 8


# --- the entry --------------------------------------------------------------------------


@pytest.mark.storage
async def test_a_link_the_app_signed_opens_a_session_that_shows_nothing_until_confirmed(
    web, services, hosts
) -> None:
    answer = await web.get(path(app_link(hosts)))
    session_id = opened(answer)
    assert answer.headers["location"].endswith("/confirm")
    row = await session_row(services, session_id)
    assert (row.helpdesk, row.agent_email, row.ticket, row.requester) == (
        "freshdesk", ALEX, "1001", JANE,
    )  # fmt: skip
    assert not row.vouched
    live = await panel_session.load(services, session_id)
    assert live is not None and not live.admitted
    assert panel_session.actor(services.settings, live).roles == {Role.customer}
    card = await web.get(f"/panel/s/{session_id}/card")
    assert card.status_code == 303 and card.headers["location"].endswith("/confirm")


@pytest.mark.storage
async def test_a_link_opens_once(web, services, hosts) -> None:
    url = path(app_link(hosts))
    opened(await web.get(url))
    refused(await web.get(url), "already used")
    assert await sessions(services) == 1


@pytest.mark.storage
@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda h: h.freshdesk_url("another-secret-of-32-characters!!", agent=ALEX), "forged"),
        (lambda h: app_link(h, issued_at=time.time() - 120), "expired"),
        (lambda h: app_link(h, lifetime=3600), "lives too long"),
        (lambda h: app_link(h, agent="nobody"), "no agent email"),
        (lambda h: app_link(h, requester="nobody"), "not an email"),
        (lambda h: app_link(h, name="x" * 201), "too long"),
        (lambda h: app_link(h, nonce="short"), "nonce"),
    ],
)
async def test_a_link_not_fresh_and_genuine_is_refused(web, services, hosts, make, reason) -> None:
    refused(await web.get(path(make(hosts))), reason)
    assert await sessions(services) == 0


@pytest.mark.storage
@pytest.mark.parametrize("drop", ["sig", "exp", "nonce"])
async def test_a_link_missing_a_part_is_malformed(web, hosts, drop) -> None:
    given = params(app_link(hosts))
    del given[drop]
    refused(await web.get(f"/panel/entry/freshdesk?{urlencode(given)}"), "malformed")


@pytest.mark.storage
async def test_a_freshdesk_link_opens_no_other_helpdesks_entry(web, hosts) -> None:
    url = path(app_link(hosts)).replace("/entry/freshdesk", "/entry/helpscout")
    refused(await web.get(url), "forged")


@pytest.mark.storage
async def test_without_its_secret_freshdesk_entry_refuses_everything(services, hosts) -> None:
    from dataclasses import replace

    settings = with_helpdesk(services.settings, "freshdesk", panel_secret=None)
    async for web in client_for(replace(services, settings=settings)):
        refused(await web.get(path(app_link(hosts))), "not configured")


@pytest.mark.storage
async def test_links_never_reach_the_logs(web, hosts, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    good = app_link(hosts)
    opened(await web.get(path(good)))
    refused(await web.get(path(good)), "already used")
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("bot"))
    assert "panel entry from freshdesk refused: this entry was already used" in logged
    assert params(good)["sig"] not in logged and params(good)["nonce"] not in logged


def test_the_app_package_declares_what_server_js_needs() -> None:
    manifest = json.loads((REPO / "apps" / "freshdesk" / "manifest.json").read_text())
    assert manifest["platform-version"] == "2.3"
    freshdesk = manifest["product"]["freshdesk"]
    assert freshdesk["location"]["ticket_sidebar"]["url"] == "index.html"
    assert "signPanelUrl" in freshdesk["functions"]
    iparams = json.loads((REPO / "apps" / "freshdesk" / "config" / "iparams.json").read_text())
    assert (
        iparams["panel_secret"]["secure"] is True and iparams["panel_url"].get("secure") is not True
    )
    app_js = (REPO / "apps" / "freshdesk" / "app" / "scripts" / "app.js").read_text()
    assert "signPanelUrl" in app_js and "panel_secret" not in app_js  # the secret stays server-side
