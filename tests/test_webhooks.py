"""The webhook pipeline: once per event, never backwards in time, external money audited, alerts queued.

Gateway-specific signature checks live with each gateway's tests; the HTTP
endpoint with real Stripe and PayPal signatures is tested in tests/gateways/.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import select

from bot.audit.log import AuditFilter, query
from bot.gateways.base import Gateway, WebhookRejected
from bot.gateways.events import EventKind, GatewayEvent
from bot.gateways.registry import Gateways
from bot.notify import mark_delivered, pending
from bot.services import Listener
from bot.store.tables import GatewayObjectState
from bot.web import create_app
from bot.webhooks import process
from tests.conftest import say

pytestmark = pytest.mark.storage


class Signed(Gateway):
    """A gateway whose deliveries carry a shared token; enough to drive the pipeline."""

    name = "acme"

    async def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> list[GatewayEvent]:
        if headers.get("x-token") != "good":
            raise WebhookRejected(self.name, "bad signature")
        return [GatewayEvent.model_validate(e) for e in json.loads(body)]


def event(
    n: int, kind: EventKind, obj: str, *, at: int, status: str | None = None, **extra
) -> dict:  # type: ignore[no-untyped-def]
    return {
        "gateway": "acme", "id": f"evt_{n}", "kind": kind, "raw_type": kind.value, "object_id": obj,
        "created": datetime.fromtimestamp(1_790_000_000 + at, UTC).isoformat(), "status": status, **extra,
    }  # fmt: skip


@pytest.fixture
async def client(services):  # type: ignore[no-untyped-def]
    services.gateways = Gateways([*services.gateways, Signed()], timeout=2)
    app = create_app(services.settings, services)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bot") as http,
    ):
        yield http


async def post(client, events: list[dict], token: str = "good") -> httpx.Response:  # type: ignore[no-untyped-def]
    return await client.post(
        "/webhooks/acme", content=json.dumps(events), headers={"x-token": token}
    )


async def test_forged_delivery_gets_400_and_changes_nothing(client, services):
    external = event(
        1,
        EventKind.refund,
        "re_x",
        at=0,
        related_id="ch_x",
        amount={"minor": 500, "currency": "EUR"},
    )
    response = await post(client, [external], token="forged")
    assert response.status_code == 400
    assert await query(services.db, AuditFilter(actor="acme")) == []


async def test_unknown_gateway_is_404(client):
    response = await client.post("/webhooks/nope", content=b"{}")
    assert response.status_code == 404


async def test_external_refund_is_audited_once_however_often_delivered(client, services):
    external = event(
        1,
        EventKind.refund,
        "re_x",
        at=0,
        related_id="ch_x",
        amount={"minor": 500, "currency": "EUR"},
    )
    first = await post(client, [external])
    second = await post(client, [external])
    assert first.json()["outcomes"] == ["processed"] and second.json()["outcomes"] == ["duplicate"]
    entries = await query(services.db, AuditFilter(actor="gateway:acme"))
    assert len(entries) == 1
    assert (entries[0].outcome, entries[0].object_id, entries[0].amount) == (
        "external",
        "ch_x",
        500,
    )


async def test_refund_made_by_the_bot_is_not_audited_twice(client, services, agent):
    reply = await say(services, agent, "refund ch_jane_1 10 reason: goodwill")
    ours = event(
        2,
        EventKind.refund,
        "re_ours",
        at=0,
        related_id="ch_jane_1",
        idempotency_key=reply.approval.id,
    )
    await post(client, [ours])
    assert await query(services.db, AuditFilter(actor="gateway:acme")) == []


async def test_an_older_event_does_not_overwrite_newer_state(client, services):
    canceled = event(3, EventKind.subscription_canceled, "sub_1", at=200, status="canceled")
    stale = event(4, EventKind.subscription_updated, "sub_1", at=100, status="active")
    assert (await post(client, [canceled])).json()["outcomes"] == ["processed"]
    assert (await post(client, [stale])).json()["outcomes"] == ["outdated"]
    async with services.db.read() as s:
        state = (
            await s.scalars(
                select(GatewayObjectState).where(GatewayObjectState.object_id == "sub_1")
            )
        ).one()
    assert (state.status, state.event_id) == ("canceled", "evt_3")


async def test_disputes_and_failed_payments_queue_alert_cards(client, services, manager):
    services.settings.alerts_channel = "slack:C0ALERTS"
    dispute = event(5, EventKind.dispute_created, "dp_1", at=0, related_id="ch_jane_1", customer_id="cus_jane",
                    amount={"minor": 4900, "currency": "EUR"}, detail={"reason": "fraudulent"})  # fmt: skip
    failed = event(6, EventKind.payment_failed, "ch_f", at=0, customer_id="cus_john")
    await post(client, [dispute, failed, dispute])
    alerts = await pending(services.db)
    assert [kind for _, kind, _ in alerts] == ["dispute_created", "payment_failed"]
    card = alerts[0][2]
    assert card.title == "New dispute: acme dp_1" and card.tone == "danger"
    assert "€49.00" in card.model_dump_json() and "fraudulent" in card.model_dump_json()
    assert card.actions[0].command == "lookup cus_jane"
    shown = await say(services, manager, "alerts")
    assert [c.title for c in shown.cards] == ["Payment failed: acme ch_f", "New dispute: acme dp_1"]
    assert await mark_delivered(services.db, alerts[0][0]) is True
    assert await mark_delivered(services.db, alerts[0][0]) is False


async def test_listeners_hear_each_new_event_once_inside_and_after_its_transaction(
    client, services
):
    seen: list[str] = []

    class Recorder(Listener):
        async def record_event(self, services, session, event) -> None:  # type: ignore[no-untyped-def]
            seen.append(f"record {event.object_id}")

        async def after_event(self, services, event) -> None:  # type: ignore[no-untyped-def]
            seen.append(f"after {event.object_id}")

    services.listeners.append(Recorder())
    paid = event(7, EventKind.invoice_paid, "in_1", at=0, amount={"minor": 4900, "currency": "EUR"})
    await post(client, [paid])
    await post(client, [paid])
    assert seen == ["record in_1", "after in_1"]


async def test_the_same_event_processed_concurrently_counts_once(services):
    import asyncio

    one = GatewayEvent.model_validate(
        event(8, EventKind.capture, "ch_c", at=0, amount={"minor": 100, "currency": "EUR"})
    )
    outcomes = await asyncio.gather(*(process(services, one) for _ in range(5)))
    assert sorted(outcomes).count("processed") == 1
    assert len(await query(services.db, AuditFilter(actor="gateway:acme"))) == 1


async def test_two_events_for_one_new_object_at_once_are_both_processed(services):
    import asyncio

    a = GatewayEvent.model_validate(
        event(9, EventKind.subscription_updated, "sub_9", at=10, status="past_due")
    )
    b = GatewayEvent.model_validate(
        event(10, EventKind.subscription_canceled, "sub_9", at=20, status="canceled")
    )
    outcomes = await asyncio.gather(process(services, a), process(services, b))
    assert "duplicate" not in outcomes
    async with services.db.read() as s:
        state = (
            await s.scalars(
                select(GatewayObjectState).where(GatewayObjectState.object_id == "sub_9")
            )
        ).one()
    assert state.status == "canceled"
