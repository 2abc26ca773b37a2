"""The approval state machine.

    pending ─┬─> approved ──> executing ─┬─> succeeded
             ├─> denied                  ├─> failed
             └─> expired                 └─> stale

Every transition is one conditional UPDATE (`... WHERE state = :expected`)
committed together with its audit entry, so two people clicking at once get
one winner, and the log never disagrees with the state.
"""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field
from sqlalchemy import event, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot import logs, metrics
from bot.actors import Actor, Role
from bot.approvals.actions import ACTIONS
from bot.approvals.policy import Policy
from bot.audit.log import AuditRecord, append
from bot.errors import UserError
from bot.money import Money
from bot.services import Services
from bot.store.tables import ApprovalRow, ApprovalVote

log = logging.getLogger(__name__)


def _known(name: str) -> str:
    if name not in ACTIONS:
        raise ValueError(f"no action is called {name!r}")
    return name


# An action named in bot/approvals/actions.py.
Action = Annotated[str, AfterValidator(_known)]


class State(StrEnum):
    pending = "pending"
    approved = "approved"
    executing = "executing"
    succeeded = "succeeded"
    failed = "failed"
    denied = "denied"
    expired = "expired"
    stale = "stale"


# Attempts to act beyond one's rights are audited; a late double click is not.
AUDITED_REFUSALS = frozenset({"own_request", "forbidden", "expired"})
FINAL = frozenset({State.succeeded, State.failed, State.denied, State.expired, State.stale})


class ActionRequest(BaseModel):
    """A money-moving action, fully resolved: which gateway, which object, how much, why."""

    action: Action
    gateway: str
    target_id: str
    customer_id: str | None = None
    amount: Money | None = None
    refundable: Money | None = None
    reason_code: str | None = None
    reason: str
    params: dict[str, Any] = Field(default_factory=dict)
    channel: str | None = None


class Vote(BaseModel):
    key: str
    name: str
    decision: str
    reason: str | None = None
    at: datetime


class ApprovalView(BaseModel):
    """An approval as commands and cards show it."""

    id: str
    action: Action
    state: State
    gateway: str
    target_id: str
    customer_id: str | None
    amount: Money | None
    refundable_at_request: int | None
    reason_code: str | None
    reason: str
    params: dict[str, Any]
    attempts: int
    requester_key: str
    requester_name: str
    approvals_required: int
    approver_role: str
    auto_approved: bool
    policy_note: str | None
    votes: list[Vote]
    result_id: str | None
    error_code: str | None
    error_message: str | None
    created_at: datetime
    expires_at: datetime
    updated_at: datetime

    @property
    def approvers(self) -> list[str]:
        return [f"{v.name} ({v.key})" for v in self.votes if v.decision == "approve"]


def new_approval_id() -> str:
    return f"apr_{secrets.token_hex(6)}"


def now() -> datetime:
    return datetime.now(UTC)


async def load(session: AsyncSession, approval_id: str, *, lock: bool = False) -> ApprovalView:
    """The request and its votes; `lock` holds the row until commit (votes count one at a time)."""
    row = await session.get(ApprovalRow, approval_id, populate_existing=True, with_for_update=lock)
    if row is None:
        raise UserError("not_found", f"no approval request {approval_id}")
    votes = await session.scalars(
        select(ApprovalVote)
        .where(ApprovalVote.approval_id == approval_id)
        .order_by(ApprovalVote.at)
    )
    return _view(row, list(votes))


def _view(row: ApprovalRow, votes: list[ApprovalVote]) -> ApprovalView:
    amount = (
        Money(minor=row.amount, currency=row.currency)
        if row.amount is not None and row.currency
        else None
    )
    return ApprovalView(
        id=row.id, action=row.action, state=State(row.state), gateway=row.gateway, target_id=row.target_id,  # type: ignore[arg-type]
        customer_id=row.customer_id, amount=amount, refundable_at_request=row.refundable_at_request,
        attempts=row.attempts, reason_code=row.reason_code, reason=row.reason,
        params=row.params or {}, requester_key=row.requester_key, requester_name=row.requester_name,
        approvals_required=row.approvals_required, approver_role=row.approver_role,
        auto_approved=row.auto_approved, policy_note=row.policy_note,
        votes=[Vote(key=v.approver_key, name=v.approver_name, decision=v.decision, reason=v.reason, at=v.at) for v in votes],
        result_id=row.result_id, error_code=row.error_code, error_message=row.error_message,
        created_at=row.created_at, expires_at=row.expires_at, updated_at=row.updated_at,
    )  # fmt: skip


async def transition(
    session: AsyncSession, approval_id: str, expected: State, new: State, **values: Any
) -> bool:
    """Move one request from `expected` to `new`; False if someone else moved it first.

    `updated_at` defaults to now; pass it to know what was stored without reading it back.
    """
    result = await session.execute(
        update(ApprovalRow)
        .where(ApprovalRow.id == approval_id, ApprovalRow.state == expected.value)
        .values(state=new.value, **({"updated_at": now()} | values))
    )
    moved = result.rowcount == 1  # type: ignore[attr-defined]
    if moved:
        count_on_commit(session, new)
    return moved


