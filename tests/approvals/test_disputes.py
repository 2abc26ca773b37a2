"""Disputes from the card: accept one or answer it with the evidence we hold, behind approval.

Against the ledger gateway (our SQL) and the demo dataset: `dp_jane_1` is 49.00 EUR on
`ch_jane_disputed`, waiting for an answer, its evidence due in 7 days.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from bot.actors import SYSTEM
from bot.chat.slack.render import card_blocks
from bot.disputes.reminders import remind
from bot.documents import on_demand
from bot.gateways.base import Capability, Gateway, Unsupported
from bot.gateways.recurly.gateway import RecurlyGateway
from bot.gateways.woocommerce.gateway import WooCommerceGateway
from bot.store.tables import LedgerDispute, LedgerOperation, Notification
from tests.conftest import say

pytestmark = pytest.mark.approvals

DISPUTE = "dp_jane_1"


async def dispute_row(services, dispute_id: str = DISPUTE) -> LedgerDispute:
    async with services.db.read() as s:
        row = await s.get(LedgerDispute, dispute_id)
        assert row is not None
        return row


async def operations(services, action: str) -> int:
    async with services.db.read() as s:
        return await s.scalar(
            select(func.count())
            .select_from(LedgerOperation)
            .where(LedgerOperation.action == action, LedgerOperation.target_id == DISPUTE)
        )


async def reminders(services) -> list[str]:
    async with services.db.read() as s:
        rows = await s.scalars(select(Notification).where(Notification.kind == "dispute_due"))
        return [row.card["title"] for row in rows]


async def test_card_shows_each_disputes_reason_amount_status_and_due_date(services, agent):
    reply = await say(services, agent, "lookup jane.doe@example.com")
    (card,) = reply.cards
    (section,) = [s for s in card.sections if (s.title or "").startswith("Disputes")]
    assert section.table.columns == [
        "Dispute",
        "Charge",
        "Amount",
        "Reason",
        "Status",
        "Evidence due",
    ]
    due = (await dispute_row(services)).evidence_due_by
    assert section.table.rows == [
        [DISPUTE, "ch_jane_disputed", "€49.00", "unrecognized", "needs_response", f"{due:%Y-%m-%d}"]
    ]
    commands = [b.command for b in card.actions]
    assert f"dispute ledger:{DISPUTE} evidence reason: " in commands
    assert f"dispute ledger:{DISPUTE} accept reason: " in commands


async def test_accepting_waits_for_a_manager_and_runs_once_when_approved_twice(
    services, agent, manager, other_manager
):
    reply = await say(services, agent, f"dispute {DISPUTE} accept reason: customer is right")
    assert reply.error is None, reply.error
    assert reply.approval.state == "pending"
    assert "Accept dispute dp_jane_1 of €49.00 (the customer keeps it)" in reply.cards[0].title
    assert (await dispute_row(services)).status == "needs_response"
    await asyncio.gather(
        say(services, manager, f"approve {reply.approval.id}"),
        say(services, other_manager, f"approve {reply.approval.id}"),
    )
    late = await say(services, manager, f"approve {reply.approval.id}")
    assert late.error.code == "already_decided"
    assert (await dispute_row(services)).status == "lost"
    assert await operations(services, "accept_dispute") == 1


async def test_evidence_card_lists_each_field_and_file_and_submits_them(services, agent, manager):
    receipt = await on_demand.receipt(services, "ch_jane_disputed", actor=SYSTEM)
    reply = await say(services, agent, f"dispute {DISPUTE} evidence reason: used Pro daily")
    assert reply.error is None, reply.error
    evidence, approval = reply.cards
    assert evidence.title == "Evidence for dispute dp_jane_1: 8 fields, 1 file"
    facts = {f.label: f.value for f in evidence.sections[0].facts}
    assert facts["Amount"] == "€49.00" and facts["Reason"] == "unrecognized"
    fields = dict(evidence.sections[1].table.rows)
    assert fields["Customer name"] == "Jane Doe"
    assert fields["Customer email"] == "jane.doe@example.com"
    assert fields["Billing address"] == "14 Merrion Square, D02 XY45 Dublin, IE"
    assert "Pro: €49.00 per month; active, renews " in fields["Subscription terms"]
    assert "Starter: €19.00 per month; canceled " in fields["Subscription terms"]
    assert "€19.00 refunded on payment ch_jane_2" in fields["Refund history"]
    assert fields["Agent's note"] == "used Pro daily"
    ((name, kind, size),) = evidence.sections[2].table.rows
    assert (name, kind) == (f"{receipt.number}.pdf", "receipt") and size.endswith(" bytes")
    assert approval.title.startswith("Evidence for dispute dp_jane_1 of €49.00 (8 fields, 1 file)")
    assert (await dispute_row(services)).evidence is None  # nothing sent before approval

    approved = await say(services, manager, f"approve {reply.approval.id}")
    assert approved.approval.state == "succeeded"
    row = await dispute_row(services)
    assert row.status == "under_review" and row.evidence_submitted_at is not None
    assert row.evidence["customer_email"] == "jane.doe@example.com"
    assert row.evidence["files"] == [{"kind": "receipt", "number": receipt.number}]


async def test_a_submitted_dispute_refuses_a_second_submission_with_a_clear_line(
    services, agent, manager
):
    reply = await say(services, agent, f"dispute {DISPUTE} evidence reason: used Pro daily")
    await say(services, manager, f"approve {reply.approval.id}")
    again = await say(services, agent, f"dispute {DISPUTE} evidence reason: one more try")
    assert again.error.code == "invalid_state"
    assert again.error.message == (
        "dispute dp_jane_1 is under review: it was answered or decided already, "
        "and nothing is sent twice"
    )
    assert again.approval is None
    assert await operations(services, "dispute_evidence") == 1


async def test_evidence_approved_after_the_dispute_was_accepted_goes_stale(
    services, agent, manager
):
    evidence = await say(services, agent, f"dispute {DISPUTE} evidence reason: used Pro daily")
    accept = await say(services, agent, f"dispute {DISPUTE} accept reason: customer is right")
    await say(services, manager, f"approve {accept.approval.id}")
    late = await say(services, manager, f"approve {evidence.approval.id}")
    assert late.approval.state == "stale"
    row = await dispute_row(services)
    assert (row.status, row.evidence) == ("lost", None)


async def test_the_gateway_itself_never_answers_an_answered_dispute(services):
    ledger = services.gateways.get("ledger")
    await ledger.accept_dispute(DISPUTE, idempotency_key="apr_first")
    assert (await ledger.accept_dispute(DISPUTE, idempotency_key="apr_first")).status == "lost"
    with pytest.raises(Exception, match="dispute dp_jane_1 is lost: it was answered"):
        await ledger.accept_dispute(DISPUTE, idempotency_key="apr_second")
    assert await operations(services, "accept_dispute") == 1


async def test_bad_input_changes_nothing(services, agent, customer):
    wrong_step = await say(services, agent, f"dispute {DISPUTE} refund reason: customer is right")
    assert wrong_step.error is not None and "evidence" in wrong_step.error.message
    missing = await say(services, agent, "dispute dp_nope accept reason: customer is right")
    assert missing.error.code == "not_found"
    assert missing.error.message == "no dispute dp_nope in any gateway"
    forbidden = await say(services, customer, f"dispute {DISPUTE} accept reason: please")
    assert forbidden.error is not None and forbidden.approval is None
    assert (await dispute_row(services)).status == "needs_response"


async def test_evidence_text_with_script_and_mrkdwn_is_harmless_on_the_card(services, agent):
    reason = "<script>alert(1)</script> <!channel> *urgent* <https://evil.example|bank>"
    reply = await say(services, agent, f"dispute {DISPUTE} evidence reason: {reason}")
    assert reply.error is None, reply.error
    fields = dict(reply.cards[0].sections[1].table.rows)
    assert fields["Agent's note"] == reason  # kept as typed: each door escapes it
    blocks = json.dumps(card_blocks(reply.cards[0]))
    assert "<script>" not in blocks and "<!channel>" not in blocks and "<https://" not in blocks
    assert "&lt;script&gt;" in blocks


async def test_reminder_posted_once_at_three_days_and_not_again(services):
    now = datetime.now(UTC)
    assert await remind(services, now) == 0  # due in 7 days: not yet
    async with services.db.write() as s:
        await s.execute(
            update(LedgerDispute)
            .where(LedgerDispute.id == DISPUTE)
            .values(evidence_due_by=now + timedelta(days=2, hours=20))
        )
    assert await remind(services, now) == 1
    assert await remind(services, now) == 0
    assert await remind(services, now + timedelta(hours=5)) == 0
    assert await reminders(services) == ["Dispute evidence due within 3 days: ledger dp_jane_1"]


async def test_an_answered_dispute_gets_no_reminder(services, agent, manager):
    reply = await say(services, agent, f"dispute {DISPUTE} accept reason: customer is right")
    await say(services, manager, f"approve {reply.approval.id}")
    async with services.db.write() as s:
        await s.execute(
            update(LedgerDispute).where(LedgerDispute.id == DISPUTE)
            .values(evidence_due_by=datetime.now(UTC) + timedelta(days=1))
        )  # fmt: skip
    assert await remind(services) == 0


@pytest.mark.parametrize("gateway_class", [RecurlyGateway, WooCommerceGateway])
def test_gateways_without_a_dispute_api_say_why(gateway_class: type[Gateway]) -> None:
    gateway = gateway_class.__new__(gateway_class)
    for capability in (Capability.accept_dispute, Capability.dispute_evidence):
        with pytest.raises(Unsupported) as raised:
            gateway.require(capability)
        assert "no dispute API" in str(raised.value)
