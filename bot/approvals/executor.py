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
from datetime import timedelta
from typing import Any

from redis.exceptions import LockError
from sqlalchemy import select, update

from bot import lookup_cache
from bot.actors import Actor, Role
from bot.app import Services
from bot.approvals.workflow import ApprovalView, State, audit_record, load, now, transition
from bot.audit.log import append
from bot.errors import UserError
from bot.gateways.base import ErrorCode, Gateway, GatewayError
from bot.store.tables import ApprovalRow

log = logging.getLogger(__name__)

SYSTEM = Actor(platform="system", id="chargedesk", name="ChargeDesk", roles=frozenset({Role.admin}))
# The outcome of these is unknown (the gateway may have acted): retry with the same key, never mark failed.
UNKNOWN_OUTCOME = frozenset({ErrorCode.timeout, ErrorCode.unavailable, ErrorCode.rate_limited})


async def execute(services: Services, approval_id: str, actor: Actor) -> ApprovalView:
    """Run an approved request once; any concurrent or later call returns its state untouched."""
    async with services.db.write() as session:
        view = await load(session, approval_id)
        if view.state != State.approved:
            return view
        if not await transition(
            session, approval_id, State.approved, State.executing, attempts=ApprovalRow.attempts + 1
        ):
            return await load(session, approval_id)
        view = await load(session, approval_id)
        await append(session, audit_record(view, actor, "executing"))
    return await _run(services, view, actor, check_stale=True)


async def recover(services: Services, older_than: timedelta | None = None) -> list[ApprovalView]:
    """Re-run executions left in `executing` (a crash, or an unknown outcome) with their original key."""
    cutoff = now() - (
        older_than
        if older_than is not None
        else timedelta(seconds=services.settings.recover_after_seconds)
    )
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
    gateway = services.gateways.get(view.gateway)
    lock = services.redis.lock(
        services.key("lock", view.gateway, view.target_id),
        timeout=services.settings.approvals_lock_seconds,
        blocking_timeout=services.settings.approvals_lock_seconds,
    )
    if not await lock.acquire():
        await _finish(services, view, actor, State.approved, "lock_busy")
        raise UserError(
            "busy", f"another action on {view.target_id} is still running: try again in a moment"
        )
    try:
        if check_stale and await _is_stale(gateway, view):
            return await _finish(services, view, actor, State.stale, "stale", detail={
                "why": "the refundable amount changed after the request was made",
            })  # fmt: skip
        try:
            result_id = await _call(gateway, view)
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


async def _is_stale(gateway: Gateway, view: ApprovalView) -> bool:
    if view.action != "refund" or view.refundable_at_request is None:
        return False
    charge = await gateway.get_charge(view.target_id)
    return charge.refundable.minor != view.refundable_at_request


async def _call(gateway: Gateway, view: ApprovalView) -> str:
    key = view.id
    if view.action == "refund":
        assert view.amount is not None
        refund = await gateway.refund(
            view.target_id, view.amount, reason=view.reason, idempotency_key=key
        )
        return refund.id
    if view.action == "capture":
        charge = await gateway.capture(view.target_id, view.amount, idempotency_key=key)
        return charge.id
    if view.action == "void":
        return (await gateway.void(view.target_id, idempotency_key=key)).id
    if view.action == "cancel":
        at_period_end = bool(view.params.get("at_period_end", True))
        sub = await gateway.cancel_subscription(
            view.target_id, at_period_end=at_period_end, reason=view.reason, idempotency_key=key
        )
        return sub.id
    raise UserError("unsupported", f"unknown action {view.action}")


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
) -> ApprovalView:
    """Record how the execution ended, with its audit entry, in one transaction."""
    values: dict[str, Any] = {"result_id": result_id}
    if error is not None:
        values |= {"error_code": str(error.code), "error_message": error.message}
    async with services.db.write() as session:
        if state == State.executing:
            await session.execute(
                update(ApprovalRow).where(ApprovalRow.id == view.id, ApprovalRow.state == State.executing.value)
                .values(updated_at=now(), **values)
            )  # fmt: skip
        else:
            await transition(session, view.id, State.executing, state, **values)
        current = await load(session, view.id)
        await append(session, audit_record(current, actor, outcome, detail=detail or {},
                                           gateway_request_id=result_id))  # fmt: skip
        if state == State.succeeded:
            for listener in services.listeners:
                await listener.record_action(services, session, current)
    if state in (State.succeeded, State.executing):
        await lookup_cache.forget(
            services, view.gateway, view.customer_id
        )  # money moved, or may have
    if error is not None:
        log.warning("approval %s %s: %s", view.id, outcome, error.message)
    if state == State.succeeded:
        for listener in services.listeners:
            try:
                await listener.after_action(services, current)
            except Exception:  # the action succeeded; what follows it must not say otherwise
                log.exception("listener %s failed after %s", type(listener).__name__, view.id)
    return current
