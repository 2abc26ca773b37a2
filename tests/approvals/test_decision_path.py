"""The deciding approval claims the request in its own transaction, and what follows a
decision reuses what it has: the audit chain head read once, Redis connections reused."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot import jobs
from bot.approvals.executor import recover, run_claimed
from bot.approvals.requests import decide
from bot.approvals.workflow import State, get, vote
from bot.audit.log import verify
from bot.store.tables import AuditEntry, LedgerRefund
from tests.conftest import say

pytestmark = pytest.mark.approvals

CHARGE = "ch_jane_1"  # 120.00 EUR, nothing refunded (demo dataset)


async def pending_refund(services, agent, amount: str = "80") -> str:  # type: ignore[no-untyped-def]
    reply = await say(services, agent, f"refund {CHARGE} {amount} reason: duplicate charged twice")
    assert reply.approval.state == "pending", reply
    return reply.approval.id


async def small_refunds(services, agent, count: int) -> list[str]:  # type: ignore[no-untyped-def]
    """`count` pending refunds of 10.00, 11.00, ... EUR: each needs a manager, none a duplicate."""
    services.policy.refund.limits = {}  # nobody refunds alone
    return [await pending_refund(services, agent, str(10 + i)) for i in range(count)]


async def refunds(services) -> list[int]:  # type: ignore[no-untyped-def]
    async with services.db.read() as s:
        return list(
            await s.scalars(select(LedgerRefund.amount).where(LedgerRefund.charge_id == CHARGE))
        )


async def trail(services, approval_id: str) -> list[str]:  # type: ignore[no-untyped-def]
    async with services.db.read() as s:
        return list(
            await s.scalars(
                select(AuditEntry.outcome)
                .where(AuditEntry.approval_id == approval_id)
                .order_by(AuditEntry.seq)
            )
        )


async def test_the_deciding_approval_is_claimed_for_execution_when_its_vote_commits(
    services, agent, manager
):
    approval = await pending_refund(services, agent)

    # The vote returns with the request already claimed: nobody else can start it.
    claimed = await vote(services, manager, approval, approve=True, reason=None, start=True)

    assert claimed.state == State.executing and claimed.attempts == 1
    stored = await get(services, approval)
    assert (stored.state, stored.attempts, stored.updated_at) == (
        State.executing,
        1,
        claimed.updated_at,
    )
    assert [v.key for v in stored.votes] == [v.key for v in claimed.votes] == [manager.key]
    assert await trail(services, approval) == ["requested", "approved", "executing"]
    assert await refunds(services) == []
    assert (await verify(services.db)).ok

    done = await run_claimed(services, claimed, manager)

    assert done.state == State.succeeded and done.result_id
    assert await refunds(services) == [8000]
    assert await trail(services, approval) == ["requested", "approved", "executing", "succeeded"]
    assert (await verify(services.db)).ok


async def test_a_vote_that_does_not_decide_claims_nothing(services, agent, manager):
    services.policy.refund.approvals = 2
    approval = await pending_refund(services, agent)

    first = await vote(services, manager, approval, approve=True, reason=None, start=True)

    assert first.state == State.pending and first.attempts == 0
    assert (await get(services, approval)).state == State.pending
    assert await trail(services, approval) == ["requested", "approval 1 of 2"]


async def test_a_crash_after_the_deciding_vote_claimed_it_is_recovered_with_one_refund(
    services, agent, manager
):
    approval = await pending_refund(services, agent)
    # The deciding vote commits its claim; the process dies before the gateway is called.
    await vote(services, manager, approval, approve=True, reason=None, start=True)

    # Too fresh: the voter may still be running it.
    assert await recover(services, older_than=timedelta(hours=1)) == []
    recovered = await recover(services, older_than=timedelta(0))

    assert [v.state for v in recovered] == [State.succeeded]
    assert await refunds(services) == [8000]
    assert await trail(services, approval) == [
        "requested", "approved", "executing", "recovering", "succeeded",
    ]  # fmt: skip
    assert await recover(services, older_than=timedelta(0)) == []
    assert (await verify(services.db)).ok


async def test_refunds_decided_in_a_row_reuse_the_redis_connections_for_their_credit_notes(
    services, agent, manager
):
    """Each refund's credit note is a job enqueued after it commits: on the services' own
    connections, not a pool opened (and closed) per job."""
    approvals = await small_refunds(services, agent, 6)
    await decide(services, manager, approvals[0], approve=True)  # connections opened here
    before = await services.redis.info("stats")

    decided = [await decide(services, manager, a, approve=True) for a in approvals[1:]]

    after = await services.redis.info("stats")
    assert [d.state for d in decided] == [State.succeeded] * 5
    queued = await services.redis.zrange(jobs.queue_name(services.settings), 0, -1)
    for view in decided:
        assert f"{services.settings.redis_prefix}document:credit_note:ledger:{view.result_id}" in (
            queued
        )
    if not os.environ.get("REDIS_URL"):  # a shared server counts other clients' connections too
        received = after["total_connections_received"] - before["total_connections_received"]
        assert received == 0


async def test_the_audit_chain_stays_linear_over_decisions_in_a_row(services, agent, manager):
    approvals = await small_refunds(services, agent, 4)
    for approval in approvals:
        await decide(services, manager, approval, approve=True)

    async with services.db.read() as s:
        seqs = list(await s.scalars(select(AuditEntry.seq).order_by(AuditEntry.seq)))
        count = await s.scalar(select(func.count()).select_from(AuditEntry))
    assert seqs == list(range(1, count + 1))
    check = await verify(services.db)
    assert check.ok and check.entries == count
    for approval in approvals:
        assert await trail(services, approval) == [
            "requested", "approved", "executing", "succeeded",
        ]  # fmt: skip
