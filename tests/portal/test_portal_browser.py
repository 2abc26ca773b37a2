"""The billing pages in a real browser: headless Chromium (the system's), driven by Playwright.

The app runs under uvicorn on 127.0.0.1 with its own services on the test's
stores, as `chargedesk serve` would. Every page visited is photographed at a
desktop and a phone size into $CHARGEDESK_ARTIFACTS/portal (CI keeps them), or
a temporary folder. Skipped, saying why, where Chromium or Playwright is missing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import uvicorn
from sqlalchemy import select

from bot.billing_links import issue_link
from bot.services import Services
from bot.settings import PortalSettings
from bot.store.tables import Notification, VerificationCode
from bot.web import create_app
from tests.documents.drafts import repo_branding  # noqa: F401 - the fixture
from tests.portal.conftest import JANE

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip(
        "no Chromium on this machine: install Debian's `chromium` (.ci/run does)",
        allow_module_level=True,
    )
playwright_api = pytest.importorskip(
    "playwright.async_api", reason="Playwright is not installed: pip install -e '.[test]'"
)

# The machine has no internet: nothing may wait on Google's services.
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}

pytestmark = pytest.mark.storage


@dataclasses.dataclass
class Portal:
    url: str
    services: Services  # the test's, with the same settings as the server's
    shots: Path

    async def link(self, email: str = JANE) -> str:
        return await issue_link(self.services, email, issued_by="browser-test")

    async def shoot(self, page: playwright_api.Page, name: str) -> None:
        """The page as it is now, at desktop and at phone size."""
        await page.screenshot(path=self.shots / f"{name}-desktop.png", full_page=True)
        await page.set_viewport_size(PHONE)
        await page.screenshot(path=self.shots / f"{name}-phone.png", full_page=True)
        await page.set_viewport_size(DESKTOP)


@pytest.fixture
def shots(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    root = os.environ.get("CHARGEDESK_ARTIFACTS")
    folder = Path(root) / "portal" / request.node.name if root else tmp_path / "screens"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def code_sent(services: Services, limit: float = 15.0) -> None:
    """Wait (bounded) for the server's job to have made the code the page asked for."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        async with services.db.read() as session:
            if await session.scalar(select(VerificationCode.id).limit(1)) is not None:
                return
        await asyncio.sleep(0.05)
    raise AssertionError("no code was made within 15 s")


