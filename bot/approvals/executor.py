"""Exactly-once execution of approved actions.

Three guards, each covering what the others cannot:
1. SQL: only the caller whose conditional UPDATE moves the request from
   `approved` to `executing` runs it; every other click sees it taken.
2. Redis: a lock per gateway object, so two *different* approved requests on
   one charge never run at once (each re-reads what is refundable).
3. The gateway: the approval ID is the idempotency key, so re-running after a
   crash or an unknown outcome returns the first result instead of paying twice.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from redis.exceptions import LockError, RedisError
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot import logs, lookup_cache
from bot.actors import SYSTEM, Actor  # SYSTEM: some callers still import it from here
from bot.approvals.actions import kind_of
from bot.approvals.workflow import (
    ApprovalView,
    State,
    audit_record,
    claim,
    count_on_commit,
    load,
    now,
    transition,
)
from bot.audit.log import append
from bot.gateways.base import ErrorCode, GatewayError
from bot.gateways.calls import observed
from bot.money import Money
from bot.services import Services
from bot.store.tables import ApprovalRow

log = logging.getLogger(__name__)

# The outcome of these is unknown (the gateway may have acted): retry with the same key, never mark failed.
UNKNOWN_OUTCOME = frozenset({ErrorCode.timeout, ErrorCode.unavailable, ErrorCode.rate_limited})
# Why a request went back to `approved` without running (its `error_code`); recovery runs it.
LOCK_BUSY = "lock_busy"
REDIS_UNAVAILABLE = "redis_unavailable"
# An approved request younger than this may still be started by the process that approved it.
APPROVED_GRACE = timedelta(seconds=5)


async def execute(services: Services, approval_id: str, actor: Actor) -> ApprovalView:
    """Run an approved request once; any concurrent or later call returns its state untouched.

    If it cannot start (another action holds the target, or Redis is away) it goes back to
    `approved`, with the reason in `error_code`, and recovery runs it later.
    """
    view, won = await _claim(services, approval_id, actor)
    if not won:
        return view
    return await run_claimed(services, view, actor)


async def run_claimed(services: Services, view: ApprovalView, actor: Actor) -> ApprovalView:
    """Run a request this caller has just claimed (`executing`, e.g. by `vote(start=True)`)."""
    return await _run(services, view, actor, check_stale=True)


async def _claim(
    services: Services, approval_id: str, actor: Actor, **detail: Any
) -> tuple[ApprovalView, bool]:
    """Move `approved` to `executing`; True only for the one caller whose UPDATE did it."""
    async with services.db.write() as session:
        view = await load(session, approval_id)
        if view.state != State.approved:
            return view, False
        claimed = await claim(session, view)
        if claimed is None:
            return await load(session, approval_id), False
        await append(session, audit_record(claimed, actor, "executing", detail=detail))
    return claimed, True


async def recover(services: Services, older_than: timedelta | None = None) -> list[ApprovalView]:
    """Finish every request left unfinished; returns the ones this call ran.

    - `executing` for longer than `older_than` (default `recover_after_seconds`): a crash
      (also one right after the deciding vote, which claims the request as it commits, see
      `decide`), or an unknown outcome. Re-run with the original key, so the gateway acts at
      most once.
    - `approved` but never started: the process died between a vote that did not claim it
      (`vote` without `start`) and the execution, or the target was busy, or Redis was away.
      Run it as a fresh execution
      (staleness checked); the conditional claim makes a concurrent voter or sweeper a no-op.
      These need no long wait: only the few seconds a voter takes to start it itself.
    """
    after = (
        older_than
        if older_than is not None
        else timedelta(seconds=services.settings.recover_after_seconds)
    )
    recovered = await _recover_executing(services, now() - after)
    async with services.db.read() as session:
        waiting = list(await session.scalars(
            select(ApprovalRow.id)
            .where(ApprovalRow.state == State.approved.value,
                   ApprovalRow.updated_at <= now() - min(after, APPROVED_GRACE))
            .order_by(ApprovalRow.updated_at)
        ))  # fmt: skip
    for approval_id in waiting:
        expired = await _expire_unstarted(services, approval_id)
        if expired is not None:
            recovered.append(expired)
            await services.announce(approval_id, SYSTEM)
            continue
        view, won = await _claim(services, approval_id, SYSTEM, recovered="approved, not started")
        if not won:
            continue  # someone else started it, or it expired, meanwhile
        log.warning("recovering approved request %s that never started", approval_id)
        view = await _run(services, view, SYSTEM, check_stale=True)
        recovered.append(view)
        await services.announce(approval_id, SYSTEM)
    return recovered


async def _expire_unstarted(services: Services, approval_id: str) -> ApprovalView | None:
    """An approved request that never started before its expiry never runs (the policy's
    promise): expired, its budget given back. None if it may still run."""
    refund_budget = None
    async with services.db.write() as session:
        moved = await session.execute(
            update(ApprovalRow)
            .where(ApprovalRow.id == approval_id, ApprovalRow.state == State.approved.value,
                   ApprovalRow.expires_at <= now())
            .values(state=State.expired.value, updated_at=now())
        )  # fmt: skip
        if moved.rowcount != 1:  # type: ignore[attr-defined]
            return None
        count_on_commit(session, State.expired)
        refund_budget = await _release_budget(session, approval_id)
        view = await load(session, approval_id)
        why = "approved, but it could not start before the request expired: it will not run"
        await append(session, audit_record(view, SYSTEM, "expired", detail={"why": why}))
    log.warning("approval %s expired before it could start", approval_id)
    if refund_budget is not None:
        await _give_back(services, approval_id, *refund_budget)
    return view


async def _recover_executing(services: Services, cutoff: datetime) -> list[ApprovalView]:
    async with services.db.read() as session:
        rows = list(await session.execute(
            select(ApprovalRow.id, ApprovalRow.attempts)
            .where(ApprovalRow.state == State.executing.value, ApprovalRow.updated_at <= cutoff)
        ))  # fmt: skip
    recovered = []
    for approval_id, attempts in rows:
        async with services.db.write() as session:
            claimed = await session.execute(
                update(ApprovalRow)
                .where(ApprovalRow.id == approval_id, ApprovalRow.state == State.executing.value, ApprovalRow.attempts == attempts)
                .values(attempts=attempts + 1, updated_at=now())
            )  # fmt: skip
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                continue  # another process is recovering it
            view = await load(session, approval_id)
            await append(
                session, audit_record(view, SYSTEM, "recovering", detail={"attempt": attempts + 1})
            )
        log.warning("recovering execution of %s (attempt %d)", approval_id, attempts + 1)
        # No staleness check: our own earlier attempt may be what changed the charge.
        recovered.append(await _run(services, view, SYSTEM, check_stale=False))
        await services.announce(approval_id, SYSTEM)
    return recovered


async def _run(
    services: Services, view: ApprovalView, actor: Actor, *, check_stale: bool
) -> ApprovalView:
    with logs.bound(approval_id=view.id):  # on every log line of the execution
        return await _execute(services, view, actor, check_stale=check_stale)


async def _execute(
    services: Services, view: ApprovalView, actor: Actor, *, check_stale: bool
) -> ApprovalView:
    gateway = services.gateways.get(view.gateway)
    lock = services.redis.lock(
        services.key("lock", view.gateway, view.target_id),
        timeout=services.settings.approvals_lock_seconds,
        blocking_timeout=services.settings.approvals_lock_seconds,
    )
    try:
        acquired = await lock.acquire()
    except RedisError as exc:
        # Nothing was sent to the gateway: back to `approved`, for recovery once Redis is back.
        log.warning("approval %s not started: Redis unavailable (%s)", view.id, exc)
        return await _finish(services, view, actor, State.approved, REDIS_UNAVAILABLE,
                             not_run=REDIS_UNAVAILABLE)  # fmt: skip
    if not acquired:
        return await _finish(services, view, actor, State.approved, LOCK_BUSY, not_run=LOCK_BUSY)
    try:
        kind = kind_of(view.action)
        if check_stale and kind.stale is not None and await kind.stale(gateway, view):
            return await _finish(services, view, actor, State.stale, "stale", detail={
                "why": kind.stale_why,
            })  # fmt: skip
        try:
            # The request ID is the key.
            result_id = await observed(gateway.name, view.action, kind.run(gateway, view, view.id))
        except GatewayError as exc:
            detail = {"code": exc.code, "raw_code": exc.raw_code, "raw_message": exc.raw_message}
            if exc.code in UNKNOWN_OUTCOME:
                return await _finish(services, view, actor, State.executing, "outcome_unknown",
                                     error=exc, detail=detail)  # fmt: skip
            return await _finish(
                services, view, actor, State.failed, "failed", error=exc, detail=detail
            )
        return await _finish(
            services, view, actor, State.succeeded, "succeeded", result_id=result_id
        )
    finally:
        try:
            await lock.release()
        except LockError:
            log.warning("lock on %s expired before release", view.target_id)
        except RedisError as exc:  # it expires on its own; the outcome is already recorded
            log.warning("lock on %s not released: %s", view.target_id, exc)


async def _finish(
    services: Services,
    view: ApprovalView,
    actor: Actor,
    state: State,
    outcome: str,
    *,
    result_id: str | None = None,
    error: GatewayError | None = None,
    detail: dict[str, Any] | None = None,
    not_run: str | None = None,
) -> ApprovalView:
    """Record how the execution ended, with its audit entry, in one transaction.

    A request that ends failed or stale gives its auto-approve budget back, once.
    """
    values: dict[str, Any] = {"result_id": result_id}
    if error is not None:
        values |= {"error_code": str(error.code), "error_message": error.message}
    if not_run is not None:
        values |= {"error_code": not_run, "error_message": None}
    refund_budget: tuple[str, str, int, str] | None = None
    at = now()
    async with services.db.write() as session:
        if state == State.executing:
            result = await session.execute(
                update(ApprovalRow).where(ApprovalRow.id == view.id, ApprovalRow.state == State.executing.value)
                .values(updated_at=at, **values)
            )  # fmt: skip
            moved = result.rowcount == 1  # type: ignore[attr-defined]
        else:
            moved = await transition(
                session, view.id, State.executing, state, updated_at=at, **values
            )
            if moved and state in (State.failed, State.stale):
                refund_budget = await _release_budget(session, view.id)
        if not moved:
            # Another run (recovery taking a slow run for a crashed one) ended it first; the
            # outcome it recorded stands, and this run adds no second one to the log.
            current = await load(session, view.id)
        else:
            # What the conditional UPDATE wrote is known: no need to read the row back.
            current = view.model_copy(update={"state": state, "updated_at": at, **values})
            await append(session, audit_record(current, actor, outcome, detail=detail or {},
                                               gateway_request_id=result_id))  # fmt: skip
            if state == State.succeeded:
                for listener in services.listeners:
                    await listener.record_action(services, session, current)
    if refund_budget is not None:
        await _give_back(services, view.id, *refund_budget)
    if state in (State.succeeded, State.executing):
        await lookup_cache.forget(
            services, view.gateway, view.customer_id
        )  # money moved, or may have
    if not moved:
        log.info("approval %s: %s by another run already; this run's %s not recorded",
                 view.id, current.state, outcome)  # fmt: skip
        return current
    if error is not None:
        log.warning("approval %s %s: %s", view.id, outcome, error.message)
    else:
        log.info("approval %s %s", view.id, outcome)
    if state == State.succeeded:
        for listener in services.listeners:
            try:
                await listener.after_action(services, current)
            except Exception:  # the action succeeded; what follows it must not say otherwise
                log.exception("listener %s failed after %s", type(listener).__name__, view.id)
    return current


async def _release_budget(
    session: AsyncSession, approval_id: str
) -> tuple[str, str, int, str] | None:
    """Clear the request's budget day (one conditional UPDATE); what to give back, if anything."""
    row = (await session.execute(
        select(ApprovalRow.budget_day, ApprovalRow.requester_key, ApprovalRow.amount, ApprovalRow.currency)
        .where(ApprovalRow.id == approval_id)
    )).one()  # fmt: skip
    day, who, minor, currency = row
    if day is None or minor is None or currency is None:
        return None
    cleared = await session.execute(
        update(ApprovalRow)
        .where(ApprovalRow.id == approval_id, ApprovalRow.budget_day == day)
        .values(budget_day=None)
    )
    if cleared.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return who, currency, minor, day


async def _give_back(
    services: Services, approval_id: str, who: str, currency: str, minor: int, day: str
) -> None:
    # After the commit: a crash in between loses budget (the safe side), never returns it twice.
    try:
        person = services.policy.person(who)  # the key the budget was spent under
        await services.budgets.give_back(person, Money(minor=minor, currency=currency), day=day)
    except RedisError:
        log.exception(
            "approval %s: could not give %d %s of budget back", approval_id, minor, currency
        )
