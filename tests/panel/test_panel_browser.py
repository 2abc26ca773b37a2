"""The agent panel in a real browser: headless Chromium (the system's), driven by Playwright.

`chargedesk serve` runs under uvicorn on http://localhost, with its own services on the
test's stores, its own jobs (notes go to a Zendesk emulator) and the test entry route in
front. A "helpdesk" host page on http://127.0.0.1 (another site) shows the panel in a
320 px iframe, as Zendesk's sidebar does: the cookie must work cross-site (SameSite=None;
Secure; Partitioned), and a second host page, on an origin not configured, must be
refused by the browser itself (CSP frame-ancestors).

Screenshots go to $CHARGEDESK_ARTIFACTS/panel (CI keeps them), or a temporary folder;
docs/screenshots/panel-320.png and panel-desktop.png are copies of `panel-320` and
`panel-desktop`. Skipped, saying why, where Chromium, Playwright or axe-core is missing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
import shutil
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from bot.actors import Role
from bot.services import Services
from bot.web import create_app
from chargedesk_emulators.zendesk import ZendeskEmulator
from tests.conftest import REPO, person, refunded, say
from tests.panel.conftest import AGENT, JANE, MANAGER, entry_app, panel_settings

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip(
        "no Chromium on this machine: install Debian's `chromium` (.ci/run does)",
        allow_module_level=True,
    )
playwright_api = pytest.importorskip(
    "playwright.async_api", reason="Playwright is not installed: pip install -e '.[test]'"
)
axe_api = pytest.importorskip(
    "axe_playwright_python.async_playwright",
    reason="axe-playwright-python (axe-core) is not installed: pip install -e '.[test]'",
)

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SIDEBAR = {"width": 320, "height": 900}
DESKTOP = {"width": 1280, "height": 900}

pytestmark = [pytest.mark.storage, pytest.mark.approvals]


def _socket() -> tuple[socket.socket, int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock, sock.getsockname()[1]


@dataclasses.dataclass
class Served:
    server: uvicorn.Server
    thread: threading.Thread
    sock: socket.socket

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


def serve(app: Any, sock: socket.socket) -> Served:
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("a test server did not start")
        time.sleep(0.02)
    return Served(server, thread, sock)


def host_page(panel: str, ticket: str) -> Starlette:
    """A helpdesk's ticket page: the panel in a 320 px sidebar iframe, opened by a fresh entry."""

    async def ticket_page(request: Request) -> HTMLResponse:
        who = request.query_params.get("agent", AGENT)
        query = urlencode({
            "helpdesk": "zendesk", "agent_email": who, "agent_name": who.split("@")[0].capitalize(),
            "ticket": ticket, "requester": JANE, "token_id": secrets.token_urlsafe(12), "vouched": "1",
        })  # fmt: skip
        return HTMLResponse(
            '<!doctype html><html lang="en"><head><title>Ticket</title></head><body>'
            f"<h1>Ticket {ticket}</h1>"
            f'<iframe id="panel" title="ChargeDesk" src="{panel}/test/enter?{query}" '
            'style="width:320px;height:1400px;border:1px solid #999"></iframe></body></html>'
        )

    return Starlette(routes=[Route("/ticket", ticket_page)])


@dataclasses.dataclass
class Site:
    panel: str  # the panel's origin (http://localhost:port)
    helpdesk: str  # a host page origin the panel is configured for
    elsewhere: str  # a host page origin it is not
    services: Services
    zendesk: ZendeskEmulator
    ticket: str
    shots: Path

    def enter(self, who: str) -> str:
        query = urlencode({
            "helpdesk": "zendesk", "agent_email": who, "ticket": self.ticket, "requester": JANE,
            "token_id": secrets.token_urlsafe(12), "vouched": "1",
        })  # fmt: skip
        return f"{self.panel}/test/enter?{query}"


