"""Stripe backends for the gateway contract suite: our emulator, and localstripe.

Both yield a ContractEnv whose StripeGateway talks through the real stripe SDK
to a server on 127.0.0.1 seeded with one customer, a succeeded 100.00 EUR
charge, two authorized 50.00 EUR charges and two active subscriptions.

localstripe (GPL-3.0) is a test dependency only: it runs here in-process, on
its own event loop in a daemon thread, loopback-only, with its pickle
persistence turned off, and is wiped (`DELETE /_config/data`) for each use.
Its aiohttp app binds to the first loop that serves it, so one server serves
the whole test session; use one localstripe env at a time.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import stripe
from pydantic import SecretStr

from bot.gateways.stripe.gateway import StripeGateway
from bot.settings import StripeSettings
from chargedesk_emulators.stripe import StripeEmulator
from tests.gateways.contract import ContractEnv

WEBHOOK_SECRET = "whsec_chargedesk_contract_tests"
EMAIL = "contract.customer@example.com"
CURRENCY = "EUR"

LOCALSTRIPE_SKIPS = {
    "full_and_partial_refund": (
        "localstripe refuses Stripe's refund `reason` parameter, which the gateway sends when "
        "the reason starts with duplicate, fraudulent or requested_by_customer"
    ),
    "capture_and_void": (
        "localstripe has no charge.amount_captured and books the uncaptured rest as an "
        "ordinary refund, so a partial capture reads as a full capture plus a refund"
    ),
    "card_update_url_or_unsupported": (
        "localstripe has no Billing Portal: POST /v1/billing_portal/sessions answers 404"
    ),
}


@dataclass
class FakeStripe:
    """Our emulator with its gateway, for tests that need to reach behind the contract."""

    emulator: StripeEmulator
    gateway: StripeGateway
    env: ContractEnv


def stripe_settings(base_url: str, api_key: str, **overrides: Any) -> StripeSettings:
    values: dict[str, Any] = {
        "api_key": SecretStr(api_key),
        "base_url": base_url,
        "webhook_secret": SecretStr(WEBHOOK_SECRET),
        "timeout": 5.0,
        "max_retries": 2,
        **overrides,
    }
    return StripeSettings(**values)


@asynccontextmanager
async def stripe_fake(**settings: Any) -> AsyncIterator[FakeStripe]:
    """Our emulator, seeded, with a gateway on it; `settings` override StripeSettings fields."""
    emulator = StripeEmulator()
    await asyncio.to_thread(emulator.start)
    gateway: StripeGateway | None = None
    try:
        customer = emulator.add_customer(EMAIL, "Contract Customer")
        charge = emulator.add_payment(customer["id"], 10000, CURRENCY, description="Order 1001")
        holds = [
            emulator.add_payment(customer["id"], 5000, CURRENCY, capture=False) for _ in range(2)
        ]
        basic = emulator.add_price(2000, CURRENCY, nickname="Basic monthly")
        extra = emulator.add_price(999, CURRENCY, nickname="Extra storage")
        subs = [emulator.add_subscription(customer["id"], p["id"]) for p in (basic, extra)]
        gateway = StripeGateway(stripe_settings(emulator.url, emulator.api_key or "", **settings))
        env = ContractEnv(
            gateway=gateway,
            email=EMAIL,
            customer_id=customer["id"],
            currency=CURRENCY,
            charge_id=charge["id"],
            authorized_ids=(holds[0]["id"], holds[1]["id"]),
            subscription_ids=(subs[0]["id"], subs[1]["id"]),
        )
        yield FakeStripe(emulator, gateway, env)
    finally:
        if gateway is not None:
            await gateway.close()
        await asyncio.to_thread(emulator.stop)


@asynccontextmanager
async def stripe_fake_env() -> AsyncIterator[ContractEnv]:
    """The contract suite's Stripe backend on our emulator."""
    async with stripe_fake() as fake:
        yield fake.env


