"""Braintree webhooks: bt_signature over bt_payload, checked as the SDK does; then what they cause.

The first half drives `parse_webhook` directly; the second posts deliveries to
/webhooks/braintree of the running app, with real SQL, Redis and document jobs.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlencode

import httpx
import pytest
from sqlalchemy import select

from bot import jobs
from bot.gateways.base import WebhookRejected
from bot.gateways.braintree.gateway import BraintreeGateway
from bot.gateways.events import EventKind
from bot.money import Money
from bot.notify import pending
from bot.store.tables import DocumentRow
from chargedesk_emulators.braintree import BraintreeEmulator, braintree_api
from tests.conftest import say
from tests.documents.drafts import repo_branding  # noqa: F401 - a fixture
from tests.fakes.braintree_env import Seeded, braintree_gateway, seed_contract_customer
from tests.fakes.emulated_gateway import bot_client, externals, fixtures

api, seeded, gateway = fixtures(braintree_api, seed_contract_customer, braintree_gateway)


def form(fields: dict[str, str]) -> bytes:
    return urlencode(fields).encode()


def settled_refund(api: BraintreeEmulator, sale: str, amount: str) -> str:
    """A refund made in the Control Panel of a bank payment, once it settles (when Braintree tells)."""
    refund = api.refund_outside(sale, amount)
    api.settle(refund)
    return refund


# --- verification --------------------------------------------------------------------------


async def test_a_signed_notification_is_verified_and_translated(
    api: BraintreeEmulator, gateway: BraintreeGateway, seeded: Seeded
) -> None:
    dispute = api.add_dispute(seeded.charge_id, amount="40.00")
    body, headers = api.delivery("dispute_opened", dispute)
    (event,) = await gateway.parse_webhook(body, headers)
    assert (event.kind, event.raw_type, event.object_id) == (
        EventKind.dispute_created,
        "dispute_opened",
        dispute,
    )
    assert event.related_id == seeded.charge_id
    assert event.amount == Money(minor=4000, currency="USD")
    assert event.detail == {"reason": "fraud"}
    # A redelivery carries the same notification: the same event ID, so it is processed once.
    (again,) = await gateway.parse_webhook(body, headers)
    assert again.id == event.id


async def test_notifications_map_to_our_kinds(
    api: BraintreeEmulator, gateway: BraintreeGateway, seeded: Seeded
) -> None:
    ours = await gateway.refund(seeded.charge_id, Money(minor=1000, currency="USD"),
                                reason="x", idempotency_key="apr_0123456789ab")  # fmt: skip
    api.settle(ours.id)
    sub = seeded.subscription_ids[0]
    latest = api.subscriptions[sub].transactions[0]
    cases = {
        ("transaction_settled", ours.id): (EventKind.refund, ours.id, seeded.charge_id),
        ("transaction_settled", seeded.charge_id): (
            EventKind.payment_succeeded,
            seeded.charge_id,
            None,
        ),
        ("transaction_settlement_declined", seeded.charge_id): (
            EventKind.payment_failed,
            seeded.charge_id,
            None,
        ),
        ("subscription_charged_successfully", sub): (EventKind.payment_succeeded, latest, sub),
        ("subscription_charged_unsuccessfully", sub): (EventKind.payment_failed, latest, sub),
        ("subscription_canceled", sub): (EventKind.subscription_canceled, sub, None),
        ("subscription_went_past_due", sub): (EventKind.subscription_updated, sub, None),
        ("check", ""): (EventKind.other, "check", None),
    }
    for (kind, subject), expected in cases.items():
        (event,) = await gateway.parse_webhook(*api.delivery(kind, subject))
        assert (event.kind, event.object_id, event.related_id) == expected, kind
    (refund,) = await gateway.parse_webhook(*api.delivery("transaction_settled", ours.id))
    # Our refund carries its approval's key back, so it is never mistaken for an outside one.
    assert refund.idempotency_key == "apr_0123456789ab" and refund.customer_id == seeded.customer_id


async def test_forged_deliveries_are_rejected(
    api: BraintreeEmulator, gateway: BraintreeGateway, seeded: Seeded
) -> None:
    genuine = api.notification("transaction_settled", seeded.charge_id)
    xml = base64.b64decode(genuine["bt_payload"]).replace(b"100.00", b"999.00")
    altered = {**genuine, "bt_payload": base64.encodebytes(xml).decode()}
    other_key = BraintreeEmulator(private_key="someone_elses_key").signature(genuine["bt_payload"])
    foreign = BraintreeEmulator(public_key="another_merchant").signature(genuine["bt_payload"])
    forgeries = {
        "altered payload": form(altered),
        "signed with another key": form({**genuine, "bt_signature": other_key}),
        "another public key": form({**genuine, "bt_signature": foreign}),
        "no signature": form({"bt_payload": genuine["bt_payload"]}),
        "signature twice": form(genuine) + b"&" + form({"bt_signature": genuine["bt_signature"]}),
        "json instead": b'{"bt_signature": "x", "bt_payload": "y"}',
        "not ascii": form(genuine) + "&é=1".encode(),
        "illegal payload": form({**genuine, "bt_payload": genuine["bt_payload"] + "<>"}),
    }
    for name, body in forgeries.items():
        with pytest.raises(WebhookRejected):
            await gateway.parse_webhook(body, {})
            pytest.fail(name)
    # Braintree signs the payload with its newline; one stripped in transit still verifies.
    stripped = {**genuine, "bt_payload": genuine["bt_payload"].rstrip("\n")}
    assert await gateway.parse_webhook(form(stripped), {})


async def test_stale_and_future_notifications_are_rejected_but_a_retry_within_a_day_is_not(
    api: BraintreeEmulator, gateway: BraintreeGateway, seeded: Seeded
) -> None:
    now = datetime.now(UTC)
    stale = api.delivery(
        "transaction_settled", seeded.charge_id, timestamp=now - timedelta(hours=26)
    )
    future = api.delivery(
        "transaction_settled", seeded.charge_id, timestamp=now + timedelta(hours=1)
    )
    retried = api.delivery(
        "transaction_settled", seeded.charge_id, timestamp=now - timedelta(hours=23)
    )
    with pytest.raises(WebhookRejected) as old:
        await gateway.parse_webhook(*stale)
    assert "stale" in old.value.message
    with pytest.raises(WebhookRejected):
        await gateway.parse_webhook(*future)
    (event,) = await gateway.parse_webhook(*retried)  # Braintree retries hourly for 24 hours
    assert event.kind == EventKind.payment_succeeded


def test_the_payload_is_what_the_sdk_signs() -> None:
    """Our emulator's signature is the SDK's: `public_key|HMAC-SHA1(SHA1(private_key))`."""
    import braintree

    emulator = BraintreeEmulator()
    sdk = braintree.BraintreeGateway(
        braintree.Configuration(
            braintree.Environment.Sandbox,
            emulator.merchant_id,
            emulator.public_key,
            emulator.private_key,
        )
    )
    sample = sdk.webhook_testing.sample_notification("check", "")
    assert emulator.signature(sample["bt_payload"].decode()) == sample["bt_signature"]


# --- end to end: /webhooks/braintree --------------------------------------------------------


@pytest.fixture
async def bot(services, gateway: BraintreeGateway, seeded: Seeded):  # type: ignore[no-untyped-def]
    async with bot_client(services, gateway) as http:
        yield http


async def post(http: httpx.AsyncClient, delivery: tuple[bytes, dict[str, str]]) -> httpx.Response:
    body, headers = delivery
    return await http.post("/webhooks/braintree", content=body, headers=headers)


@pytest.mark.storage
@pytest.mark.usefixtures("repo_branding")
async def test_a_refund_made_in_the_control_panel_is_audited_once_and_gets_a_credit_note(
    services, bot, api: BraintreeEmulator, seeded: Seeded
) -> None:
    refund = settled_refund(api, seeded.charge_id, "25.00")
    delivery = api.delivery("transaction_settled", refund)
    first, again = await post(bot, delivery), await post(bot, delivery)
    assert (first.status_code, first.json()["outcomes"]) == (200, ["processed"])
    assert again.json()["outcomes"] == ["duplicate"]
    (entry,) = await externals(services)
    assert (entry.gateway, entry.object_id, entry.amount, entry.currency) == (
        "braintree",
        seeded.charge_id,
        2500,
        "USD",
    )
    await jobs.run_worker(services, burst=True)
    async with services.db.read() as session:
        documents = {d.kind: d for d in await session.scalars(select(DocumentRow))}
    note, receipt = documents["credit_note"], documents["receipt"]
    assert (note.source_gateway, note.source_id, note.gross) == ("braintree", refund, 2500)
    assert note.related_id == receipt.id and receipt.source_id == seeded.charge_id


@pytest.mark.storage
async def test_our_own_refund_is_not_audited_as_external(
    services, bot, agent, api: BraintreeEmulator, seeded: Seeded
) -> None:
    reply = await say(
        services, agent, f"refund braintree:{seeded.charge_id} 10.00 reason: goodwill late"
    )
    assert reply.approval is not None and reply.approval.state == "succeeded", reply.error
    (refund,) = api.transactions[seeded.charge_id].refund_ids
    assert api.transactions[refund].order_id == f"chargedesk:{reply.approval.id}"
    api.settle(refund)
    answer = await post(bot, api.delivery("transaction_settled", refund))
    assert answer.json()["outcomes"] == ["processed"]
    assert await externals(services) == []


@pytest.mark.storage
@pytest.mark.parametrize("forgery", ["altered payload", "stale", "no fields"])
async def test_a_forged_or_stale_delivery_is_400_and_changes_nothing(
    services, bot, api: BraintreeEmulator, seeded: Seeded, forgery: str
) -> None:
    refund = settled_refund(api, seeded.charge_id, "25.00")
    stamp = datetime.now(UTC) - timedelta(days=2) if forgery == "stale" else None
    body, headers = api.delivery("transaction_settled", refund, timestamp=stamp)
    if forgery == "altered payload":
        fields = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        xml = base64.b64decode(fields["bt_payload"]).replace(b"25.00", b"99.00")
        body = form({**fields, "bt_payload": base64.encodebytes(xml).decode()})
    if forgery == "no fields":
        body = b""
    response = await bot.post("/webhooks/braintree", content=body, headers=headers)
    assert response.status_code == 400
    assert await externals(services) == []


@pytest.mark.storage
async def test_a_new_dispute_queues_an_alert(
    services, bot, api: BraintreeEmulator, seeded: Seeded
) -> None:
    dispute = api.add_dispute(seeded.charge_id)
    assert (await post(bot, api.delivery("dispute_opened", dispute))).status_code == 200
    ((_, kind, card),) = await pending(services.db)
    assert kind == "dispute_created" and dispute in card.title
