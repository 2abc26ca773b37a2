"""Front's plugin page: the one URL Front knows, which shows nothing without the plugin's
auth_secret, and with it runs only Front's SDK and our own script (which opens the signed
entry for each conversation: test_embedding_browser.py runs it in Chromium)."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import httpx
import pytest

from bot.services import Services
from bot.settings import Settings
from tests.panel.entries_support import FRONT_SECRET, client_for, sessions, with_helpdesk

pytestmark = pytest.mark.storage

SDK = "https://dl.frontapp.com/libs/plugin-sdk-1.8.1.min.js"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return with_helpdesk(settings, "front", plugin_auth_secret=FRONT_SECRET)


@pytest.fixture
async def web(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    async for client in client_for(services):
        yield client


def plugin(auth_secret: str | None = FRONT_SECRET, **more: str) -> str:
    query = ({"auth_secret": auth_secret} if auth_secret is not None else {}) | more
    return f"/panel/front?{urlencode(query)}"


async def test_the_plugin_page_runs_fronts_sdk_and_our_script_and_frames_only_our_entry(
    web, services
) -> None:
    page = await web.get(plugin())
    assert page.status_code == 200
    tags = re.findall(r"<script\b([^>]*)>(.*?)</script>", page.text, re.S)
    assert [body.strip() for _, body in tags] == ["", ""]  # no inline script
    assert [re.search(r'src="([^"]+)"', a).group(1) for a, _ in tags] == [  # type: ignore[union-attr]
        SDK,
        "/panel/static/front-loader.js",
    ]
    policy = page.headers["content-security-policy"]
    assert f"script-src 'self' {SDK};" in policy and "frame-src 'self';" in policy
    assert "'unsafe-inline'" not in policy and "default-src 'none'" in policy
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert 'data-entry-url="/panel/entry/front"' in page.text
    # The secret stays where Front put it (the page's address): not in the page.
    assert FRONT_SECRET not in page.text
    assert await sessions(services) == 0  # the page itself opens nothing


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (plugin(auth_secret=None), "missing auth_secret"),
        (plugin(auth_secret="guessed"), "forged auth_secret"),
        (plugin(auth_secret=FRONT_SECRET[:-1]), "forged auth_secret"),
        (plugin() + "&auth_secret=guessed", "given twice"),
    ],
)
async def test_without_the_plugins_secret_the_page_shows_nothing(web, services, url, reason):
    answer = await web.get(url)
    assert answer.status_code == 403 and reason in answer.text
    assert "<script" not in answer.text and "frontapp" not in answer.text
    assert "script-src" not in answer.headers["content-security-policy"]
    assert await sessions(services) == 0


async def test_without_a_plugin_secret_configured_the_page_refuses_everything(services) -> None:
    from dataclasses import replace

    settings = with_helpdesk(services.settings, "front", plugin_auth_secret=None)
    async for web in client_for(replace(services, settings=settings)):
        answer = await web.get(plugin())
        assert answer.status_code == 403 and "not configured" in answer.text


async def test_guessing_the_secret_counts_with_the_entries_refusals(web) -> None:
    for _ in range(15):
        assert (await web.get(plugin(auth_secret="guess"))).status_code == 403
        entry = await web.get("/panel/entry/front?auth_secret=guess&teammate=a%40example.com")
        assert entry.status_code == 403
    # Thirty refusals from this client, at either door: the right secret waits an hour too.
    assert (await web.get(plugin())).status_code == 429
    assert (await web.get("/panel/entry/front?auth_secret=x")).status_code == 429


async def test_the_secret_never_reaches_the_logs(web, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    assert (await web.get(plugin())).status_code == 200
    assert (await web.get(plugin(auth_secret=FRONT_SECRET + "x"))).status_code == 403
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("bot"))
    assert "plugin page from front refused: forged auth_secret" in logged
    assert FRONT_SECRET not in logged


async def test_the_plugin_script_opens_the_entry_with_the_contexts_teammate_and_contact(
    web,
) -> None:
    answer = await web.get("/panel/static/front-loader.js")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/javascript")
    script = answer.text
    assert "Front.contextUpdates.subscribe" in script
    for param in ("auth_secret", "teammate", "teammate_name", "conversation", "contact"):
        assert f"{param}:" in script
    assert 'recipient.type === "email"' in script  # a phone number is no contact email


def test_the_access_log_line_of_the_plugin_page_hides_its_secret() -> None:
    from bot.portal.redact import redact

    line = f'203.0.113.7:0 - "GET {plugin()} HTTP/1.1" 200'
    assert redact(line) == '203.0.113.7:0 - "GET /panel/front?[redacted] HTTP/1.1" 200'
