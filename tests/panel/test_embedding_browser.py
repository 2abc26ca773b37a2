"""The agent panel inside each helpdesk, in a real browser: headless Chromium (the system's).

`chargedesk serve` runs on http://localhost:PORT; each helpdesk's page around it is a host
page on http://127.0.0.1:PORT2 (chargedesk_emulators.helpdesk_hosts), another site to the
browser, so the panel's cookie (SameSite=None; Secure; Partitioned) is a third-party
cookie, as inside Zendesk, Front or Freshdesk. Each host signs its entry the way its
helpdesk does, and stands in for its SDK where the panel's loader pages use one (Zendesk's
ZAF SDK says which ticket is open; Front's plugin SDK gives the teammate's context).
Pages are photographed into $CHARGEDESK_ARTIFACTS/panel-embedding (or a temporary folder).
Skipped, saying why, where Chromium or Playwright is missing.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import uvicorn

from bot.services import Services
from bot.settings import PanelSettings, PortalSettings, Settings
from bot.store.tables import PanelSessionRow
from bot.web import create_app
from chargedesk_emulators.helpdesk_hosts import HelpdeskHosts, helpdesk_hosts, new_rsa_key
from chargedesk_emulators.helpscout import HelpScoutEmulator, helpscout_api
from chargedesk_emulators.zendesk import ZendeskEmulator, zendesk_api
from tests.conftest import refunded
from tests.panel.entries_support import (
    ALEX,
    FRESHDESK_SECRET,
    FRONT_SECRET,
    JANE,
    MARIA,
    latest_code,
    session_row,
    with_helpdesk,
)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip(
        "no Chromium on this machine: install Debian's `chromium` (.ci/run does)",
        allow_module_level=True,
    )
playwright_api = pytest.importorskip(
    "playwright.async_api", reason="Playwright is not installed: pip install -e '.[test]'"
)
expect = playwright_api.expect

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SESSION = re.compile(r"/panel/s/(pn_[A-Za-z0-9_-]+)/")

pytestmark = [pytest.mark.storage, pytest.mark.approvals]


@dataclasses.dataclass
class Stage:
    """The panel's server, the helpdesks' host pages and APIs, and the test's services."""

    panel: str
    hosts: HelpdeskHosts
    zendesk: ZendeskEmulator
    helpscout: HelpScoutEmulator
    services: Services
    shots: Path

    async def shoot(self, page: playwright_api.Page, name: str) -> None:
        await page.screenshot(path=self.shots / f"{name}.png", full_page=True)


