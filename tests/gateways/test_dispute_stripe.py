"""Stripe disputes through the bot: evidence (with our receipt as an uploaded file) and
accepting, each behind approval and sent once, against the Stripe emulator and the real SDK."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from bot.actors import SYSTEM
from bot.disputes.evidence import Evidence, EvidenceFile
from bot.disputes.reminders import remind
from bot.documents import on_demand
from bot.gateways.base import ErrorCode, GatewayError
from bot.gateways.registry import Gateways
from bot.notify import pending
from bot.store.tables import Notification
from bot.webhooks import receive
from chargedesk_emulators.stripe import sign
from tests.conftest import say
from tests.fakes.stripe_env import WEBHOOK_SECRET, FakeStripe, stripe_fake

pytestmark = [
    pytest.mark.approvals,
    pytest.mark.filterwarnings("ignore:Use 'content=:DeprecationWarning"),
]


@pytest.fixture
async def stripe(services) -> AsyncIterator[tuple[FakeStripe, str]]:  # type: ignore[no-untyped-def]
    async with stripe_fake(max_retries=0) as fake:
        services.gateways = Gateways([*services.gateways, fake.gateway], timeout=10)
        dispute = fake.emulator.add_dispute(fake.env.charge_id, reason="product_not_received")
        yield fake, dispute["id"]


def posts(fake: FakeStripe, path: str) -> int:
    return sum(1 for r in fake.emulator.requests if r.method == "POST" and r.path == path)


async def test_evidence_is_submitted_with_our_receipt_as_a_file(services, stripe, agent, manager):
    fake, dispute_id = stripe
    receipt = await on_demand.receipt(services, f"stripe:{fake.env.charge_id}", actor=SYSTEM)
    reply = await say(
        services, agent, f"dispute stripe:{dispute_id} evidence reason: order 1001 was delivered"
    )
    assert reply.error is None, reply.error
    evidence = reply.cards[0]
    facts = {f.label: f.value for f in evidence.sections[0].facts}
    assert (facts["Amount"], facts["Reason"], facts["Status"]) == (
        "€100.00",
        "product_not_received",
        "needs_response",
    )
    assert facts["Evidence due"] != "—"
    assert evidence.sections[2].table.rows[0][:2] == [f"{receipt.number}.pdf", "receipt"]
    assert posts(fake, "/v1/files") == 0  # nothing leaves before approval

    done = await say(services, manager, f"approve {reply.approval.id}")
    assert done.approval.state == "succeeded", done.error
    sent = fake.emulator._objects[dispute_id]
    assert sent["status"] == "under_review"
    assert sent["evidence_details"]["submission_count"] == 1
    assert sent["evidence"]["customer_email_address"] == "contract.customer@example.com"
    assert sent["evidence"]["customer_name"] == "Contract Customer"
    assert sent["evidence"]["product_description"] == "Order 1001"
    assert "order 1001 was delivered" in sent["evidence"]["uncategorized_text"]
    file_id = sent["evidence"]["receipt"]
    assert fake.emulator.file_contents[file_id] == receipt.pdf
    assert fake.emulator._objects[file_id]["purpose"] == "dispute_evidence"
    assert posts(fake, f"/v1/disputes/{dispute_id}") == 1

    again = await say(services, agent, f"dispute stripe:{dispute_id} evidence reason: more")
    assert again.error.code == "invalid_state"
    assert "is under review: it was answered or decided already" in again.error.message


async def test_accepting_closes_the_dispute_once_when_approved_twice(
    services, stripe, agent, manager, other_manager
):
    fake, dispute_id = stripe
    reply = await say(services, agent, f"dispute {dispute_id} accept reason: customer is right")
    assert reply.approval.state == "pending", reply.error
    await asyncio.gather(
        say(services, manager, f"approve {reply.approval.id}"),
        say(services, other_manager, f"approve {reply.approval.id}"),
    )
    assert fake.emulator._objects[dispute_id]["status"] == "lost"
    assert posts(fake, f"/v1/disputes/{dispute_id}/close") == 1


def _evidence(dispute_id: str) -> Evidence:
    return Evidence(
        dispute_id=dispute_id,
        customer_email="contract.customer@example.com",
        note="delivered",
        files=(EvidenceFile.of("receipt", "R-2026-000001", b"%PDF-1.7 receipt"),),
    )


async def test_a_retry_with_the_same_key_sends_nothing_twice(stripe):
    fake, dispute_id = stripe
    first = await fake.gateway.submit_dispute_evidence(
        dispute_id, _evidence(dispute_id), idempotency_key="apr_1"
    )
    retry = await fake.gateway.submit_dispute_evidence(
        dispute_id, _evidence(dispute_id), idempotency_key="apr_1"
    )
    assert first.status == retry.status == "under_review"
    assert posts(fake, f"/v1/disputes/{dispute_id}") == 1
    assert posts(fake, "/v1/files") == 1
    with pytest.raises(GatewayError) as refused:
        await fake.gateway.submit_dispute_evidence(
            dispute_id, _evidence(dispute_id), idempotency_key="apr_2"
        )
    assert refused.value.code == ErrorCode.invalid_state
    assert posts(fake, f"/v1/disputes/{dispute_id}") == 1


async def test_stripe_refuses_evidence_naming_a_file_it_never_received(stripe):
    fake, dispute_id = stripe
    with pytest.raises(GatewayError) as refused:
        await fake.gateway._api.get(
            lambda: fake.gateway._api.v1.disputes.update_async(
                dispute_id, {"evidence": {"receipt": "file_nope"}, "submit": True}
            ),
            "evidence",
        )
    assert "No such file" in str(refused.value.raw_message)
    assert fake.emulator._objects[dispute_id]["status"] == "needs_response"


async def test_open_stripe_disputes_get_a_reminder_once(services, stripe):
    _, dispute_id = stripe
    services.settings.dispute_reminder_days = [7, 3]
    assert await remind(services) == 2  # ours at the emulator and the ledger's, each due in 7 days
    assert await remind(services) == 0
    async with services.db.read() as s:
        titles = set(await s.scalars(
            select(Notification.card["title"].as_string()).where(Notification.kind == "dispute_due")
        ))  # fmt: skip
    assert f"Dispute evidence due within 7 days: stripe {dispute_id}" in titles


async def test_the_new_dispute_alert_shows_its_status_and_due_date_with_answers(services, stripe):
    fake, dispute_id = stripe
    (created,) = [e for e in fake.emulator.events if e["type"] == "charge.dispute.created"]
    body = json.dumps(created).encode()
    signature = sign(body, WEBHOOK_SECRET, int(time.time()))
    assert await receive(services, "stripe", body, {"Stripe-Signature": signature}) == ["processed"]
    ((_, kind, card),) = await pending(services.db)
    facts = {f.label: f.value for f in card.sections[0].facts}
    assert kind == "dispute_created"
    assert (facts["Status"], facts["Reason"]) == ("needs_response", "product_not_received")
    assert facts["Evidence due by"].endswith(" UTC")
    assert [b.command for b in card.actions[1:]] == [
        f"dispute stripe:{dispute_id} evidence reason: ",
        f"dispute stripe:{dispute_id} accept reason: ",
    ]
