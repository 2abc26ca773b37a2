"""A person asking twice for the same money to move is asked first, on every door.

The same action on the same object, with the same amount and parameters, by the
same person within `duplicate_request_seconds` answers "this looks like a
duplicate of apr_…; refund again?" and records nothing; only `again <id>` (the
answer's button) makes the second request, through the same policy.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from bot.actors import Role
from bot.approvals.workflow import now
from bot.audit.log import AuditFilter, query
from bot.store.tables import ApprovalRow, LedgerRefund
from tests.conftest import person, say

pytestmark = pytest.mark.approvals

CHARGE = "ch_jane_1"


async def refunded(services, charge: str = CHARGE) -> int:
    async with services.db.read() as s:
        total = await s.scalar(
            select(func.coalesce(func.sum(LedgerRefund.amount), 0)).where(
                LedgerRefund.charge_id == charge
            )
        )
    return int(total or 0)


async def requests(services) -> int:
    async with services.db.read() as s:
        return int(await s.scalar(select(func.count()).select_from(ApprovalRow)) or 0)


async def test_a_second_identical_refund_asks_and_only_again_makes_it(services, agent):
    first = await say(services, agent, f"refund {CHARGE} 10 reason: goodwill late parcel")
    assert first.approval.state == "succeeded"
    earlier = first.approval.id

    twice = await say(services, agent, f"refund {CHARGE} 10 reason: goodwill late parcel")
    assert twice.error.code == "duplicate_request"
    assert f"this looks like a duplicate of {earlier}" in twice.error.message
    assert "Refund again?" in twice.error.message
    assert twice.approval is None
    assert [b.command for b in twice.cards[0].actions] == [f"again {earlier}"]
    assert await refunded(services) == 1000 and await requests(services) == 1

    # The reason differing changes nothing: it is the same money moving again.
    reworded = await say(services, agent, f"refund {CHARGE} 10.00 EUR reason: goodwill again?")
    assert reworded.error.code == "duplicate_request"

    confirmed = await say(services, agent, f"again {earlier}")
    assert confirmed.approval.state == "succeeded", confirmed.error
    assert confirmed.approval.id != earlier
    assert await refunded(services) == 2000 and await requests(services) == 2
    requested = await query(services.db, AuditFilter(approval_id=confirmed.approval.id))
    assert any(f"asked again after {earlier}" in str(e.detail) for e in requested)


async def test_a_pending_request_asked_for_again_is_a_duplicate_too(services, agent):
    pending = await say(services, agent, f"refund {CHARGE} 80 reason: duplicate charged twice")
    assert pending.approval.state == "pending"
    again = await say(services, agent, f"refund {CHARGE} 80 reason: duplicate charged twice")
    assert again.error.code == "duplicate_request" and pending.approval.id in again.error.message
    assert await requests(services) == 1


async def test_a_different_amount_or_another_person_is_not_asked(services, agent, other_agent):
    assert (await say(services, agent, f"refund {CHARGE} 10 reason: goodwill a")).error is None
    other_amount = await say(services, agent, f"refund {CHARGE} 11 reason: goodwill b")
    assert other_amount.approval.state == "succeeded", other_amount.error
    colleague = await say(services, other_agent, f"refund {CHARGE} 10 reason: goodwill c")
    assert colleague.approval.state == "succeeded", colleague.error
    assert await refunded(services) == 3100


async def test_the_same_person_under_another_spelling_is_asked(services, agent):
    await say(services, agent, f"refund {CHARGE} 10 reason: goodwill a")
    shouting = person("ALEX", Role.agent)  # test:ALEX is test:alex, normalised
    twice = await say(services, shouting, f"refund {CHARGE} 10 reason: goodwill a")
    assert twice.error.code == "duplicate_request"
    assert await refunded(services) == 1000


async def test_identical_requests_at_the_same_moment_make_one(services, agent):
    line = f"refund {CHARGE} 10 reason: goodwill late parcel"
    replies = await asyncio.gather(*(say(services, agent, line) for _ in range(4)))
    assert sorted(r.error.code if r.error else "made" for r in replies) == [
        "duplicate_request", "duplicate_request", "duplicate_request", "made",
    ]  # fmt: skip
    assert await refunded(services) == 1000 and await requests(services) == 1


async def test_outside_the_window_or_after_a_failure_it_is_not_asked(services, agent, manager):
    first = await say(services, agent, f"refund {CHARGE} 10 reason: goodwill a")
    window = timedelta(seconds=services.settings.duplicate_request_seconds)
    async with services.db.write() as s:
        await s.execute(
            update(ApprovalRow)
            .where(ApprovalRow.id == first.approval.id)
            .values(created_at=now() - window - timedelta(seconds=1))
        )
    later = await say(services, agent, f"refund {CHARGE} 10 reason: goodwill a")
    assert later.approval.state == "succeeded", later.error

    pending = await say(services, agent, f"refund {CHARGE} 60 reason: duplicate b")
    denied = await say(services, manager, f"deny {pending.approval.id} reason: not yet")
    assert denied.error is None
    asked_again = await say(services, agent, f"refund {CHARGE} 60 reason: duplicate b")
    assert asked_again.approval.state == "pending", asked_again.error


async def test_cancel_now_and_at_period_end_are_different_requests(services, agent):
    reason = "reason: requested_by_customer moving"
    first = await say(services, agent, f"cancel sub_jane_pro {reason}")
    assert first.approval.state == "pending"
    assert (await say(services, agent, f"cancel sub_jane_pro {reason}")).error.code == (
        "duplicate_request"
    )
    now_instead = await say(services, agent, f"cancel sub_jane_pro now {reason}")
    assert now_instead.approval.state == "pending", now_instead.error


async def test_only_the_requester_can_ask_again(services, agent, other_agent):
    first = await say(services, agent, f"refund {CHARGE} 10 reason: goodwill a")
    theirs = await say(services, other_agent, f"again {first.approval.id}")
    assert theirs.error.code == "forbidden" and await refunded(services) == 1000


async def test_no_window_never_asks(services, agent):
    services.settings.duplicate_request_seconds = 0
    for _ in range(2):
        reply = await say(services, agent, f"refund {CHARGE} 10 reason: goodwill a")
        assert reply.approval.state == "succeeded", reply.error