@pytest.fixture
def shots(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    root = os.environ.get("CHARGEDESK_ARTIFACTS")
    folder = Path(root) / "panel-embedding" / request.node.name if root else tmp_path / "shots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def stage(services: Services, shots: Path) -> Iterator[Stage]:
    """`chargedesk serve` on localhost, the host pages on 127.0.0.1, sharing the test's stores."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    panel = f"http://localhost:{sock.getsockname()[1]}"
    with (
        helpdesk_hosts(panel) as hosts,
        zendesk_api(subdomain=hosts.subdomain) as zendesk,
        helpscout_api() as helpscout,
    ):
        settings = _settings(services.settings, panel, hosts, zendesk, helpscout)
        server = uvicorn.Server(
            uvicorn.Config(create_app(settings), log_level="warning", access_log=False,
                           lifespan="on")
        )  # fmt: skip
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("chargedesk serve did not start")
            time.sleep(0.02)
        try:
            yield Stage(panel, hosts, zendesk, helpscout,
                        dataclasses.replace(services, settings=settings), shots)  # fmt: skip
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            sock.close()


def _settings(
    settings: Settings, panel: str, hosts: HelpdeskHosts, zendesk: ZendeskEmulator,
    helpscout: HelpScoutEmulator,
) -> Settings:  # fmt: skip
    settings = with_helpdesk(
        settings, "zendesk", subdomain=hosts.subdomain, email=zendesk.email,
        api_token=zendesk.api_token, base_url=zendesk.base_url,
        app_public_key=hosts.zaf_public_key, app_audience=hosts.zaf_audience,
        zaf_sdk_url=hosts.zaf_sdk_url,
    )  # fmt: skip
    settings = with_helpdesk(
        settings, "front", plugin_auth_secret=FRONT_SECRET, plugin_sdk_url=hosts.front_sdk_url
    )
    settings = with_helpdesk(settings, "freshdesk", panel_secret=FRESHDESK_SECRET)
    settings = with_helpdesk(
        settings, "helpscout", app_id=helpscout.app_id, app_secret=helpscout.app_secret,
        secret_key=helpscout.secret_key, base_url=helpscout.base_url,
    )  # fmt: skip
    return settings.model_copy(
        update={
            "portal": PortalSettings(base_url=panel, secret=settings.portal.secret),
            "panel": PanelSettings(frame_ancestors=[hosts.base_url]),
            "jobs_in_process": True,
        }
    )


@pytest.fixture
async def browser() -> AsyncIterator[playwright_api.Browser]:
    async with playwright_api.async_playwright() as driver:
        chromium = await driver.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


async def new_page(browser: playwright_api.Browser) -> playwright_api.Page:
    """A fresh browser profile (its own cookies): one person at their own desk."""
    context = await browser.new_context(viewport={"width": 1100, "height": 900})
    return await context.new_page()


async def panel_frame(
    page: playwright_api.Page, stage: Stage, under: str = "/panel/"
) -> playwright_api.Frame:
    """The panel's iframe inside the host page, once it has loaded a page under `under`."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for frame in page.frames:
            if frame.url.startswith(f"{stage.panel}{under}"):
                await frame.wait_for_load_state()
                return frame
        await page.wait_for_timeout(50)
    raise AssertionError(f"no panel frame in {[f.url for f in page.frames]}")


def session_of(frame: playwright_api.Frame) -> str:
    found = SESSION.search(frame.url)
    assert found, frame.url
    return found.group(1)


async def search_for(frame: playwright_api.Frame, email: str) -> None:
    await frame.get_by_label("Email or ID").fill(email)
    await frame.get_by_role("button", name="Search").click()
    await expect(frame.get_by_text("Jane Doe").first).to_be_visible()


async def refund(frame: playwright_api.Frame, amount: str) -> None:
    """Refund `amount` of Jane's first charge from the card in `frame`."""
    await frame.get_by_role("button", name="Refund ch_jane_1").click()
    await frame.locator("#f-amount").fill(amount)
    if await frame.locator("#f-reason_code").count():  # when the policy asks for reason codes
        await frame.locator("#f-reason_code").select_option("duplicate")
    await frame.locator("#f-reason_text").fill("charged twice")
    await frame.locator("form.panel button[type=submit]").click()
    await frame.wait_for_load_state()


async def zendesk_agent(
    browser, stage: Stage, email: str, name: str, ticket: int | None
) -> playwright_api.Frame:
    """`email` opens Zendesk `ticket`: the sidebar app's signed POST opens the panel on its
    loader, which asks the (stand-in) ZAF SDK for the ticket and lands on its card."""
    user = stage.zendesk.agent(email, name)
    page = await new_page(browser)
    await page.goto(stage.hosts.zendesk_page(stage.hosts.zaf_token(user), ticket=ticket))
    frame = await panel_frame(page, stage)
    await frame.wait_for_url(re.compile(r"/(card|zendesk)(\?.*)?$"))
    if ticket is not None:
        await frame.wait_for_url(re.compile(r"/card$"))
    return frame


# --- the flows ------------------------------------------------------------------------------


async def test_an_agent_in_a_zendesk_ticket_refunds_and_a_manager_approves_in_the_panel(
    stage, browser
) -> None:
    ticket = stage.zendesk.ticket("Charged twice", "Please refund", requester_email=JANE)
    alex = await zendesk_agent(browser, stage, ALEX, "Alex Agent", ticket)
    assert alex.page.url.startswith(stage.hosts.base_url)  # the host page is another site
    # Zendesk's ticket, its requester read from Zendesk's API: Jane's card, verified.
    await expect(alex.get_by_text(f"Zendesk ticket {ticket}").first).to_be_visible()
    await expect(alex.get_by_text("Jane Doe").first).to_be_visible()
    await expect(alex.get_by_text("Verified", exact=True).first).to_be_visible()
    card = alex.url
    await stage.shoot(alex.page, "zendesk-card")
    await refund(alex, "80")  # over the agent's 50.00 EUR: a manager decides
    waiting = alex.get_by_text(re.compile(r"Waiting for approval apr_[0-9a-f]+"))
    await expect(waiting.first).to_be_visible()
    request = re.search(r"apr_[0-9a-f]+", await waiting.first.inner_text())
    assert request is not None
    assert await refunded(stage.services, "ch_jane_1") == 0
    await stage.shoot(alex.page, "zendesk-waiting")

    maria = await zendesk_agent(browser, stage, MARIA, "Maria Manager", ticket)
    await maria.locator('a[href$="/approvals"]').first.click()
    await expect(maria.get_by_text(request.group(0)).first).to_be_visible()
    await maria.get_by_role("button", name="Approve").first.click()
    await expect(maria.get_by_text(f"Your decision on {request.group(0)}")).to_be_visible()
    await stage.shoot(maria.page, "zendesk-approved")
    assert await refunded(stage.services, "ch_jane_1") == 8000

    # The agent's panel, drawn again, shows the outcome.
    await alex.goto(card)
    await expect(alex.get_by_text(request.group(0)).first).to_be_visible()
    await expect(alex.get_by_text(re.compile(r"done", re.I)).first).to_be_visible()
    await stage.shoot(alex.page, "zendesk-outcome")
    # The ticket bound from the SDK is where the notes go: the request, then its outcome.
    deadline = time.monotonic() + 20
    while len(stage.zendesk.notes(ticket)) < 2 and time.monotonic() < deadline:
        await alex.page.wait_for_timeout(100)
    bodies = " ".join(str(note) for note in stage.zendesk.notes(ticket))
    assert request.group(0) in bodies and "done" in bodies
    assert stage.zendesk.problems == []


async def test_a_zendesk_sidebar_whose_framework_names_no_ticket_offers_search(
    stage, browser
) -> None:
    alex = await zendesk_agent(browser, stage, ALEX, "Alex Agent", None)
    await expect(alex.get_by_text("Zendesk did not say which ticket is open here")).to_be_visible()
    await alex.get_by_role("link", name="Search for a customer").click()
    await search_for(alex, JANE)
    await expect(alex.get_by_text("Not verified").first).to_be_visible()
    await stage.shoot(alex.page, "zendesk-no-ticket")


def _unvouched_page(stage: Stage, helpdesk: str, ticket: str) -> str:
    """The host page of a Front conversation or a Freshdesk ticket, its entry signed anew."""
    if helpdesk == "front":
        return stage.hosts.front_page(
            FRONT_SECRET, teammate=ALEX, teammate_name="Alex Agent", conversations={ticket: JANE}
        )
    return stage.hosts.freshdesk_page(
        stage.hosts.freshdesk_url(FRESHDESK_SECRET, agent=ALEX, name="Alex Agent",
                                  ticket=ticket, requester=JANE)
    )  # fmt: skip


@pytest.mark.parametrize("helpdesk", ["front", "freshdesk"])
async def test_an_unvouched_agent_confirms_their_email_then_asks_for_a_refund(
    stage, browser, helpdesk
) -> None:
    page = await new_page(browser)
    await page.goto(_unvouched_page(stage, helpdesk, "1001"))
    frame = await panel_frame(page, stage, "/panel/s/")
    # Nobody vouched for the agent: who the helpdesk says this is, the code step, no customer.
    await frame.wait_for_url(re.compile(r"/confirm$"))
    said = helpdesk.capitalize()
    await expect(frame.get_by_text(f"{said} says you are Alex Agent ({ALEX}).")).to_be_visible()
    body = await frame.locator("body").inner_text()
    assert "Jane" not in body and "ch_jane" not in body
    assert await frame.get_by_role("link", name="Search").count() == 0
    await stage.shoot(page, f"{helpdesk}-unconfirmed")

    await frame.get_by_role("button", name=f"Send a code to {ALEX}").click()
    await expect(frame.get_by_text(f"A code is on its way to {ALEX}")).to_be_visible()
    _, code = await latest_code(stage.services, session_of(frame))
    await frame.get_by_label("The code from the email").fill(code)
    await frame.get_by_role("button", name="Confirm", exact=True).click()
    await frame.wait_for_load_state()
    await stage.shoot(page, f"{helpdesk}-confirmed")

    await expect(frame.get_by_role("button", name="Refund ch_jane_1")).to_be_visible()
    await refund(frame, "10")
    # Confirmed, the agent acts with their roles, behind the policy (here: a manager decides).
    await expect(frame.get_by_text(re.compile(r"Waiting for approval apr_")).first).to_be_visible()
    await expect(frame.get_by_text(f"{helpdesk}:{ALEX}", exact=False).first).to_be_visible()
    await stage.shoot(page, f"{helpdesk}-requested")
    assert await refunded(stage.services, "ch_jane_1") == 0

    # The next load (Front: every plugin load is a new session) opens confirmed in this
    # browser: its cookie (Partitioned, Path=/panel) reached the entry inside the host page.
    first = session_of(frame)
    await page.goto(_unvouched_page(stage, helpdesk, "1002"))
    again = await panel_frame(page, stage, "/panel/s/")
    await again.wait_for_url(re.compile(rf"/panel/s/(?!{first})pn_[^/]+/card$"))
    await expect(again.get_by_role("button", name="Refund ch_jane_1")).to_be_visible()
    await stage.shoot(page, f"{helpdesk}-remembered")
    # Another person's browser is not this one: the code step again.
    other = await new_page(browser)
    await other.goto(_unvouched_page(stage, helpdesk, "1003"))
    elsewhere = await panel_frame(other, stage, "/panel/s/")
    await elsewhere.wait_for_url(re.compile(r"/confirm$"))


async def test_fronts_plugin_page_follows_the_conversation_the_teammate_opens(
    stage, browser
) -> None:
    john = "john.smith@example.com"
    page = await new_page(browser)
    await page.goto(
        stage.hosts.front_page(
            FRONT_SECRET, teammate=ALEX, teammate_name="Alex Agent",
            conversations={"cnv_1": JANE, "cnv_2": john, "cnv_3": None},
        )
    )  # fmt: skip
    plugin = await panel_frame(page, stage, "/panel/front")
    panel = await panel_frame(page, stage, "/panel/s/")
    opened = [session_of(panel)]
    await stage.shoot(page, "front-plugin-cnv_1")

    async def open_conversation(name: str) -> PanelSessionRow:
        """The teammate opens `name` in Front: the plugin page opens its own panel session."""
        await page.get_by_role("button", name=f"Open {name}").click()
        await panel.wait_for_url(re.compile(rf"/panel/s/(?!{'|'.join(opened)})pn_[^/]+/"))
        opened.append(session_of(panel))
        return await session_row(stage.services, opened[-1])

    # What Front's SDK said reached the signed entry: the teammate, the conversation, its
    # contact (the card's customer), one session per conversation.
    first = await session_row(stage.services, opened[0])
    assert (first.helpdesk, first.agent_email, first.agent_name) == ("front", ALEX, "Alex Agent")
    assert (first.ticket, first.requester, first.vouched) == ("cnv_1", JANE, False)
    second = await open_conversation("cnv_2")
    assert (second.agent_email, second.ticket, second.requester) == (ALEX, "cnv_2", john)
    # A phone contact is no email: that panel has no customer of its own.
    third = await open_conversation("cnv_3")
    assert (third.ticket, third.requester) == ("cnv_3", None)
    # No conversation open: no panel, no customer.
    await page.get_by_role("button", name="Open none").click()
    await expect(plugin.get_by_text("Open a single conversation")).to_be_visible()
    assert await plugin.locator("#plugin-panel").is_hidden()
    await stage.shoot(page, "front-plugin-none")
    assert len(set(opened)) == 3


async def test_a_help_scout_sidebar_link_opens_the_panel_in_a_new_tab(stage, browser) -> None:
    page = await new_page(browser)
    payload = {
        "ticket": {"id": 777, "number": 77, "subject": "Billing question"},
        "customer": {"id": 5, "email": JANE},
        "user": {"fname": "Alex", "lname": "Agent", "id": 99, "email": ALEX},
        "mailbox": {"id": 1, "email": "support@example.com"},
    }
    await page.goto(
        stage.hosts.helpscout_page(
            f"{stage.panel}/helpdesk/helpscout/sidebar", stage.helpscout.secret_key, payload
        )
    )
    async with page.context.expect_page() as opening:
        await page.get_by_role("link", name="Act in the agent panel").click()
    panel = await opening.value
    await panel.wait_for_load_state()
    assert SESSION.search(panel.url) and panel.url.endswith("/card")
    await expect(panel.get_by_role("button", name="Refund ch_jane_1")).to_be_visible()
    await stage.shoot(panel, "helpscout-panel")


# --- refused in the browser too --------------------------------------------------------------


async def test_forged_expired_and_replayed_entries_open_nothing_in_the_iframe(
    stage, browser
) -> None:
    alex = stage.zendesk.agent(ALEX, "Alex Agent")
    good = stage.hosts.zaf_token(alex)
    link = stage.hosts.freshdesk_url(FRESHDESK_SECRET, agent=ALEX, requester=JANE)
    cases = {
        "zendesk-forged": stage.hosts.zendesk_page(stage.hosts.zaf_token(alex, key=new_rsa_key())),
        "zendesk-expired": stage.hosts.zendesk_page(
            stage.hosts.zaf_token(alex, issued_at=time.time() - 600)
        ),
        "zendesk-first": stage.hosts.zendesk_page(good),
        "zendesk-replayed": stage.hosts.zendesk_page(good),
        "front-forged": stage.hosts.front_page(
            "guessed", teammate=ALEX, conversations={"cnv_1": JANE}
        ),
        "freshdesk-first": stage.hosts.freshdesk_page(link),
        "freshdesk-replayed": stage.hosts.freshdesk_page(link),
    }
    said = {}
    for name, url in cases.items():
        page = await new_page(browser)
        await page.goto(url)
        frame = await panel_frame(page, stage)
        said[name] = await frame.locator("body").inner_text()
        await stage.shoot(page, name)
        await page.context.close()
    assert "forged token" in said["zendesk-forged"]
    assert "expired token" in said["zendesk-expired"]
    assert "already used" in said["zendesk-replayed"]
    assert "forged auth_secret" in said["front-forged"]
    assert "already used" in said["freshdesk-replayed"]
    for opened in ("zendesk-first", "freshdesk-first"):
        assert "not opened" not in said[opened]


async def test_the_panel_refuses_to_be_framed_by_a_site_not_configured(stage, browser) -> None:
    # The same signed entry, framed by a page the panel does not name in frame-ancestors.
    with helpdesk_hosts(stage.panel) as outsider:
        page = await new_page(browser)
        link = stage.hosts.freshdesk_url(FRESHDESK_SECRET, agent=ALEX, requester=JANE)
        await page.goto(outsider.freshdesk_page(link))
        await page.wait_for_timeout(500)
        framed = [f for f in page.frames if f.url.startswith(f"{stage.panel}/panel/s/")]
        texts = [await f.locator("body").inner_text() for f in framed]
        assert not any("Jane Doe" in t for t in texts)
