"""What the tests of a gateway driven against its emulator share, gateway by gateway.

Each `tests/fakes/<name>_env.py` says how to serve its emulator, seed the contract's
customer and connect our gateway; from those three, `fixtures` makes the `api`, `seeded`
and `gateway` pytest fixtures its test modules use
(`api, seeded, gateway = fixtures(braintree_api, seed_contract_customer, braintree_gateway)`),
and `contract_env` the backend of the gateway contract suite. Webhook tests post to the
bot through `bot_client` and read what it audited with `externals`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, asynccontextmanager
from typing import Any, Protocol, TypeVar

import httpx
import pytest

from bot.audit.log import AuditFilter, query
from bot.gateways.base import Capability, Gateway
from bot.gateways.registry import Gateways
from bot.services import Services
from bot.store.tables import AuditEntry
from bot.web import create_app
from tests.gateways.contract import ContractEnv

E = TypeVar("E")
S = TypeVar("S", bound="Seeded")
G = TypeVar("G", bound=Gateway)


class Seeded(Protocol):
    """The contract's customer as seeded into an emulator: the IDs the suite reads."""

    @property
    def customer_id(self) -> str: ...

    charge_id: str
    authorized_ids: tuple[str, str]
    subscription_ids: tuple[str, str]


def fixtures(
    serve: Callable[[], AbstractContextManager[E]],
    seed: Callable[[E], S],
    connect: Callable[[E], G],
) -> tuple[Any, Any, Any]:
    """The `api` (the emulator, served for one test), `seeded` (the contract's customer in
    it) and `gateway` (ours, pointed at it, closed after the test) fixtures."""

    @pytest.fixture
    def api() -> Iterator[E]:
        with serve() as emulator:
            yield emulator

    @pytest.fixture
    def seeded(api: E) -> S:
        return seed(api)

    @pytest.fixture
    async def gateway(api: E) -> AsyncIterator[G]:
        gw = connect(api)
        try:
            yield gw
        finally:
            await gw.close()

    return api, seeded, gateway


@asynccontextmanager
async def contract_env(
    serve: Callable[[], AbstractContextManager[E]],
    seed: Callable[[E], S],
    connect: Callable[[E], G],
    *,
    email: str,
    currency: str,
    skips: dict[str, str] | None = None,
    unsupported: Capability = Capability.create_subscription,
) -> AsyncIterator[ContractEnv]:
    """The emulator served and seeded, with our gateway on it, as the contract suite's
    backend; `unsupported` is a capability the gateway lacks."""
    with serve() as api:
        seeded = seed(api)
        gateway = connect(api)
        try:
            yield ContractEnv(
                gateway=gateway,
                email=email,
                customer_id=seeded.customer_id,
                currency=currency,
                charge_id=seeded.charge_id,
                authorized_ids=seeded.authorized_ids,
                subscription_ids=seeded.subscription_ids,
                unsupported=unsupported,
                skips=skips or {},
            )
        finally:
            await gateway.close()


@asynccontextmanager
async def bot_client(services: Services, gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    """The bot's ASGI app with `gateway` beside the configured gateways, behind an HTTP client
    (`http://bot`); closing the gateway is left to its owner."""
    services.gateways = Gateways([*services.gateways, gateway], timeout=5)
    app = create_app(services.settings, services)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bot") as http,
    ):
        yield http


async def externals(services: Services) -> list[AuditEntry]:
    """The audit entries of what was done outside the bot (in a gateway's own dashboard)."""
    return [e for e in await query(services.db, AuditFilter(limit=100)) if e.outcome == "external"]
