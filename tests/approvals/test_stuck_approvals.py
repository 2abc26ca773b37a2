"""No approved request is left stuck: a busy charge, a crash between the vote and the run,
or a refund landing first each end in one execution, or an explicit outcome with the
auto-approve budget given back."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot import jobs
from bot.approvals.executor import execute, recover
from bot.approvals.requests import decide
from bot.approvals.workflow import ActionRequest, State, create, get, vote
from bot.money import Money
from bot.services import Services
from bot.store.tables import AuditEntry, LedgerRefund
from tests.conftest import REPO, say
from tests.fakes.forward_server import forwarding_ledger

pytestmark = pytest.mark.approvals

CHARGE = "ch_jane_1"  # 120.00 EUR, nothing refunded (demo dataset)
NOW = timedelta(0)


def impatient(services: Services) -> Services:
    """The same stores, waiting only briefly for a busy charge's lock."""
    return replace(
        services, settings=services.settings.model_copy(update={"approvals_lock_seconds": 0.3})
    )


async def hold_charge(services: Services):  # type: ignore[no-untyped-def]
    """Another action running on the charge: it holds the charge's lock, as an execution does."""
    lock = services.redis.lock(services.key("lock", "ledger", CHARGE), timeout=60)
    assert await lock.acquire(blocking=False)
    return lock


async def refunded(services: Services) -> int:
    async with services.db.read() as s:
        return await s.scalar(
            select(func.coalesce(func.sum(LedgerRefund.amount), 0)).where(
                LedgerRefund.charge_id == CHARGE
            )
        )


async def outcomes(services: Services, approval_id: str, outcome: str) -> int:
    async with services.db.read() as s:
        return await s.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.approval_id == approval_id, AuditEntry.outcome == outcome)
        )


async def pending(services: Services, agent, amount: str) -> str:  # type: ignore[no-untyped-def]
    reply = await say(services, agent, f"refund {CHARGE} {amount} reason: duplicate charged twice")
    assert reply.approval.state == "pending", reply
    return reply.approval.id


async def test_an_approval_on_a_busy_charge_runs_once_the_other_action_finishes(
    services, agent, manager, other_manager
):
    services = impatient(services)
    approval = await pending(services, agent, "80")
    lock = await hold_charge(services)

    reply = await say(services, manager, f"approve {approval}")

    assert reply.error is None
    assert reply.approval.state == "approved"
    title = reply.cards[0].title
    assert "it will run as soon as that finishes (recovery retries it)" in title, title
    again = await say(services, other_manager, f"approve {approval}")
    assert again.error.code == "already_decided"
    # Still busy: recovery leaves it approved, and it says so again.
    assert [v.state for v in await recover(services, older_than=NOW)] == [State.approved]
    assert await refunded(services) == 0

    await lock.release()
    assert [v.state for v in await recover(services, older_than=NOW)] == [State.succeeded]
    assert await recover(services, older_than=NOW) == []
    assert await refunded(services) == 8000
    assert await outcomes(services, approval, "succeeded") == 1


async def test_an_automatic_refund_on_a_busy_charge_runs_later_on_the_same_budget(services, agent):
    services = impatient(services)
    lock = await hold_charge(services)

    reply = await say(services, agent, f"refund {CHARGE} 20 reason: goodwill late parcel")

    assert reply.error is None
    assert reply.approval.state == "approved"
    assert "recovery retries it" in reply.cards[0].title
    assert await services.budgets.spent(agent.key, "EUR") == 2000
    await lock.release()
    assert [v.state for v in await recover(services, older_than=NOW)] == [State.succeeded]
    assert await refunded(services) == 2000
    assert await services.budgets.spent(agent.key, "EUR") == 2000  # spent once, not returned


