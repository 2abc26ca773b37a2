"""/webhooks/stripe and /webhooks/paypal end to end: real signatures, emulated providers."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from bot.notify import pending
from tests.fakes.emulated_gateway import bot_client, externals
from tests.fakes.paypal_env import paypal_gateway, seeded_api
from tests.fakes.stripe_env import WEBHOOK_SECRET, stripe_fake

pytestmark = pytest.mark.storage


@pytest.fixture
async def stripe(services):  # type: ignore[no-untyped-def]
    async with stripe_fake() as fake, bot_client(services, fake.gateway) as http:
        yield fake, http


@pytest.fixture
async def paypal(services):  # type: ignore[no-untyped-def]
    with seeded_api() as (api, seeded):
        gateway = paypal_gateway(api)
        try:
            async with bot_client(services, gateway) as http:
                yield api, seeded, http
        finally:
            await gateway.close()


async def test_stripe_refund_made_in_the_dashboard_is_audited_once(stripe, services):
    fake, http = stripe
    refund = fake.emulator.add_refund(fake.env.charge_id, 2500)
    body, headers = fake.emulator.delivery(
        fake.emulator.event("refund.created", refund), WEBHOOK_SECRET
    )
    first = await http.post("/webhooks/stripe", content=body, headers=headers)
    again = await http.post("/webhooks/stripe", content=body, headers=headers)
    assert (first.status_code, first.json()["outcomes"]) == (200, ["processed"])
    assert again.json()["outcomes"] == ["duplicate"]
    (entry,) = await externals(services)
    assert (entry.gateway, entry.object_id, entry.amount, entry.currency) == (
        "stripe",
        fake.env.charge_id,
        2500,
        fake.env.currency,
    )


@pytest.mark.parametrize("forgery", ["wrong secret", "stale", "altered body", "no header"])
async def test_stripe_forged_or_stale_delivery_is_400_and_changes_nothing(
    stripe, services, forgery
):
    fake, http = stripe
    refund = fake.emulator.add_refund(fake.env.charge_id, 2500)
    event = fake.emulator.event("refund.created", refund)
    secret = "whsec_not_ours" if forgery == "wrong secret" else WEBHOOK_SECRET
    stamp = int(time.time()) - 3600 if forgery == "stale" else None
    body, headers = fake.emulator.delivery(event, secret, timestamp=stamp)
    if forgery == "altered body":
        body = body.replace(b'"amount": 2500', b'"amount": 9900')
    if forgery == "no header":
        headers.pop("Stripe-Signature")
    response = await http.post("/webhooks/stripe", content=body, headers=headers)
    assert response.status_code == 400
    assert await externals(services) == []


async def test_stripe_dispute_queues_an_alert(stripe, services):
    fake, http = stripe
    dispute = fake.emulator.add_dispute(fake.env.charge_id)
    body, headers = fake.emulator.delivery(
        fake.emulator.event("charge.dispute.created", dispute), WEBHOOK_SECRET
    )
    assert (await http.post("/webhooks/stripe", content=body, headers=headers)).status_code == 200
    ((_, kind, card),) = await pending(services.db)
    assert kind == "dispute_created" and dispute["id"] in card.title


async def test_stripe_older_subscription_event_does_not_overwrite_newer(stripe, services):
    fake, http = stripe
    sub = fake.emulator.get(fake.env.subscription_ids[0])
    now = int(time.time())
    canceled = fake.emulator.event(
        "customer.subscription.deleted", {**sub, "status": "canceled"}, created=now
    )
    older = fake.emulator.event(
        "customer.subscription.updated", {**sub, "status": "past_due"}, created=now - 60
    )
    outcomes = []
    for event in (canceled, older):
        body, headers = fake.emulator.delivery(event, WEBHOOK_SECRET)
        outcomes += (await http.post("/webhooks/stripe", content=body, headers=headers)).json()[
            "outcomes"
        ]
    assert outcomes == ["processed", "outdated"]


async def test_paypal_refund_made_in_the_dashboard_is_audited_once(paypal, services):
    api, seeded, http = paypal
    refund_id = api.refund_outside(seeded.charge_id, "25.00")
    body, headers = api.webhook_delivery(
        "PAYMENT.CAPTURE.REFUNDED", api.refund_json(refund_id), resource_type="refund"
    )
    first = await http.post("/webhooks/paypal", content=body, headers=headers)
    again = await http.post("/webhooks/paypal", content=body, headers=headers)
    assert first.json()["outcomes"] == ["processed"] and again.json()["outcomes"] == ["duplicate"]
    (entry,) = await externals(services)
    assert (entry.gateway, entry.object_id, entry.amount) == ("paypal", seeded.charge_id, 2500)


@pytest.mark.parametrize("forgery", ["altered body", "stale", "no headers"])
async def test_paypal_forged_or_stale_delivery_is_400_and_changes_nothing(
    paypal, services, forgery
):
    api, seeded, http = paypal
    refund_id = api.refund_outside(seeded.charge_id, "25.00")
    sent = datetime.now(UTC) - timedelta(hours=1) if forgery == "stale" else None
    body, headers = api.webhook_delivery(
        "PAYMENT.CAPTURE.REFUNDED",
        api.refund_json(refund_id),
        resource_type="refund",
        transmission_time=sent,
    )
    if forgery == "altered body":
        body = body.replace(b'"25.00"', b'"99.00"')
    if forgery == "no headers":
        headers = {"Content-Type": "application/json"}
    response = await http.post("/webhooks/paypal", content=body, headers=headers)
    assert response.status_code == 400
    assert await externals(services) == []
