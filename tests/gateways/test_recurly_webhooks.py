"""Recurly webhooks: signatures, events, and /webhooks/recurly end to end with the bot."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from bot import jobs
from bot.chat.slack.render import card_blocks
from bot.gateways.base import WebhookRejected
from bot.gateways.events import EventKind
from bot.gateways.recurly.gateway import RecurlyGateway
from bot.money import Money
from bot.notify import pending
from bot.store.tables import DocumentRow
from chargedesk_emulators.recurly import RecurlyEmulator, recurly_api, sign
from tests.conftest import say
from tests.fakes.emulated_gateway import bot_client, externals, fixtures
from tests.fakes.recurly_env import Seeded, recurly_gateway, recurly_settings, seed_contract_account

api, seeded, gateway = fixtures(recurly_api, seed_contract_account, recurly_gateway)


def dashboard_refund(api: RecurlyEmulator, seeded: Seeded, value: str = "25.00") -> str:
    """A refund made in Recurly's admin, to the card; returns its refund transaction's ID."""
    api.refund_in_dashboard(seeded.invoice_id, value, refund_method="all_transaction")
    return api.refunds_of(seeded.charge_id)[-1].id


# --- signatures --------------------------------------------------------------------------


async def test_a_signed_refund_notification_becomes_a_refund_event(
    api: RecurlyEmulator, gateway: RecurlyGateway, seeded: Seeded
) -> None:
    refund_id = dashboard_refund(api, seeded)
    when = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
    body, headers = api.webhook_delivery("payment", "refunded", refund_id, event_time=when)
    (event,) = await gateway.parse_webhook(body, headers)
    assert (event.kind, event.raw_type) == (EventKind.refund, "payment.refunded")
    assert (event.object_id, event.related_id) == (refund_id, seeded.charge_id)
    assert event.amount == Money(minor=2500, currency="USD")
    assert (event.customer_id, event.status, event.created) == (seeded.account_id, "success", when)
    assert event.id == f"payment.refunded:{refund_id}"
    succeeded = api.webhook_delivery("payment", "succeeded", seeded.charge_id, event_time=when)
    (paid,) = await gateway.parse_webhook(*succeeded)
    assert paid.id == f"payment.succeeded:{seeded.charge_id}@{when:%Y-%m-%dT%H:%M:%SZ}"


@pytest.mark.parametrize(
    "forgery",
    [
        "altered body",
        "wrong secret",
        "no header",
        "bare timestamp",
        "not hex",
        "too many signatures",
    ],
)
async def test_forged_deliveries_are_refused_before_recurly_is_asked(
    api: RecurlyEmulator, gateway: RecurlyGateway, seeded: Seeded, forgery: str
) -> None:
    refund_id = dashboard_refund(api, seeded)
    secrets = ["guessed-secret"] if forgery == "wrong secret" else None
    body, headers = api.webhook_delivery("payment", "refunded", refund_id, signing_secrets=secrets)
    stamp = headers["recurly-signature"].split(",")[0]
    if forgery == "altered body":
        body = body.replace(refund_id.encode(), seeded.charge_id.encode())
    elif forgery == "no header":
        del headers["recurly-signature"]
    elif forgery == "bare timestamp":
        headers["recurly-signature"] = stamp
    elif forgery == "not hex":
        headers["recurly-signature"] = f"{stamp},zz{'0' * 62}"
    elif forgery == "too many signatures":
        headers["recurly-signature"] += ",00" * 9
    before = len(api.exchanges)
    with pytest.raises(WebhookRejected):
        await gateway.parse_webhook(body, headers)
    assert len(api.exchanges) == before


@pytest.mark.parametrize(("minutes", "accepted"), [(-6, False), (-4, True), (4, True), (6, False)])
async def test_a_signature_is_good_for_five_minutes_either_way(
    api: RecurlyEmulator, gateway: RecurlyGateway, seeded: Seeded, minutes: int, accepted: bool
) -> None:
    sent = datetime.now(UTC) + timedelta(minutes=minutes)
    body, headers = api.webhook_delivery("payment", "succeeded", seeded.charge_id, sent_at=sent)
    if accepted:
        (event,) = await gateway.parse_webhook(body, headers)
        assert event.kind == EventKind.payment_succeeded
    else:
        with pytest.raises(WebhookRejected) as stale:
            await gateway.parse_webhook(body, headers)
        assert "stale" in stale.value.message


async def test_a_rotated_secret_is_accepted_beside_the_old_one(
    api: RecurlyEmulator, gateway: RecurlyGateway, seeded: Seeded
) -> None:
    rotating = ["the-old-secret", api.webhook_secret]
    body, headers = api.webhook_delivery(
        "payment", "succeeded", seeded.charge_id, signing_secrets=rotating
    )
    assert len(headers["recurly-signature"].split(",")) == 3
    assert len(await gateway.parse_webhook(body, headers)) == 1
    old_only = api.webhook_delivery(
        "payment", "succeeded", seeded.charge_id, signing_secrets=["the-old-secret"]
    )
    with pytest.raises(WebhookRejected):
        await gateway.parse_webhook(*old_only)


async def test_xml_notifications_are_refused_with_the_way_out(gateway: RecurlyGateway) -> None:
    xml = b'<?xml version="1.0"?><successful_refund_notification/>'
    with pytest.raises(WebhookRejected) as refused:
        await gateway.parse_webhook(xml, {"Content-Type": "application/xml"})
    assert "JSON" in refused.value.message


async def test_without_a_secret_nothing_is_accepted(api: RecurlyEmulator, seeded: Seeded) -> None:
    gw = RecurlyGateway(recurly_settings(api, webhook_secret=None))
    try:
        with pytest.raises(WebhookRejected) as unset:
            await gw.parse_webhook(*api.webhook_delivery("payment", "succeeded", seeded.charge_id))
    finally:
        await gw.close()
    assert "recurly.webhook_secret" in unset.value.message


async def test_a_signed_body_that_is_no_notification_is_refused(
    api: RecurlyEmulator, gateway: RecurlyGateway
) -> None:
    stamp = str(int(datetime.now(UTC).timestamp() * 1000))
    for body in (b"[1, 2]", b'{"object_type": "payment"}', b"not json"):
        headers = {"recurly-signature": f"{stamp},{sign(api.webhook_secret, stamp, body)}"}
        with pytest.raises(WebhookRejected):
            await gateway.parse_webhook(body, headers)


# --- events ------------------------------------------------------------------------------


async def test_notifications_map_to_our_kinds(
    api: RecurlyEmulator, gateway: RecurlyGateway, seeded: Seeded
) -> None:
    declined_invoice, declined = api.add_purchase(seeded.account_id, "9.00", status="declined")
    assert declined is not None
    api.invoices[declined_invoice].state = "past_due"
    sub = seeded.subscription_ids[0]
    cases = [
        ("payment", "succeeded", seeded.charge_id, EventKind.payment_succeeded),
        ("payment", "failed", declined, EventKind.payment_failed),
        ("charge_invoice", "paid", seeded.invoice_id, EventKind.invoice_paid),
        ("charge_invoice", "past_due", declined_invoice, EventKind.payment_failed),
        ("subscription", "canceled", sub, EventKind.subscription_updated),
        ("subscription", "expired", sub, EventKind.subscription_canceled),
        ("subscription", "renewed", sub, EventKind.subscription_updated),
        ("credit_invoice", "created", "anycreditinv", EventKind.other),
        ("account", "created", seeded.account_id, EventKind.other),
    ]
    for object_type, event_type, object_id, kind in cases:
        (event,) = await gateway.parse_webhook(
            *api.webhook_delivery(object_type, event_type, object_id)
        )
        assert (event.kind, event.object_id) == (kind, object_id), (object_type, event_type)
    failed = (await gateway.parse_webhook(*api.webhook_delivery("payment", "failed", declined)))[0]
    assert failed.detail["failure_message"] == "Your card was declined."
    paid = (await gateway.parse_webhook(*api.webhook_delivery("charge_invoice", "paid", seeded.invoice_id)))[0]  # fmt: skip
    assert (paid.related_id, paid.amount, paid.detail["invoice_number"]) == (
        seeded.charge_id,
        Money(minor=10000, currency="USD"),
        "1001",
    )
    # Account notifications need nothing from the API.
    reads = len(api.exchanges)
    await gateway.parse_webhook(*api.webhook_delivery("account", "updated", seeded.account_id))
    assert len(api.exchanges) == reads


async def test_a_refund_notification_naming_the_payment_gives_each_refund_once(
    api: RecurlyEmulator, gateway: RecurlyGateway, seeded: Seeded
) -> None:
    first = dashboard_refund(api, seeded, "10.00")
    body, headers = api.webhook_delivery("payment", "refunded", first)
    (named,) = await gateway.parse_webhook(body, headers)
    second = dashboard_refund(api, seeded, "15.00")
    body, headers = api.webhook_delivery("payment", "refunded", seeded.charge_id)
    events = await gateway.parse_webhook(body, headers)
    assert {(e.object_id, e.amount) for e in events} == {
        (first, Money(minor=1000, currency="USD")),
        (second, Money(minor=1500, currency="USD")),
    }
    assert all(e.kind == EventKind.refund and e.related_id == seeded.charge_id for e in events)
    # The refund announced before is the same event, so it is processed once.
    assert named.id in {e.id for e in events}
    account = api.add_account("none@example.com")
    _, untouched = api.add_purchase(account, "5.00")
    assert untouched is not None
    (nothing,) = await gateway.parse_webhook(
        *api.webhook_delivery("payment", "refunded", untouched)
    )
    assert nothing.kind == EventKind.other and "no refund" in nothing.detail["note"]


async def test_a_notification_for_an_object_recurly_no_longer_has_is_still_recorded(
    api: RecurlyEmulator, gateway: RecurlyGateway
) -> None:
    (event,) = await gateway.parse_webhook(
        *api.webhook_delivery("payment", "succeeded", "gone0000000a")
    )
    assert (event.kind, event.object_id, event.amount) == (
        EventKind.payment_succeeded,
        "gone0000000a",
        None,
    )
    assert "not found" in event.detail["note"]


# --- the bot's endpoint ------------------------------------------------------------------


@pytest.fixture
async def bot(services, api: RecurlyEmulator, gateway: RecurlyGateway):  # type: ignore[no-untyped-def]
    async with bot_client(services, gateway) as http:
        yield http


@pytest.mark.storage
async def test_a_refund_made_in_recurlys_admin_is_audited_once_and_gets_a_credit_note(
    services, bot, api: RecurlyEmulator, seeded: Seeded
) -> None:
    refund_id = dashboard_refund(api, seeded, "25.00")
    body, headers = api.webhook_delivery("payment", "refunded", refund_id)
    first = await bot.post("/webhooks/recurly", content=body, headers=headers)
    again = await bot.post("/webhooks/recurly", content=body, headers=headers)
    assert (first.status_code, first.json()["outcomes"]) == (200, ["processed"])
    assert again.json()["outcomes"] == ["duplicate"]
    (entry,) = await externals(services)
    assert (entry.gateway, entry.object_id, entry.amount, entry.currency) == (
        "recurly",
        seeded.charge_id,
        2500,
        "USD",
    )
    assert entry.gateway_request_id == refund_id
    await jobs.run_worker(services, burst=True)
    async with services.db.read() as session:
        documents = {d.kind: d for d in await session.scalars(select(DocumentRow))}
    note, invoice = documents["credit_note"], documents["invoice"]
    assert (note.source_gateway, note.source_id, note.gross) == ("recurly", refund_id, 2500)
    assert note.related_id == invoice.id and invoice.source_id == seeded.invoice_id


@pytest.mark.storage
async def test_a_refund_made_by_the_bot_is_not_external(
    services, bot, api: RecurlyEmulator, seeded: Seeded, agent, manager
) -> None:
    asked = await say(
        services, agent, f"refund recurly:{seeded.charge_id} 60.00 reason: goodwill late delivery"
    )
    assert asked.error is None and asked.approval is not None, asked.error
    decided = await say(services, manager, f"approve {asked.approval.id}")
    assert decided.error is None, decided.error
    (refund,) = api.refunds_of(seeded.charge_id)
    assert refund.amount == Decimal("60.00")
    body, headers = api.webhook_delivery("payment", "refunded", refund.id)
    answer = await bot.post("/webhooks/recurly", content=body, headers=headers)
    assert answer.json()["outcomes"] == ["processed"]
    assert await externals(services) == []


@pytest.mark.storage
@pytest.mark.parametrize("forgery", ["stale", "altered body", "no header"])
async def test_a_forged_or_stale_delivery_is_400_and_changes_nothing(
    services, bot, api: RecurlyEmulator, seeded: Seeded, forgery: str
) -> None:
    refund_id = dashboard_refund(api, seeded)
    sent = datetime.now(UTC) - timedelta(hours=1) if forgery == "stale" else None
    body, headers = api.webhook_delivery("payment", "refunded", refund_id, sent_at=sent)
    if forgery == "altered body":
        body = body.replace(b"refunded", b"succeeded")
    if forgery == "no header":
        headers = {"Content-Type": "application/json"}
    answer = await bot.post("/webhooks/recurly", content=body, headers=headers)
    assert answer.status_code == 400
    assert await externals(services) == []


def test_settings_hold_the_secrets_as_secrets() -> None:
    from bot.settings import RecurlySettings

    settings = RecurlySettings(api_key=SecretStr("k-123"), webhook_secret=SecretStr("w-456"))
    assert "k-123" not in repr(settings) and "w-456" not in repr(settings)


@pytest.mark.storage
async def test_words_from_recurly_reach_the_alert_as_data_not_markup(
    services, bot, api: RecurlyEmulator, seeded: Seeded
) -> None:
    _, declined = api.add_purchase(seeded.account_id, "9.00", status="declined")
    assert declined is not None
    hostile = '<!channel> *pay now* =HYPERLINK("https://evil.example") <script>x</script>'
    api.transactions[declined].status_message = hostile
    body, headers = api.webhook_delivery("payment", "failed", declined)
    assert (await bot.post("/webhooks/recurly", content=body, headers=headers)).status_code == 200
    ((_, kind, card),) = await pending(services.db)
    assert kind == "payment_failed"
    assert any(f.value == hostile for s in card.sections for f in s.facts)
    shown = json.dumps(card_blocks(card))
    assert "<!channel>" not in shown and "&lt;!channel&gt;" in shown and "<script>" not in shown


async def test_an_id_that_is_no_recurly_id_is_not_sent_to_recurly(
    api: RecurlyEmulator, gateway: RecurlyGateway
) -> None:
    before = len(api.exchanges)
    (event,) = await gateway.parse_webhook(
        *api.webhook_delivery("payment", "succeeded", "../accounts/x?y=<b>")
    )
    assert len(api.exchanges) == before
    assert event.object_id == "../accounts/x?y=<b>" and event.amount is None