async def test_an_automatic_refund_that_cannot_start_before_it_expires_never_runs(services, agent):
    services = impatient(services)
    services.policy.refund.expires = timedelta(seconds=1)
    lock = await hold_charge(services)
    reply = await say(services, agent, f"refund {CHARGE} 20 reason: goodwill late parcel")
    assert reply.approval.state == "approved"
    await asyncio.sleep(1.1)  # the other action outlasts the request's expiry
    await lock.release()

    assert [v.state for v in await recover(services, older_than=NOW)] == [State.expired]
    assert await recover(services, older_than=NOW) == []
    assert await refunded(services) == 0
    assert await services.budgets.spent(agent.key, "EUR") == 0


async def test_a_crash_between_the_vote_and_the_run_is_finished_by_recovery_exactly_once(
    services, agent, manager
):
    approval = await pending(services, agent, "80")
    # The deciding vote commits; the process dies before `execute` is reached.
    assert (await vote(services, manager, approval, approve=True, reason=None)).state == "approved"

    # Two sweepers (two processes, say) find it at once.
    first, second = await asyncio.gather(
        recover(services, older_than=NOW), recover(services, older_than=NOW)
    )

    assert sorted(v.state for v in first + second) == [State.succeeded]
    assert (await get(services, approval)).state == State.succeeded
    assert await refunded(services) == 8000
    assert await outcomes(services, approval, "executing") == 1
    assert await outcomes(services, approval, "succeeded") == 1
    assert await recover(services, older_than=NOW) == []
    # The approving process, back from a pause, finds it done.
    assert (await execute(services, approval, manager)).state == State.succeeded
    assert await refunded(services) == 8000


