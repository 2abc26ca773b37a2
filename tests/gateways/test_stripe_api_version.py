"""The Stripe gateway names its API version on every request, and that version is the SDK's.

Stripe answers in the account's default API version unless a request names one, so the
gateway pins it (`STRIPE_API_VERSION`). An SDK upgrade that speaks another version fails
here, which makes moving to it a deliberate change.
"""

from __future__ import annotations

import asyncio

import pytest
import stripe
from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from bot.gateways.base import LookupQuery
from bot.gateways.stripe.client import STRIPE_API_VERSION
from bot.gateways.stripe.gateway import StripeGateway
from bot.money import Money
from chargedesk_emulators.stripe import StripeEmulator
from tests.fakes.stripe_env import stripe_settings

pytestmark = [
    # The stripe SDK hands httpx its form body as `data=str`, which httpx deprecates.
    pytest.mark.filterwarnings("ignore:Use 'content=:DeprecationWarning"),
]


class _RecordVersions:
    """ASGI middleware: notes each request's Stripe-Version header (None when absent)."""

    def __init__(self, app: ASGIApp, sink: list[str | None]) -> None:
        self.app = app
        self.sink = sink

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            found = dict(scope["headers"]).get(b"stripe-version")
            self.sink.append(found.decode() if found is not None else None)
        await self.app(scope, receive, send)


class VersionRecordingEmulator(StripeEmulator):
    """Our Stripe emulator, also keeping the Stripe-Version header of every request."""

    def __init__(self) -> None:
        super().__init__()
        self.versions: list[str | None] = []

    def app(self) -> Starlette:
        app = super().app()
        app.add_middleware(_RecordVersions, sink=self.versions)
        return app


def test_the_pinned_api_version_is_the_one_the_locked_sdk_speaks() -> None:
    assert stripe.api_version == STRIPE_API_VERSION, (
        f"stripe {stripe.VERSION} speaks {stripe.api_version}: read Stripe's changelog for "
        f"the changes since {STRIPE_API_VERSION}, then move STRIPE_API_VERSION "
        "(bot/gateways/stripe/client.py) and the README's Stripe section to it"
    )


async def test_every_request_names_the_pinned_api_version() -> None:
    emulator = VersionRecordingEmulator()
    await asyncio.to_thread(emulator.start)
    try:
        customer = emulator.add_customer("pinned.version@example.com", "Pinned Version")
        charge = emulator.add_payment(customer["id"], 5000, "EUR")
        gateway = StripeGateway(stripe_settings(emulator.url, emulator.api_key or ""))
        try:
            [profile] = await gateway.lookup(LookupQuery.parse("pinned.version@example.com"))
            await gateway.refund(
                charge["id"],
                Money(minor=1000, currency="EUR"),
                reason="goodwill",
                idempotency_key="pinned-version-refund",
            )
        finally:
            await gateway.close()
    finally:
        await asyncio.to_thread(emulator.stop)

    assert profile.gateway == "stripe"
    methods = {request.method for request in emulator.requests}
    assert methods == {"GET", "POST"}  # reads and a write both went out
    assert len(emulator.versions) == len(emulator.requests)
    assert set(emulator.versions) == {STRIPE_API_VERSION}
