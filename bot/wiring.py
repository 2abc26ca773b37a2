"""Wiring: opens the stores, chooses the gateways and the listeners. Only entry points import it."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from bot.approvals.budget import Budgets
from bot.approvals.policy import Policy, load_policy
from bot.currency_digits import check_currency_digits
from bot.documents.config import load_branding, load_tax
from bot.gateways.base import Gateway
from bot.gateways.ledger.forward import Forwarder
from bot.gateways.ledger.gateway import LedgerGateway
from bot.gateways.registry import Gateways, plugin_factories
from bot.payment_requests.hosted import page_url
from bot.services import Listener, Services
from bot.settings import ConfigError, Settings
from bot.store import redis as redis_store
from bot.store.db import Database

log = logging.getLogger(__name__)


def configured_gateways(settings: Settings, db: Database) -> list[Gateway]:
    gateways: list[Gateway] = []
    if settings.ledger.enabled:
        forwarder = None
        if settings.ledger.forward_url is not None:
            if settings.ledger.forward_secret is None:
                raise ConfigError("ledger.forward_secret: required when ledger.forward_url is set")
            forwarder = Forwarder(
                url=str(settings.ledger.forward_url),
                secret=settings.ledger.forward_secret.get_secret_value(),
                timeout=settings.ledger.forward_timeout,
            )
        gateways.append(
            LedgerGateway(
                db,
                forwarder=forwarder,
                max_charges=settings.lookup.max_charges,
                pay_pages=functools.partial(page_url, settings),
                pay_link_days=settings.payment_requests.lifetime_days,
            )
        )
    if settings.stripe.api_key is not None:
        # Imported when configured: each SDK costs start-up time.
        from bot.gateways.stripe.gateway import StripeGateway

        gateways.append(StripeGateway(settings.stripe, max_charges=settings.lookup.max_charges))
    if settings.paypal.client_id and settings.paypal.client_secret is not None:
        from bot.gateways.paypal.gateway import PayPalGateway

        gateways.append(PayPalGateway(settings.paypal))
    braintree = settings.braintree
    if braintree.merchant_id and braintree.public_key and braintree.private_key is not None:
        from bot.gateways.braintree.gateway import BraintreeGateway

        gateways.append(BraintreeGateway(braintree, max_charges=settings.lookup.max_charges))
    if settings.recurly.api_key is not None:
        from bot.gateways.recurly.gateway import RecurlyGateway

        gateways.append(RecurlyGateway(settings.recurly, max_charges=settings.lookup.max_charges))
    woo = settings.woocommerce
    if woo.store_url is not None and woo.consumer_key and woo.consumer_secret is not None:
        from bot.gateways.woocommerce.gateway import WooCommerceGateway

        gateways.append(WooCommerceGateway(woo, max_charges=settings.lookup.max_charges))
    for name, factory in plugin_factories().items():
        log.info("loading gateway plugin %s", name)
        gateways.append(factory(settings=settings, db=db))
    return gateways


def configured_listeners() -> list[Listener]:
    """What reacts to money that moved: documents (receipts, credit notes) today."""
    # Imported when services open, not when an entry point loads: documents pull in
    # PDF rendering, which `chargedesk` commands that never open services must not pay for.
    from bot.documents.automatic import DocumentListener
    from bot.documents.reissue import ReissueListener
    from bot.index.listener import IndexListener
    from bot.payment_requests.listener import PaymentRequestListener

    return [DocumentListener(), ReissueListener(), PaymentRequestListener(), IndexListener()]


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
    services = Services(
        settings=settings,
        db=db,
        redis=client,
        gateways=Gateways(chosen, timeout=settings.lookup.timeout),
        policy=policy,
        budgets=Budgets(client, settings.redis_prefix),
        branding=branding,
        tax=tax,
        listeners=configured_listeners(),
        _engine=engine,
    )
    # Copies of approval requests are redrawn on every configured chat platform after a
    # decision taken in this process, whichever process runs that platform's bot.
    from bot.chat.remote import attach_chat_doors

    attach_chat_doors(services)
    # A request made from a ticket's agent panel gets its outcome as a note there, whoever decides.
    from bot.panel.door import attach_panel_door

    attach_panel_door(services)
    return services
