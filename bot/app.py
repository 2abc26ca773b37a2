"""The services every command needs, opened once per process."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis.asyncio as aioredis

from bot.actors import Actor
from bot.approvals.budget import Budgets
from bot.approvals.policy import Policy, load_policy
from bot.currency_digits import check_currency_digits
from bot.documents.config import Branding, TaxConfig, load_branding, load_tax
from bot.gateways.base import Gateway
from bot.gateways.ledger import Forwarder, LedgerGateway
from bot.gateways.registry import Gateways, plugin_factories
from bot.listeners import Listener
from bot.settings import Settings
from bot.store import redis as redis_store
from bot.store.db import Database

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    db: Database
    redis: aioredis.Redis
    gateways: Gateways
    policy: Policy
    budgets: Budgets
    # React to money that moved (webhook events, executed actions): see bot/listeners.py.
    listeners: list[Listener] = field(default_factory=list)
    branding: Branding = field(default_factory=Branding)
    tax: TaxConfig = field(default_factory=TaxConfig)
    # Called with (approval_id, actor) after a request's state changes, so every
    # chat platform showing it can redraw it, whichever platform decided.
    decision_hooks: list[Callable[[str, Actor], Awaitable[None]]] = field(default_factory=list)
    _engine: redis_store.EmbeddedEngine | None = field(default=None, repr=False)

    async def announce(self, approval_id: str, actor: Actor) -> None:
        """Tell every decision hook; a failing hook is logged, never undoes the decision."""
        for hook in self.decision_hooks:
            try:
                await hook(approval_id, actor)
            except Exception:
                log.exception(
                    "decision hook %s failed for %s",
                    getattr(hook, "__qualname__", hook),
                    approval_id,
                )

    def key(self, *parts: str) -> str:
        """A Redis key in this deployment's namespace."""
        return self.settings.redis_prefix + ":".join(parts)

    async def close(self) -> None:
        await self.gateways.close()
        await self.redis.aclose()
        await self.db.close()
        if self._engine is not None:
            self._engine.stop()


def configured_gateways(settings: Settings, db: Database) -> list[Gateway]:
    gateways: list[Gateway] = []
    if settings.ledger.enabled:
        forwarder = None
        if settings.ledger.forward_url is not None:
            if settings.ledger.forward_secret is None:
                from bot.settings import ConfigError

                raise ConfigError("ledger.forward_secret: required when ledger.forward_url is set")
            forwarder = Forwarder(
                url=str(settings.ledger.forward_url),
                secret=settings.ledger.forward_secret.get_secret_value(),
                timeout=settings.ledger.forward_timeout,
            )
        gateways.append(
            LedgerGateway(db, forwarder=forwarder, max_charges=settings.lookup.max_charges)
        )
    if settings.stripe.api_key is not None:
        from bot.gateways.stripe import StripeGateway

        gateways.append(StripeGateway(settings.stripe, max_charges=settings.lookup.max_charges))
    if settings.paypal.client_id and settings.paypal.client_secret is not None:
        from bot.gateways.paypal import PayPalGateway

        gateways.append(PayPalGateway(settings.paypal))
    for name, factory in plugin_factories().items():
        log.info("loading gateway plugin %s", name)
        gateways.append(factory(settings=settings, db=db))
    return gateways


async def open_services(
    settings: Settings,
    *,
    gateways: list[Gateway] | None = None,
    policy: Policy | None = None,
    migrate: bool = True,
) -> Services:
    """Connect the stores (starting the embedded Redis engine if no REDIS_URL), load gateways and policy."""
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, at start
    # Configuration first: a bad file refuses to start before any store is opened.
    branding, tax = load_branding(), load_tax()
    policy = policy if policy is not None else load_policy()
    db = Database(settings.sql_url)
    if migrate:
        await db.migrate()
    try:
        # Before anything reads an amount: stored integers must mean what they meant.
        await check_currency_digits(db)
    except Exception:
        await db.close()
        raise
    client, engine = await redis_store.connect(settings.redis_url, Path(settings.data_dir))
    chosen = gateways if gateways is not None else configured_gateways(settings, db)
    # Imported here: the documents package builds on Services.
    from bot.documents.automatic import DocumentListener

    return Services(
        settings=settings,
        db=db,
        redis=client,
        gateways=Gateways(chosen, timeout=settings.lookup.timeout),
        policy=policy,
        budgets=Budgets(client, settings.redis_prefix),
        branding=branding,
        tax=tax,
        listeners=[DocumentListener()],
        _engine=engine,
    )