async def test_a_process_killed_after_the_vote_leaves_work_the_worker_finishes_once(
    services, agent, settings
):
    approval = await pending(services, agent, "80")
    env = {
        **os.environ,
        "DATABASE_URL": services.settings.sql_url,
        "REDIS_URL": settings.redis_url,
        "CHARGEDESK_REDIS_PREFIX": settings.redis_prefix,
        "CHARGEDESK_DATA_DIR": str(settings.data_dir),
        "PYTHONPATH": str(REPO),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.fakes.vote_then_die", approval, "maria",
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == -signal.SIGKILL, err.decode()
    assert out.decode().split() == ["approved"]
    assert (await get(services, approval)).state == State.approved

    # The job worker's periodic sweep (here one burst run: it sweeps at start) finishes it.
    swept = replace(
        services, settings=services.settings.model_copy(update={"recover_after_seconds": 0.1})
    )
    await asyncio.sleep(0.2)
    await jobs.run_worker(swept, burst=True, poll_delay=0.05)
    await jobs.run_worker(swept, burst=True, poll_delay=0.05)

    assert (await get(services, approval)).state == State.succeeded
    assert await refunded(services) == 8000
    assert await outcomes(services, approval, "succeeded") == 1


async def test_an_automatic_refund_that_recovery_finds_stale_gives_the_budget_back(services, agent):
    services = impatient(services)
    lock = await hold_charge(services)
    reply = await say(services, agent, f"refund {CHARGE} 40 reason: goodwill late parcel")
    assert reply.approval.state == "approved"
    assert await services.budgets.spent(agent.key, "EUR") == 4000
    # What the other action did while it held the charge: 100.00 of the 120.00 refunded.
    ledger = services.gateways.get("ledger")
    await ledger.refund(CHARGE, Money(minor=10000, currency="EUR"), reason="r", idempotency_key="x")
    await lock.release()

    assert [v.state for v in await recover(services, older_than=NOW)] == [State.stale]
    assert await services.budgets.spent(agent.key, "EUR") == 0
    assert await recover(services, older_than=NOW) == []
    assert await services.budgets.spent(agent.key, "EUR") == 0  # given back once
    assert await refunded(services) == 10000


async def test_an_automatic_refund_that_recovery_fails_after_a_crash_gives_the_budget_back(
    services, agent, policy
):
    async with forwarding_ledger(services) as endpoint:
        # What `submit` leaves when the process dies right after recording an automatic
        # refund: the budget spent, the request approved, nothing run.
        amount = Money(minor=3000, currency="EUR")
        budget = Money(minor=20000, currency="EUR")
        day = services.budgets.today()
        assert await services.budgets.spend(agent.key, amount, budget, day=day)
        request = ActionRequest(
            action="refund", gateway="ledger", target_id=CHARGE, customer_id="ledger:cus_jane",
            amount=amount, refundable=Money(minor=12000, currency="EUR"),
            reason_code="goodwill", reason="goodwill late parcel",
        )  # fmt: skip
        view = await create(services, agent, request, auto=True, why="within", budget_day=day)
        assert view.state == State.approved
        endpoint.answer = {"status": "failed", "code": "closed", "message": "account closed"}

        [failed] = await recover(services, older_than=NOW)

    assert failed.state == State.failed
    assert await services.budgets.spent(agent.key, "EUR") == 0
    assert await recover(services, older_than=NOW) == []
    assert await services.budgets.spent(agent.key, "EUR") == 0
    assert await refunded(services) == 0


async def test_two_partial_refunds_that_both_fit_both_run(services, agent, manager):
    first = await pending(services, agent, "60")
    second = await pending(services, agent, "55")

    assert (await say(services, manager, f"approve {first}")).approval.state == "succeeded"
    assert (await say(services, manager, f"approve {second}")).approval.state == "succeeded"

    assert await refunded(services) == 11500


async def test_a_partial_refund_that_no_longer_fits_goes_stale(services, agent, manager):
    first = await pending(services, agent, "60")
    second = await pending(services, agent, "70")  # fits alone, not after the 60.00

    assert (await say(services, manager, f"approve {first}")).approval.state == "succeeded"
    assert (await say(services, manager, f"approve {second}")).approval.state == "stale"

    assert await refunded(services) == 6000


async def test_two_refunds_that_fit_approved_at_once_both_run(
    services, agent, manager, other_manager
):
    first, second = [await pending(services, agent, amount) for amount in ("60", "55")]
    results = await asyncio.gather(
        decide(services, manager, first, approve=True),
        decide(services, other_manager, second, approve=True),
    )
    assert sorted(v.state for v in results) == [State.succeeded, State.succeeded]
    assert await refunded(services) == 11500


async def test_of_two_refunds_approved_at_once_the_one_that_no_longer_fits_goes_stale(
    services, agent, manager, other_manager
):
    first, second = [await pending(services, agent, amount) for amount in ("60", "70")]
    results = await asyncio.gather(
        decide(services, manager, first, approve=True),
        decide(services, other_manager, second, approve=True),
    )
    # Each re-reads the charge under its lock: whichever runs second sees what the first did.
    assert sorted(v.state for v in results) == [State.stale, State.succeeded]
    assert await refunded(services) in (6000, 7000)


async def test_recovery_rerunning_an_execution_still_under_way_records_one_outcome(
    services, agent, manager
):
    approval = await pending(services, agent, "80")
    assert (await vote(services, manager, approval, approve=True, reason=None)).state == "approved"
    lock = await hold_charge(services)  # the first run waits here, `executing`, for a while
    first = asyncio.create_task(execute(services, approval, manager))
    for _ in range(500):  # bounded: the first run claims it within a few milliseconds
        if (await get(services, approval)).state == State.executing:
            break
        await asyncio.sleep(0.01)
    # A sweeper takes it for a crashed run (it has been executing "too long") and re-runs it.
    second = asyncio.create_task(recover(services, older_than=NOW))
    await asyncio.sleep(0.2)
    await lock.release()
    await asyncio.gather(first, second)

    assert (await get(services, approval)).state == State.succeeded
    assert await refunded(services) == 8000  # the same key: the money moved once
    # The log says how it ended once: the run that came second records nothing of its own
    # (not a second "succeeded", nor "stale" for the refund the first one made).
    ended = [await outcomes(services, approval, o) for o in ("succeeded", "stale", "failed")]
    assert ended == [1, 0, 0]
