"""WooCommerce webhooks: X-WC-Webhook-Signature checked, deliveries turned into events,
and end to end through /webhooks/woocommerce: dashboard refunds audited once with a credit
note, forged and stale deliveries refused, our own refunds recognized."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select

from bot import jobs
from bot.gateways.base import WebhookRejected
from bot.gateways.events import EventKind
from bot.gateways.woocommerce.gateway import WooCommerceGateway
from bot.store.tables import DocumentRow
from chargedesk_emulators.woocommerce import WooCommerceEmulator, woocommerce_api
from tests.conftest import say
from tests.documents.drafts import repo_branding  # noqa: F401 - a fixture
from tests.fakes.emulated_gateway import bot_client, externals
from tests.fakes.woocommerce_env import (
    Seeded,
    seed_contract_customer,
    woocommerce_gateway,
    woocommerce_settings,
)


@pytest.fixture
def store() -> Iterator[tuple[WooCommerceEmulator, Seeded]]:
    with woocommerce_api() as api:
        yield api, seed_contract_customer(api)


@pytest.fixture
async def gateway(store: tuple[WooCommerceEmulator, Seeded]) -> AsyncIterator[WooCommerceGateway]:
    gw = WooCommerceGateway(woocommerce_settings(store[0]), backoff=0.01)
    try:
        yield gw
    finally:
        await gw.close()


# --- verification -----------------------------------------------------------------------------


async def test_a_dashboard_refund_arrives_as_a_refund_event(
    store: tuple[WooCommerceEmulator, Seeded], gateway: WooCommerceGateway
) -> None:
    api, seeded = store
    refund = api.refund_in_dashboard(int(seeded.charge_id), "25.00", reason="damaged in transit")
    body, headers = api.webhook("order.updated", int(seeded.charge_id))
    assert b"\\/" in body  # PHP's escaped slashes: the signature covers the body as sent
    event, paid = await gateway.parse_webhook(body, headers)
    assert (paid.id, paid.kind) == (f"order-{seeded.charge_id}-paid", EventKind.payment_succeeded)
    assert (event.id, event.kind, event.object_id, event.related_id) == (
        f"refund-{refund}",
        EventKind.refund,
        str(refund),
        seeded.charge_id,
    )
    assert (event.customer_id, event.amount.plain(), event.idempotency_key) == (  # type: ignore[union-attr]
        seeded.customer_id,
        "25.00 USD",
        None,
    )
    assert event.created == api.orders[int(seeded.charge_id)].modified


@pytest.mark.parametrize(
    "problem", ["wrong secret", "altered body", "no signature", "stale", "future"]
)
async def test_deliveries_that_are_not_genuine_or_fresh_are_rejected(
    store: tuple[WooCommerceEmulator, Seeded], gateway: WooCommerceGateway, problem: str
) -> None:
    api, seeded = store
    api.refund_in_dashboard(int(seeded.charge_id), "25.00")
    order = api.orders[int(seeded.charge_id)]
    if problem in ("stale", "future"):
        order.modified += timedelta(days=-3 if problem == "stale" else 3)
    body, headers = api.webhook(
        "order.updated", order.id, secret="not-the-secret" if problem == "wrong secret" else None
    )
    if problem == "altered body":
        body = body.replace(b'"total":"-25.00"', b'"total":"-99.00"')
    if problem == "no signature":
        headers.pop("X-WC-Webhook-Signature")
    with pytest.raises(WebhookRejected) as info:
        await gateway.parse_webhook(body, headers)
    words = {"stale": "stale", "future": "stale", "no signature": "without X-WC-Webhook-Signature"}
    assert words.get(problem, "does not match the body") in info.value.message


async def test_without_a_webhook_secret_nothing_is_accepted(
    store: tuple[WooCommerceEmulator, Seeded],
) -> None:
    api, seeded = store
    gw = WooCommerceGateway(woocommerce_settings(api, webhook_secret=None), backoff=0.01)
    try:
        body, headers = api.webhook("order.updated", int(seeded.charge_id))
        with pytest.raises(WebhookRejected, match="webhook_secret is not configured"):
            await gw.parse_webhook(body, headers)
    finally:
        await gw.close()


async def test_the_ping_sent_when_a_webhook_is_saved_gets_no_events(
    store: tuple[WooCommerceEmulator, Seeded], gateway: WooCommerceGateway
) -> None:
    body, headers = store[0].ping()
    assert await gateway.parse_webhook(body, headers) == []
    with pytest.raises(WebhookRejected):  # anything else unsigned is refused
        await gateway.parse_webhook(b"webhook_id=1&refund=1", headers)


async def test_every_topic_maps_to_its_kind(
    store: tuple[WooCommerceEmulator, Seeded], gateway: WooCommerceGateway
) -> None:
    api, seeded = store

    async def kinds(topic: str, resource: int) -> list[tuple[str, EventKind]]:
        api.touch(resource)
        body, headers = api.webhook(topic, resource, delivery_id="d1")
        return [(e.id, e.kind) for e in await gateway.parse_webhook(body, headers)]

    paid, held = int(seeded.charge_id), int(seeded.authorized_ids[0])
    failed = api.add_order("9.00", customer_id=seeded.user_id, status="failed", paid=False)
    sub = int(seeded.subscription_ids[0])
    assert await kinds("order.created", paid) == [
        (f"order-{paid}-paid", EventKind.payment_succeeded)
    ]
    assert await kinds("order.updated", held) == [("delivery-d1", EventKind.other)]
    assert await kinds("order.updated", failed) == [
        (f"order-{failed}-failed", EventKind.payment_failed)
    ]
    assert await kinds("order.deleted", paid) == [("delivery-d1", EventKind.other)]
    assert await kinds("customer.updated", seeded.user_id) == [("delivery-d1", EventKind.other)]
    assert await kinds("subscription.updated", sub) == [
        ("delivery-d1", EventKind.subscription_updated)
    ]
    api.orders[sub].status = "pending-cancel"
    assert await kinds("subscription.updated", sub) == [
        (f"subscription-{sub}-pending-cancel", EventKind.subscription_updated)
    ]
    api.orders[sub].status = "cancelled"
    assert await kinds("subscription.updated", sub) == [
        (f"subscription-{sub}-cancelled", EventKind.subscription_canceled)
    ]


# --- end to end through /webhooks/woocommerce ---------------------------------------------------


@pytest.fixture
async def bot(services, store):  # type: ignore[no-untyped-def]
    """The bot's ASGI app with the store's gateway, and a function delivering its webhooks."""
    api, seeded = store
    gateway = woocommerce_gateway(api)
    async with bot_client(services, gateway) as http:

        async def deliver(body: bytes, headers: dict[str, str]) -> httpx.Response:
            return await http.post("/webhooks/woocommerce", content=body, headers=headers)

        try:
            yield api, seeded, deliver
        finally:
            await gateway.close()


@pytest.mark.storage
@pytest.mark.usefixtures("repo_branding")
async def test_a_refund_made_in_the_woocommerce_dashboard_is_audited_once_with_a_credit_note(
    bot, services
):  # type: ignore[no-untyped-def]
    api, seeded, deliver = bot
    refund = api.refund_in_dashboard(
        int(seeded.charge_id), "25.00", reason="damaged", api_refund=False
    )
    body, headers = api.webhook("order.updated", int(seeded.charge_id))
    first = await deliver(body, headers)
    again = await deliver(body, headers)  # WooCommerce or an attacker sends it again
    api.orders[int(seeded.charge_id)].modified += timedelta(seconds=5)  # the order changes later
    later = await deliver(*api.webhook("order.updated", int(seeded.charge_id)))
    assert [r.json()["outcomes"] for r in (first, again, later)] == [
        ["processed", "processed"],  # the refund, and the order's payment seen the first time
        ["duplicate", "duplicate"],
        ["duplicate", "duplicate"],
    ]
    (entry,) = await externals(services)
    assert (
        entry.gateway,
        entry.object_id,
        entry.amount,
        entry.currency,
        entry.gateway_request_id,
    ) == (
        "woocommerce",
        seeded.charge_id,
        2500,
        "USD",
        str(refund),
    )
    await jobs.run_worker(services, burst=True)
    async with services.db.read() as session:
        documents = {d.kind: d for d in await session.scalars(select(DocumentRow))}
    note = documents["credit_note"]
    assert (note.source_gateway, note.source_id, note.gross) == ("woocommerce", str(refund), 2500)
    assert note.related_id == documents["receipt"].id


@pytest.mark.storage
@pytest.mark.parametrize("forgery", ["altered body", "stale", "no headers"])
async def test_forged_or_stale_deliveries_are_400_and_change_nothing(bot, services, forgery):  # type: ignore[no-untyped-def]
    api, seeded, deliver = bot
    api.refund_in_dashboard(int(seeded.charge_id), "25.00")
    if forgery == "stale":
        api.orders[int(seeded.charge_id)].modified = datetime.now(UTC) - timedelta(days=5)
    body, headers = api.webhook("order.updated", int(seeded.charge_id))
    if forgery == "altered body":
        body = body.replace(b'"total":"-25.00"', b'"total":"-99.00"')
    if forgery == "no headers":
        headers = {"Content-Type": "application/json"}
    answer = await deliver(body, headers)
    assert answer.status_code == 400
    assert await externals(services) == []


@pytest.mark.storage
async def test_a_refund_made_through_chargedesk_comes_back_as_ours(bot, services, agent):  # type: ignore[no-untyped-def]
    api, seeded, deliver = bot
    reply = await say(
        services, agent, f"refund woocommerce:{seeded.charge_id} 10.00 reason: goodwill late parcel"
    )
    assert reply.error is None, reply.error
    assert reply.approval is not None and reply.approval.state == "succeeded"
    (stored,) = api.refunds.values()
    assert stored.reason == f"Refund ref {reply.approval.id}"
    answer = await deliver(*api.webhook("order.updated", int(seeded.charge_id)))
    assert "processed" in answer.json()["outcomes"]
    assert await externals(services) == []  # the audit log has it as the agent's refund


@pytest.mark.storage
async def test_the_refund_command_says_plainly_when_the_payment_method_cannot_refund(
    bot, services, agent
):  # type: ignore[no-untyped-def]
    api, seeded, _ = bot
    cash = api.add_order("40.00", customer_id=seeded.user_id, payment_method="cod")
    reply = await say(
        services, agent, f"refund woocommerce:{cash} 10.00 reason: goodwill broken lid"
    )
    assert reply.error is not None and reply.error.code == "unsupported"
    assert reply.approval is None  # refused before anyone is asked to approve it
    assert reply.error.message == (
        f"order {cash} was paid with Cash on delivery, which cannot refund through WooCommerce: "
        "nothing was refunded. Pay the customer back another way, then record it: "
        f"`refund woocommerce:{cash} 10.00 manual reason: …` (or “Refund manually” on the "
        "order in WooCommerce)."
    )
    assert api.refunds == {}


@pytest.mark.storage
async def test_our_secret_is_ours_alone(bot, services):  # type: ignore[no-untyped-def]
    api, seeded, deliver = bot
    body, headers = api.webhook(
        "order.updated", int(seeded.charge_id), secret="another-stores-secret"
    )
    assert (await deliver(body, headers)).status_code == 400
    assert SecretStr(api.webhook_secret).get_secret_value() not in str(
        services.gateways.get("woocommerce").settings
    )


@pytest.mark.storage
async def test_the_stores_ping_is_answered_200_with_nothing_processed(bot):  # type: ignore[no-untyped-def]
    api, _, deliver = bot
    answer = await deliver(*api.ping())
    assert (answer.status_code, answer.json()) == (200, {"received": 0, "outcomes": []})