@pytest.fixture
def portal(repo_branding, services: Services, shots: Path) -> Iterator[Portal]:  # noqa: F811
    """`chargedesk serve` on a free loopback port, sharing the test's SQL and Redis."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    base = f"http://localhost:{sock.getsockname()[1]}"
    # The server runs its own jobs, as `chargedesk serve` does on the defaults: codes are sent by one.
    settings = services.settings.model_copy(
        update={"portal": PortalSettings(base_url=base), "jobs_in_process": True}
    )
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), log_level="warning", access_log=False, lifespan="on")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the billing pages did not start")
        time.sleep(0.02)
    try:
        yield Portal(base, dataclasses.replace(services, settings=settings), shots)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
async def page() -> AsyncIterator[playwright_api.Page]:
    async with playwright_api.async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            context = await browser.new_context(viewport=DESKTOP, accept_downloads=True)
            yield await context.new_page()
        finally:
            await browser.close()


async def test_the_history_is_visible_and_an_invoice_pdf_downloads(portal, page):
    await page.goto(await portal.link())

    assert page.url == f"{portal.url}/portal/"  # the token left the address bar
    await playwright_api.expect(page.get_by_role("heading", level=1)).to_have_text("Your billing")
    invoices = page.get_by_role("table").filter(has_text="JANE-0001")
    await playwright_api.expect(invoices.get_by_role("rowheader", name="JANE-0003")).to_be_visible()
    await playwright_api.expect(page.get_by_text("Onboarding workshop (2 hours)")).to_be_visible()
    await portal.shoot(page, "history")

    async with page.expect_download() as waiting:
        await page.get_by_role("link", name="PDF Invoice JANE-0001").click()
    download = await waiting.value
    assert download.suggested_filename.startswith("INV-")
    saved = await download.path()
    assert (await asyncio.to_thread(Path(saved).read_bytes)).startswith(b"%PDF")

    async with page.expect_download() as waiting:
        await page.get_by_role("link", name="Receipt PDF").first.click()
    receipt = await waiting.value
    assert receipt.suggested_filename.startswith("RCT-")


async def test_the_tax_id_form_shows_errors_then_saves_a_valid_number(portal, page):
    await page.goto(await portal.link())
    await page.get_by_role("link", name="Add or change tax ID").first.click()
    await playwright_api.expect(page.get_by_role("heading", level=1)).to_have_text("Tax ID")
    await playwright_api.expect(page.get_by_label("Country")).to_have_value("IE")
    await portal.shoot(page, "tax-id")

    await page.get_by_label("Country").select_option("DE")
    number = page.get_by_label("Tax ID number")
    await number.fill("DE 136 695 975")
    await page.get_by_role("button", name="Save tax ID").click()

    error = page.get_by_text("This is not a valid tax ID for Germany")
    await playwright_api.expect(error).to_be_visible()
    await playwright_api.expect(number).to_have_attribute("aria-invalid", "true")
    described = await number.get_attribute("aria-describedby")
    assert "number-error" in (described or "").split()
    await portal.shoot(page, "tax-id-error")

    await number.fill("DE136695976")
    await page.get_by_role("button", name="Save tax ID").click()
    await playwright_api.expect(page.get_by_role("status")).to_have_text(
        "Saved: DE136695976. It will appear on your next documents."
    )
    await portal.shoot(page, "tax-id-saved")
    profile = await portal.services.gateways.lookup(JANE)
    assert [t.value for p in profile.profiles for t in p.tax_ids] == ["DE136695976"]


async def test_a_question_reaches_the_helpdesk_channel(portal, page):
    await page.goto(await portal.link())
    await page.get_by_role("link", name="Ask a billing question").click()
    await portal.shoot(page, "question")

    await page.get_by_label("Your question").fill("Could you split invoice JANE-0002 in two?")
    await page.get_by_role("button", name="Send question").click()

    await playwright_api.expect(page.get_by_role("heading", level=1)).to_have_text("Thank you")
    await portal.shoot(page, "question-sent")
    async with portal.services.db.read() as session:
        [row] = list(await session.scalars(select(Notification)))
    assert row.kind == "question"
    assert row.card["sections"][0]["text"] == "Could you split invoice JANE-0002 in two?"


async def test_the_pages_speak_polish_and_japanese(portal, page):
    await page.goto(await portal.link())
    heading = page.get_by_role("heading", level=1)

    await page.get_by_role("link", name="Polski").click()
    await playwright_api.expect(heading).to_have_text("Twoje rozliczenia")
    assert await page.get_attribute("html", "lang") == "pl"
    await portal.shoot(page, "history-pl")

    await page.get_by_role("link", name="日本語").click()
    await playwright_api.expect(heading).to_have_text("ご請求の一覧")
    await playwright_api.expect(page.get_by_role("button", name="カードを更新")).to_be_visible()
    await portal.shoot(page, "history-ja")

    await page.get_by_role("link", name="税務番号を追加・変更").first.click()
    await playwright_api.expect(heading).to_have_text("税務番号")  # the choice stays


async def test_the_main_buttons_are_reached_by_keyboard_with_visible_focus(portal, page):
    await page.goto(await portal.link())
    reached: dict[str, tuple[str, str]] = {}
    for _ in range(25):
        await page.keyboard.press("Tab")
        name, outline, width = await page.evaluate(
            "() => { const e = document.activeElement, s = getComputedStyle(e);"
            " return [e.innerText.trim(), s.outlineStyle, s.outlineWidth]; }"
        )
        reached.setdefault(name, (outline, width))
        if name == "Update card":
            await portal.shoot(page, "history-keyboard")
    for wanted in (
        "Skip to main content",
        "Update card",
        "Add or change tax ID",
        "Ask a billing question",
    ):
        assert wanted in reached, f"Tab never reached {wanted!r}: {list(reached)}"
        outline, width = reached[wanted]
        assert outline != "none" and float(width.removesuffix("px")) >= 2, (wanted, outline, width)

    # The skip link goes straight to the content.
    await page.goto(f"{portal.url}/portal/")
    await page.keyboard.press("Tab")
    await page.keyboard.press("Enter")
    assert await page.evaluate("() => document.activeElement.id") == "main"


async def test_signing_in_the_card_page_and_a_refused_link(portal, page):
    await page.goto(f"{portal.url}/portal/l/pg_forged.9999999999.AAAA")
    await playwright_api.expect(page.get_by_role("heading", level=1)).to_have_text(
        "This link cannot be opened"
    )
    await portal.shoot(page, "link-refused")

    await page.get_by_role("link", name="Sign in with your email address").click()
    await portal.shoot(page, "signin")
    await page.get_by_label("Email address").fill("jane.doe@example.com")
    await page.get_by_role("button", name="Send code").click()
    await playwright_api.expect(page.get_by_label("Six-digit code")).to_be_visible()
    await portal.shoot(page, "signin-code")
    await code_sent(portal.services)
    await page.get_by_label("Six-digit code").fill("123456")
    await page.get_by_role("button", name="Sign in").click()
    await playwright_api.expect(page.get_by_text("That code is not right")).to_be_visible()

    await page.goto(await portal.link())
    await page.get_by_role("button", name="Update card").click()
    await playwright_api.expect(page.get_by_text("cannot be changed online")).to_be_visible()
    await portal.shoot(page, "card")