@asynccontextmanager
async def stripe_beside(services: Any) -> AsyncIterator[FakeStripe]:
    """Our emulator's gateway as one more gateway of `services` (beside the ledger)."""
    from bot.gateways.registry import Gateways

    async with stripe_fake() as fake:
        services.gateways = Gateways([*services.gateways, fake.gateway], timeout=5)
        yield fake


# --- localstripe ------------------------------------------------------------------------


class _LocalStripe:
    """localstripe's aiohttp app on 127.0.0.1, port 0, in a daemon thread, once per process."""

    _lock = threading.Lock()
    _url: str | None = None

    @classmethod
    def url(cls) -> str:
        with cls._lock:
            if cls._url is None:
                cls._url = cls._start()
            return cls._url

    @staticmethod
    def _start() -> str:
        from aiohttp import web
        from localstripe import resources, server

        # Its store pickles itself to /tmp after every write; keep it in memory only.
        resources.store.dump_to_disk = lambda: None  # type: ignore[method-assign]
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        found: list[str] = []
        failed: list[BaseException] = []

        def serve() -> None:
            asyncio.set_event_loop(loop)
            try:
                runner = web.AppRunner(server.app, access_log=None)
                loop.run_until_complete(runner.setup())
                site = web.TCPSite(runner, "127.0.0.1", 0)
                loop.run_until_complete(site.start())
                host, port = runner.addresses[0][:2]
                found.append(f"http://{host}:{port}")
            except BaseException as exc:  # reported to the starting thread below
                failed.append(exc)
                return
            finally:
                ready.set()
            loop.run_forever()

        threading.Thread(target=serve, name="localstripe", daemon=True).start()
        if not ready.wait(10) or failed or not found:
            raise RuntimeError(f"localstripe did not start: {failed[:1]}")
        return found[0]


@asynccontextmanager
async def stripe_localstripe_env() -> AsyncIterator[ContractEnv]:
    """The contract suite's Stripe backend on localstripe, for Stripe's happy paths."""
    url = await asyncio.to_thread(_LocalStripe.url)
    api_key = "sk_test_chargedesk_localstripe"
    async with httpx.AsyncClient(base_url=url) as http:
        (await http.delete("/_config/data")).raise_for_status()
    seeder_http = stripe.HTTPXClient(timeout=10)
    seeder = stripe.StripeClient(api_key, base_addresses={"api": url}, http_client=seeder_http)
    gateway = StripeGateway(stripe_settings(url, api_key))
    try:
        v1 = seeder.v1
        customer = await v1.customers.create_async({"email": EMAIL, "name": "Contract Customer"})

        async def pay(amount: int, manual: bool) -> str:
            intent = await v1.payment_intents.create_async(
                {
                    "amount": amount,
                    "currency": CURRENCY.lower(),
                    "customer": customer.id,
                    "payment_method": "pm_card_visa",
                    "capture_method": "manual" if manual else "automatic",
                    "confirm": True,
                }
            )
            latest = intent.to_dict()["latest_charge"]  # localstripe expands it
            return latest["id"] if isinstance(latest, dict) else latest

        charge_id = await pay(10000, manual=False)
        holds = (await pay(5000, manual=True), await pay(5000, manual=True))
        subscription_ids = []
        for name in ("Basic monthly", "Extra storage"):
            # Free plans: their invoices are paid at once, so no extra charges appear.
            plan = await v1.plans.create_async(
                {
                    "amount": 0,
                    "currency": CURRENCY.lower(),
                    "interval": "month",
                    "nickname": name,
                    "product": {"name": name},
                }
            )
            sub = await v1.subscriptions.create_async(
                {"customer": customer.id, "items": [{"plan": plan.id}]}
            )
            subscription_ids.append(sub.id)
        yield ContractEnv(
            gateway=gateway,
            email=EMAIL,
            customer_id=customer.id,
            currency=CURRENCY,
            charge_id=charge_id,
            authorized_ids=holds,
            subscription_ids=(subscription_ids[0], subscription_ids[1]),
            skips=dict(LOCALSTRIPE_SKIPS),
        )
    finally:
        await gateway.close()
        await seeder_http.close_async()