@pytest.fixture
def shots(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    root = os.environ.get("CHARGEDESK_ARTIFACTS")
    folder = Path(root) / "panel" / request.node.name if root else tmp_path / "screens"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def site(
    services: Services, zendesk: ZendeskEmulator, shots: Path, tmp_path: Path
) -> Iterator[Site]:
    # The server loads its policy as `chargedesk serve` does: the shipped one, as the test's.
    shipped = (REPO / "config" / "policy.toml").read_text()
    (tmp_path / "config" / "policy.toml").write_text(shipped)
    panel_sock, panel_port = _socket()
    host_sock, host_port = _socket()
    other_sock, other_port = _socket()
    panel = f"http://localhost:{panel_port}"
    helpdesk = f"http://127.0.0.1:{host_port}"
    ticket = str(zendesk.ticket("Charged twice", "Please refund", requester_email=JANE))
    settings = panel_settings(services.settings, zendesk, frame_ancestors=[helpdesk])
    # The server runs its own jobs, as `chargedesk serve` does: the notes go out from there.
    settings = settings.model_copy(update={"jobs_in_process": True})
    services.settings = settings
    running = [
        serve(entry_app(create_app(settings)), panel_sock),
        serve(host_page(panel, ticket), host_sock),
        serve(host_page(panel, ticket), other_sock),
    ]
    try:
        yield Site(
            panel, helpdesk, f"http://127.0.0.1:{other_port}", services, zendesk, ticket, shots
        )
    finally:
        for served in running:
            served.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as driver:
        chromium = await driver.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


async def wait_for(check: Any, what: str, limit: float = 20.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {limit} s")


async def no_sideways_scroll(frame: Any) -> None:
    wide, shown = await frame.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert wide <= shown, f"the panel scrolls sideways: {wide} px in {shown} px"


async def test_a_refund_waits_for_a_manager_and_its_outcome_shows_in_the_sidebar(site, browser):
    expect = playwright_api.expect
    agent = await (await browser.new_context(viewport=DESKTOP)).new_page()
    await agent.goto(f"{site.helpdesk}/ticket")
    panel = agent.frame_locator("#panel")
    # The session's cookie works in the helpdesk's cross-site frame.
    await expect(panel.get_by_text("Verified", exact=True)).to_be_visible()
    frame = agent.frame(url=lambda u: u.startswith(site.panel))
    assert frame is not None
    await no_sideways_scroll(frame)

    await panel.get_by_role("button", name="Refund ch_jane_1").click()
    await panel.get_by_label("Amount (EUR)").fill("80")
    await panel.get_by_label("Reason code").select_option("duplicate")
    await panel.get_by_label("Reason", exact=True).fill("Charged twice for the workshop")
    await panel.get_by_role("button", name="Request refund").click()
    waiting = panel.get_by_text("Waiting for approval apr_")
    await expect(waiting).to_be_visible()
    approval = (await waiting.inner_text()).split("Waiting for approval ", 1)[1].split(":")[0]
    await no_sideways_scroll(agent.frame(url=lambda u: u.startswith(site.panel)))
    await agent.screenshot(path=site.shots / "sidebar-waiting.png")
    assert await refunded(site.services, "ch_jane_1") == 0

    manager = await (await browser.new_context(viewport=DESKTOP)).new_page()
    await manager.goto(site.enter(MANAGER))
    await manager.get_by_role("link", name="Approvals (1)").click()
    await expect(manager.get_by_role("heading", name="Waiting for your decision")).to_be_visible()
    await manager.screenshot(path=site.shots / "approvals-desktop.png", full_page=True)
    await manager.get_by_role("button", name="Approve").click()
    await expect(manager.get_by_text(f"Your decision on {approval} is recorded.")).to_be_visible()
    assert await refunded(site.services, "ch_jane_1") == 8000

    # The sidebar shows the outcome on its next load (it reloads itself while a request waits).
    await panel.get_by_role("link", name="Card").click()
    await expect(panel.get_by_text(f"{approval}").first).to_be_visible()
    await expect(panel.get_by_text("done").first).to_be_visible()
    await expect(panel.get_by_role("button", name="Approve")).to_have_count(0)
    await no_sideways_scroll(agent.frame(url=lambda u: u.startswith(site.panel)))
    await agent.screenshot(path=site.shots / "sidebar.png")
    # The same ticket's panel, whole, at the sidebar's width and on a desktop.
    narrow = await (await browser.new_context(viewport=SIDEBAR)).new_page()
    await narrow.goto(site.enter(AGENT))
    await no_sideways_scroll(narrow.main_frame)
    await narrow.screenshot(path=site.shots / "panel-320.png", full_page=True)
    await manager.goto(site.enter(MANAGER))
    await manager.screenshot(path=site.shots / "panel-desktop.png", full_page=True)

    # And the ticket tells the story: the request, then its outcome, as internal notes.
    ticket = int(site.ticket)

    async def both_notes() -> bool:
        return len(site.zendesk.notes(ticket)) >= 2

    await wait_for(both_notes, "two notes in the ticket")
    bodies = " ".join(str(n) for n in site.zendesk.notes(ticket))
    assert approval in bodies and "done" in bodies


async def test_the_panel_is_refused_in_a_frame_of_a_site_not_configured(site, browser):
    page = await (await browser.new_context(viewport=DESKTOP)).new_page()
    refused: list[str] = []
    page.on("console", lambda message: refused.append(message.text))

    await page.goto(f"{site.elsewhere}/ticket")
    await page.wait_for_load_state("load")

    frame = page.frame(url=lambda u: u.startswith(site.panel))
    assert frame is None or await frame.locator("main").count() == 0
    assert any("frame-ancestors" in said for said in refused), refused
    await page.screenshot(path=site.shots / "refused-frame.png")
    # The same panel, framed by the helpdesk configured, shows.
    await page.goto(f"{site.helpdesk}/ticket")
    await playwright_api.expect(
        page.frame_locator("#panel").get_by_role("heading", name="Jane Doe")
    ).to_be_visible()


async def test_a_post_from_another_site_is_refused_by_the_panel(site, browser):
    agent = await (await browser.new_context(viewport=SIDEBAR)).new_page()
    await agent.goto(site.enter(AGENT))
    action = await agent.locator("form[action$='/act']").first.get_attribute("action")
    assert action is not None
    # Another site's page posts to the panel's form address: the browser sends the cookie
    # (SameSite=None), and says where the form came from.
    await agent.goto(f"{site.elsewhere}/ticket")
    await agent.set_content(
        f'<form method="post" action="{site.panel}{action}"><input name="a" value="x">'
        "<button>Go</button></form>"
    )
    await agent.get_by_role("button", name="Go").click()
    await playwright_api.expect(agent.get_by_role("heading", name="Refused")).to_be_visible()


async def test_the_panel_pages_have_no_accessibility_violations(site, browser):
    axe = axe_api.Axe()
    refund = "refund ch_jane_1 20 reason: goodwill"  # a row and a chart for the reports page
    assert (await say(site.services, person("alex", Role.agent), refund)).error is None
    for size in (SIDEBAR, DESKTOP):
        page = await (await browser.new_context(viewport=size)).new_page()
        await page.goto(site.enter(MANAGER))
        visited = ["card"]
        await page.get_by_role("button", name="Refund ch_jane_1").click()
        visited.append("form")
        for name, step in (("form", None), ("search", "Search"), ("approvals", "Approvals"),
                           ("reports", "Reports")):  # fmt: skip
            if step is not None:
                await page.get_by_role("link", name=step).first.click()
            results = await axe.run(page)
            assert results.violations_count == 0, (name, size, results.generate_snapshot())
        await page.get_by_role("button", name="Show the report").click()  # its card and files
        chart = page.get_by_role("img", name="Chart: Refunds by person and reason", exact=False)
        await page.wait_for_load_state("load")
        assert await chart.evaluate("img => img.complete && img.naturalWidth > 0")
        results = await axe.run(page)
        assert results.violations_count == 0, ("report", size, results.generate_snapshot())
        await no_sideways_scroll(page)
        shot = f"reports-{'320' if size is SIDEBAR else 'desktop'}.png"
        await page.screenshot(path=site.shots / shot, full_page=True)
        await page.goto(site.enter(MANAGER))
        results = await axe.run(page)
        assert results.violations_count == 0, ("card", size, results.generate_snapshot())
        await page.get_by_role("link", name="日本語").click()
        results = await axe.run(page)
        assert results.violations_count == 0, ("card ja", size, results.generate_snapshot())
        label = "320" if size is SIDEBAR else "desktop"
        await page.screenshot(path=site.shots / f"card-ja-{label}.png", full_page=True)
