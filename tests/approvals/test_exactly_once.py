"""A money-moving action runs at most once, however it is clicked, raced or retried."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from bot.actors import Role
from bot.approvals.executor import recover
from bot.approvals.workflow import State, get
from bot.errors import UserError
from bot.gateways.ledger.gateway import LedgerGateway
from bot.money import Money
from bot.store.tables import ApprovalRow, AuditEntry, LedgerRefund
from tests.conftest import REPO, person, say

pytestmark = pytest.mark.approvals

CHARGE = "ch_jane_1"


async def refund_rows(services) -> int:
    async with services.db.read() as s:
        return await s.scalar(
            select(func.count()).select_from(LedgerRefund).where(LedgerRefund.charge_id == CHARGE)
        )


async def pending_refund(services, agent) -> str:
    reply = await say(services, agent, f"refund {CHARGE} 80 reason: duplicate charged twice")
    assert reply.approval.state == "pending"
    return reply.approval.id


async def test_double_click_executes_once(services, agent, manager):
    approval = await pending_refund(services, agent)
    first = await say(services, manager, f"approve {approval}")
    second = await say(services, manager, f"approve {approval}")
    assert first.approval.state == "succeeded"
    assert second.error.code == "already_decided"
    assert await refund_rows(services) == 1


async def test_concurrent_approvals_by_many_managers_execute_once(services, agent):
    from bot.approvals.requests import decide

    approval = await pending_refund(services, agent)
    managers = [person(f"m{i}", Role.manager) for i in range(20)]
    results = await asyncio.gather(
        *(decide(services, m, approval, approve=True) for m in managers for _ in range(3)),
        return_exceptions=True,
    )
    winners = [
        r for r in results if not isinstance(r, BaseException) and r.state == State.succeeded
    ]
    losers = [r for r in results if isinstance(r, UserError)]
    assert len(winners) == 1
    assert len(winners) + len(losers) == len(results), [
        r for r in results if r not in winners and r not in losers
    ]
    assert await refund_rows(services) == 1
    async with services.db.read() as s:
        executions = await s.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.approval_id == approval, AuditEntry.outcome == "succeeded")
        )
    assert executions == 1


async def test_two_processes_racing_on_one_approval_execute_once(services, agent, settings):
    approval = await pending_refund(services, agent)
    env = {
        **os.environ,
        "DATABASE_URL": services.settings.sql_url,
        "REDIS_URL": settings.redis_url,
        "CHARGEDESK_REDIS_PREFIX": settings.redis_prefix,
        "CHARGEDESK_DATA_DIR": str(settings.data_dir),
        "PYTHONPATH": str(REPO),
    }
    # Each process waits for a go file so that both approve at the same moment.
    go = settings.data_dir / "go"
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.fakes.approve_process", approval, name, str(go),
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        for name in ("maria", "mark")
    ]  # fmt: skip
    await asyncio.sleep(1.5)
    go.touch()
    outputs = [await asyncio.wait_for(p.communicate(), 60) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    results = [json.loads(out.decode().strip().splitlines()[-1]) for out, _ in outputs]
    assert sorted(r["state"] for r in results).count("succeeded") == 1, results
    assert await refund_rows(services) == 1
    assert (await get(services, approval)).state == State.succeeded


async def test_crash_after_executing_is_recovered_without_a_second_refund(services, agent, manager):
    """The gateway refunded but the process died before recording it: recovery finds the refund."""
    approval = await pending_refund(services, agent)
    ledger: LedgerGateway = services.gateways.get("ledger")  # type: ignore[assignment]
    async with services.db.write() as s:
        await s.execute(
            update(ApprovalRow)
            .where(ApprovalRow.id == approval)
            .values(state="executing", attempts=1)
        )
    # What the dead process had already done at the gateway, with the approval ID as its key:
    await ledger.refund(
        CHARGE, Money(minor=8000, currency="EUR"), reason="duplicate", idempotency_key=approval
    )
    recovered = await recover(services, older_than=timedelta(0))
    assert [v.state for v in recovered] == [State.succeeded]
    assert await refund_rows(services) == 1
    again = await recover(services, older_than=timedelta(0))
    assert again == []


async def test_crash_before_the_gateway_call_is_recovered_with_one_refund(services, agent):
    approval = await pending_refund(services, agent)
    async with services.db.write() as s:
        await s.execute(
            update(ApprovalRow)
            .where(ApprovalRow.id == approval)
            .values(state="executing", attempts=1)
        )
    assert (
        await recover(services, older_than=timedelta(hours=1)) == []
    )  # too fresh: maybe still running
    recovered = await recover(services, older_than=timedelta(0))
    assert [v.state for v in recovered] == [State.succeeded]
    assert await refund_rows(services) == 1


async def test_same_idempotency_key_twice_gives_one_refund(services):
    ledger = services.gateways.get("ledger")
    amount = Money(minor=1500, currency="EUR")
    first = await ledger.refund(CHARGE, amount, reason="r", idempotency_key="key-1")
    second = await ledger.refund(CHARGE, amount, reason="r", idempotency_key="key-1")
    assert first.id == second.id
    assert await refund_rows(services) == 1


async def test_unknown_outcome_stays_executing_and_recovery_finishes_it_once(
    services, agent, manager
):
    """The business endpoint fails mid-request: never marked failed, retried with the same key."""
    from tests.fakes.forward_server import forwarding_ledger

    async with forwarding_ledger(services) as endpoint:
        approval = await pending_refund(services, agent)
        endpoint.status_code, endpoint.answer = 503, {"status": "failed"}
        reply = await say(services, manager, f"approve {approval}")
        assert reply.approval.state == "executing"
        assert "retried with the same key" in reply.cards[0].title
        assert await refund_rows(services) == 0
        endpoint.status_code, endpoint.answer = 200, {"status": "succeeded"}
        recovered = await recover(services, older_than=timedelta(0))
    assert [v.state for v in recovered] == [State.succeeded]
    assert await refund_rows(services) == 1
    assert {p["idempotency_key"] for p in endpoint.received} == {approval}