def count_on_commit(session: AsyncSession, state: State) -> None:
    """Count a request entering `state` once the transaction commits (a rollback counts nothing)."""
    event.listen(
        session.sync_session, "after_commit", lambda _: metrics.approval_entered(state.value),
        once=True,
    )  # fmt: skip


async def claim(session: AsyncSession, view: ApprovalView) -> ApprovalView | None:
    """Move an approved request on to `executing` in the caller's transaction: the request
    as now stored, or None if someone else moved it first. The caller appends the
    `executing` audit entry (`audit_record(claimed, actor, "executing")`).

    The view is brought up to date in memory from what the conditional UPDATE wrote.
    """
    at = now()
    if not await transition(
        session, view.id, State.approved, State.executing, updated_at=at,
        attempts=ApprovalRow.attempts + 1, error_code=None, error_message=None,
    ):  # fmt: skip
        return None
    return view.model_copy(update={
        "state": State.executing, "updated_at": at, "attempts": view.attempts + 1,
        "error_code": None, "error_message": None,
    })  # fmt: skip


def audit_record(view: ApprovalView, actor: Actor, outcome: str, **extra: Any) -> AuditRecord:
    """The audit entry for something that happened to this request."""
    fields: dict[str, Any] = {
        "actor": actor,
        "action": view.action,
        "outcome": outcome,
        "gateway": view.gateway,
        "object_id": view.target_id,
        "customer_id": view.customer_id,
        "amount": view.amount,
        "reason": view.reason,
        "approval_id": view.id,
        "approvers": view.approvers,
    }
    fields.update(extra)
    return AuditRecord(**fields)


async def create(
    services: Services,
    actor: Actor,
    request: ActionRequest,
    *,
    auto: bool,
    why: str,
    budget_day: str | None = None,
) -> ApprovalView:
    """Record a new request: `approved` when the policy lets the actor act alone, else `pending`.

    `budget_day`: the day whose auto-approve budget paid for it (given back if it fails).
    """
    rules = services.policy.for_action(request.action)
    created = now()
    row = ApprovalRow(
        id=new_approval_id(), action=request.action,
        state=(State.approved if auto else State.pending).value,
        gateway=request.gateway, target_id=request.target_id, customer_id=request.customer_id,
        amount=request.amount.minor if request.amount else None,
        currency=request.amount.currency if request.amount else None,
        refundable_at_request=request.refundable.minor if request.refundable else None,
        params=request.params, reason_code=request.reason_code, reason=request.reason,
        requester_key=actor.key, requester_name=actor.name,
        approvals_required=rules.approvals, approver_role=rules.approver_role.value,
        auto_approved=auto, policy_note=why, attempts=0, channel=request.channel,
        created_at=created, expires_at=created + rules.expires, updated_at=created,
        budget_day=budget_day,
    )  # fmt: skip
    async with services.db.write() as session:
        session.add(row)
        await session.flush()
        count_on_commit(session, State(row.state))
        view = _view(row, [])  # as just written: a new request has no votes
        # What the request asked beyond its amount (a refund paid back by hand, cancel now).
        asked = {"policy": why} | ({"params": view.params} if view.params else {})
        await append(session, audit_record(view, actor, "requested", detail=asked))
        if auto:
            await append(
                session, audit_record(view, actor, "auto_approved", detail={"policy": why})
            )
    with logs.bound(approval_id=view.id):
        log.info("approval %s created (%s) by %s: %s", view.id, view.state, actor.key, why)
    return view


async def vote(
    services: Services,
    actor: Actor,
    approval_id: str,
    *,
    approve: bool,
    reason: str | None,
    start: bool = False,
) -> ApprovalView:
    """Record an approve or deny; the request moves on when enough distinct approvers agree.

    With `start`, the deciding approval also claims the request for execution in the same
    transaction (`executing`, see `claim`): the caller runs it (`executor.run_claimed`).
    """
    with logs.bound(approval_id=approval_id):  # on every log line of the vote
        return await _vote(
            services, actor, approval_id, approve=approve, reason=reason, start=start
        )


