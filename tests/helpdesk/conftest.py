"""Helpdesk fixtures: the Zendesk and Freshdesk emulators, settings pointing at them, the web app.

Every test runs on the real stores of tests/conftest.py (SQLite or PostgreSQL, the embedded
Valkey or REDIS_URL) with the demo data loaded; jobs run in a real arq worker (burst mode).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import select

from bot import jobs
from bot.approvals.policy import Policy
from bot.demo.dataset import load_demo
from bot.helpdesk import ticket_notes
from bot.services import Services
from bot.settings import FreshdeskSettings, HelpdeskSettings, Settings, ZendeskSettings
from bot.store.tables import HelpdeskNote
from bot.web import create_app
from bot.wiring import open_services
from chargedesk_emulators.freshdesk import FreshdeskEmulator, freshdesk_api
from chargedesk_emulators.zendesk import ZendeskEmulator, zendesk_api


@pytest.fixture
def zendesk() -> Iterator[ZendeskEmulator]:
    with zendesk_api() as api:
        yield api
        assert api.problems == []


@pytest.fixture
def freshdesk() -> Iterator[FreshdeskEmulator]:
    with freshdesk_api() as api:
        yield api
        assert api.problems == []


@pytest.fixture
def desk_settings(
    settings: Settings, zendesk: ZendeskEmulator, freshdesk: FreshdeskEmulator
) -> Settings:
    """The shared test settings, with Zendesk and Freshdesk pointing at their emulators."""
    return settings.model_copy(update={"helpdesk": HelpdeskSettings(
        zendesk=ZendeskSettings(
            base_url=zendesk.base_url, email=zendesk.email,
            api_token=zendesk.api_token, webhook_secret=zendesk.webhook_secret,
        ),
        freshdesk=FreshdeskSettings(
            base_url=freshdesk.base_url, api_key=freshdesk.api_key,
            webhook_secret=freshdesk.webhook_secret,
        ),
    )})  # fmt: skip


@pytest.fixture(autouse=True)
def _quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries come back after 50 ms instead of 10 s (the delays still double)."""
    monkeypatch.setattr(ticket_notes, "RETRY_SECONDS", 0.05)


@dataclass
class Bot:
    """`chargedesk serve` in process, and the job worker run on demand."""

    services: Services
    web: httpx.AsyncClient

    async def deliver(self, helpdesk: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return await self.web.post(f"/helpdesk/{helpdesk}/webhook", content=body, headers=headers)

    async def work(self) -> None:
        """Run every queued job (retries included) until the queue is empty."""
        await jobs.run_worker(self.services, burst=True, poll_delay=0.02)

    async def rows(self) -> list[HelpdeskNote]:
        async with self.services.db.read() as session:
            return list(await session.scalars(select(HelpdeskNote).order_by(HelpdeskNote.created)))


@pytest.fixture
async def desk_services(desk_settings: Settings, policy: Policy) -> AsyncIterator[Services]:
    """Services on the shared stores, the demo data loaded, the two helpdesks configured."""
    services = await open_services(desk_settings, policy=policy)
    await load_demo(services.db)
    try:
        yield services
    finally:
        await services.close()


@pytest.fixture
async def bot(desk_services: Services) -> AsyncIterator[Bot]:
    services = desk_services
    app = create_app(services.settings, services)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bot") as web:
            yield Bot(services, web)
