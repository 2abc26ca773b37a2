"""A customer billed by Stripe too: its hosted pages for paying and the card, its tax IDs."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select

from bot.gateways.registry import Gateways
from bot.store.tables import AuditEntry
from bot.web import create_app
from tests.fakes.stripe_env import FakeStripe, stripe_fake
from tests.portal.conftest import BASE, JANE, form_page, open_as, post

pytestmark = pytest.mark.storage


@pytest.fixture
async def stripe() -> AsyncIterator[FakeStripe]:
    async with stripe_fake() as fake:
        yield fake


@pytest.fixture
async def both(services, stripe) -> AsyncIterator[tuple[httpx.AsyncClient, object, dict]]:
    """Jane in the ledger and in Stripe (an open invoice there); a client of that app."""
    customer = stripe.emulator.add_customer(
        JANE, "Jane Doe", address={"country": "IE", "city": "Dublin", "line1": "14 Merrion Square",
                                   "postal_code": "D02 XY45", "line2": None, "state": None},
    )  # fmt: skip
    invoice = stripe.emulator.add_invoice(
        customer["id"], 2500, "eur", description="Add-on", finalize=True
    )
    gateways = Gateways([*services.gateways, stripe.gateway], timeout=10)
    both = dataclasses.replace(services, gateways=gateways)
    app = create_app(both.settings, both)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            yield client, both, {"customer": customer, "invoice": invoice}


async def test_an_open_stripe_invoice_is_paid_on_stripes_hosted_page(both):
    client, services, made = both
    await open_as(client, services, JANE)
    page, token = await form_page(client, "/portal/")
    invoice = made["invoice"]
    assert f'action="/portal/pay/stripe/{invoice["id"]}"' in page.text
    assert "JANE-0001" in page.text  # the ledger's invoices beside Stripe's

    answer = await post(client, f"/portal/pay/stripe/{invoice['id']}", token)

    assert answer.status_code == 303
    assert answer.headers["location"] == invoice["hosted_invoice_url"]
    async with services.db.read() as session:
        entry = await session.scalar(select(AuditEntry).where(AuditEntry.action == "portal_pay"))
    assert (entry.gateway, entry.object_id, entry.amount, entry.currency) == (
        "stripe",
        invoice["id"],
        2500,
        "EUR",
    )


async def test_the_card_is_updated_on_stripes_billing_portal(both):
    client, services, made = both
    await open_as(client, services, JANE)
    _, token = await form_page(client, "/portal/")

    answer = await post(client, "/portal/card", token)

    assert answer.status_code == 303
    target = answer.headers["location"]
    assert "/_emulator/billing_portal/session/" in target
    async with httpx.AsyncClient() as outside:
        assert (await outside.get(target)).status_code == 200  # the emulator's portal page
    async with services.db.read() as db:
        entry = await db.scalar(select(AuditEntry).where(AuditEntry.action == "portal_card_update"))
    assert (entry.gateway, entry.customer_id, entry.outcome) == (
        "stripe",
        made["customer"]["id"],
        "redirected",
    )
    assert "return_url" not in parse_qs(urlsplit(target).query)  # nothing of ours in its address


async def test_a_tax_id_is_saved_on_every_gateway_that_bills_the_customer(both):
    client, services, _ = both
    await open_as(client, services, JANE)
    _, token = await form_page(client, "/portal/tax-id")

    saved = await post(
        client, "/portal/tax-id", token, country="DE", number="DE136695976", submission="x1"
    )
    again = await post(
        client, "/portal/tax-id", token, country="DE", number="DE136695976", submission="x1"
    )

    assert saved.status_code == 200 and "Saved: DE136695976" in saved.text
    assert again.status_code == 200
    profile = await services.gateways.lookup(JANE)
    found = sorted((p.gateway, t.value) for p in profile.profiles for t in p.tax_ids)
    assert found == [("ledger", "DE136695976"), ("stripe", "DE136695976")]