async def _vote(
    services: Services,
    actor: Actor,
    approval_id: str,
    *,
    approve: bool,
    reason: str | None,
    start: bool,
) -> ApprovalView:
    async with services.db.read() as session:
        # Late clicks learn the outcome from a read, without queueing for the write lock.
        state = await session.scalar(select(ApprovalRow.state).where(ApprovalRow.id == approval_id))
    if state is not None and state != State.pending.value:
        raise UserError("already_decided", f"approval {approval_id} is already {state}")
    async with services.db.write() as session:
        view = await load(session, approval_id, lock=True)
        refusal = await _refusal(session, view, actor, services.policy)
        if refusal is not None:
            code, message, final_state = refusal
            if final_state is not None and await transition(
                session, view.id, State.pending, final_state
            ):
                await append(session, audit_record(view, actor, final_state.value))
            if code in AUDITED_REFUSALS:
                await append(session, audit_record(view, actor, "refused", detail={"why": message}))
            # The transaction commits what the refusal recorded; then the user is told.
            pending_error = UserError(code, message)
        else:
            pending_error = None
            at = now()
            ballot = Vote(
                key=actor.key, name=actor.name, decision="approve" if approve else "deny",
                reason=reason, at=at,
            )  # fmt: skip
            session.add(ApprovalVote(
                approval_id=view.id, approver_key=ballot.key, approver_name=ballot.name,
                decision=ballot.decision, reason=reason, at=at,
            ))  # fmt: skip
            try:
                await session.flush()
            except IntegrityError:  # the same person clicking twice at once
                raise UserError(
                    "already_voted", f"you have already decided on approval {view.id}"
                ) from None
            # The votes were read under the request's lock, so they are all the votes there
            # are: the view is brought up to date in memory, not read back.
            view = view.model_copy(update={"votes": [*view.votes, ballot]})
            if not approve:
                view = await _settle(session, view, State.denied, at)
                await append(session, audit_record(view, actor, "denied", reason=reason))
            else:
                count = sum(v.decision == "approve" for v in view.votes)
                if count < view.approvals_required:
                    outcome = f"approval {count} of {view.approvals_required}"
                    await append(session, audit_record(view, actor, outcome))
                else:
                    view = await _settle(session, view, State.approved, at)
                    # One transaction from the deciding vote to the claim: nothing can come
                    # between them, and one commit fewer on every decision.
                    claimed = await claim(session, view) if start else None
                    # Both entries after both UPDATEs: the chain head is written once.
                    await append(session, audit_record(view, actor, "approved"))
                    if claimed is not None:
                        view = claimed
                        await append(session, audit_record(view, actor, "executing"))
    if pending_error is not None:
        log.warning("approval %s: %s refused: %s", approval_id, actor.key, pending_error.message)
        raise pending_error
    return view


async def _settle(
    session: AsyncSession, view: ApprovalView, new: State, at: datetime
) -> ApprovalView:
    """Move a pending request to `new`: the view as stored then."""
    if not await transition(session, view.id, State.pending, new, updated_at=at):
        # Lost a race: roll this vote back and tell the user what happened instead.
        current = await session.scalar(select(ApprovalRow.state).where(ApprovalRow.id == view.id))
        raise UserError("already_decided", f"approval {view.id} is already {current}")
    return view.model_copy(update={"state": new, "updated_at": at})


async def check_may_decide(services: Services, actor: Actor, approval_id: str) -> None:
    """Refuse now, with the words `vote` would use, before a form asks for a reason."""
    async with services.db.read() as session:
        view = await load(session, approval_id)
        refusal = await _refusal(session, view, actor, services.policy)
    if refusal is not None:
        raise UserError(refusal[0], refusal[1])


async def _refusal(
    session: AsyncSession, view: ApprovalView, actor: Actor, policy: Policy
) -> tuple[str, str, State | None] | None:
    """Why this actor may not vote on this request now, if they may not.

    Four-eyes compares people, not platform IDs: the policy's `[people]` and the
    normalised names make `shell:ALEX` and alex's Slack ID the requester alex.
    """
    if view.state != State.pending:
        return "already_decided", f"approval {view.id} is already {view.state.value}", None
    if view.expires_at <= now():
        return (
            "expired",
            f"approval {view.id} expired at {view.expires_at:%Y-%m-%d %H:%M} UTC and will not run",
            State.expired,
        )
    if policy.same_person(actor.key, view.requester_key):
        return (
            "own_request",
            "you cannot approve or deny your own request: another approver must decide",
            None,
        )
    if not actor.has(Role(view.approver_role)):
        return "forbidden", f"only a {view.approver_role} can decide approval {view.id}", None
    if any(policy.same_person(v.key, actor.key) for v in view.votes):
        return "already_voted", f"you have already decided on approval {view.id}", None
    return None


async def expire_due(services: Services, system: Actor) -> int:
    """Mark every pending request past its expiry as expired (each with its audit entry)."""
    async with services.db.read() as session:
        due = list(await session.scalars(
            select(ApprovalRow.id).where(ApprovalRow.state == State.pending.value, ApprovalRow.expires_at <= now())
        ))  # fmt: skip
    expired = 0
    for approval_id in due:
        async with services.db.write() as session:
            view = await load(session, approval_id)
            if not await transition(session, approval_id, State.pending, State.expired):
                continue
            await append(session, audit_record(view, system, "expired"))
        expired += 1
        await services.announce(approval_id, system)
    return expired


async def listing(services: Services, states: list[State], limit: int = 20) -> list[ApprovalView]:
    async with services.db.read() as session:
        rows = list(await session.scalars(
            select(ApprovalRow).where(ApprovalRow.state.in_([s.value for s in states]))
            .order_by(ApprovalRow.created_at.desc()).limit(limit)
        ))  # fmt: skip
        return [await load(session, row.id) for row in rows]


async def get(services: Services, approval_id: str) -> ApprovalView:
    async with services.db.read() as session:
        return await load(session, approval_id)
