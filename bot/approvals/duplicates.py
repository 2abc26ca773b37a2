"""A second identical request by the same person, soon after the first, asks before it runs.

Two deliveries of one request are dropped by `bot/deliveries.py`; this is the
other half: a person who asks twice (a double-typed command, a form sent
again, the same refund from Slack and then Discord) is asked "this looks like
a duplicate of apr_…; refund again?" instead of moving the money twice. Only
an explicit `again <apr_id>` (or its button) makes the second request.

Identical means the same action on the same gateway object, with the same
amount and parameters, asked for by the same person (people, as four-eyes
compares them) within `duplicate_request_seconds`, while the first is still
live or done (pending, approved, executing, succeeded). One that failed, went
stale, expired or was denied may be asked for again without a question.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from redis.exceptions import LockError, RedisError
from sqlalchemy import select

from bot.actors import Actor
from bot.approvals.workflow import ActionRequest, ApprovalView, State, load, now
from bot.errors import UserError
from bot.services import Services
from bot.store.tables import ApprovalRow

LIVE = (State.pending, State.approved, State.executing, State.succeeded)
# Checking and recording one request on an object take milliseconds; a crashed holder frees it.
LOCK_SECONDS = 10.0


class DuplicateRequest(UserError):
    """The request repeats `earlier`: the person must say `again` to make it."""

    def __init__(self, earlier: ApprovalView, message: str) -> None:
        super().__init__("duplicate_request", message)
        self.earlier = earlier


@asynccontextmanager
async def one_at_a_time(services: Services, request: ActionRequest) -> AsyncIterator[None]:
    """Requests on one object are checked and recorded one after the other, across processes:
    two identical requests at the same moment cannot both find no earlier one."""
    lock = services.redis.lock(
        services.key("lock", "request", request.gateway, request.target_id),
        timeout=LOCK_SECONDS,
        blocking_timeout=LOCK_SECONDS,
    )
    try:
        acquired = await lock.acquire()
    except RedisError:
        acquired = False
    if not acquired:
        raise UserError(
            "busy", f"another request on {request.target_id} is being recorded: try again"
        )
    try:
        yield
    finally:
        # Expired: the next request simply did not wait for us.
        with contextlib.suppress(LockError, RedisError):
            await lock.release()


async def check_not_duplicate(services: Services, actor: Actor, request: ActionRequest) -> None:
    """Raise DuplicateRequest when this person made the same request within the window."""
    window = services.settings.duplicate_request_seconds
    if window <= 0:
        return
    since = now() - timedelta(seconds=window)
    amount = request.amount
    same_amount = (
        ApprovalRow.amount == amount.minor if amount is not None else ApprovalRow.amount.is_(None)
    )
    async with services.db.read() as session:
        rows = list(
            await session.scalars(
                select(ApprovalRow)
                .where(
                    ApprovalRow.action == request.action,
                    ApprovalRow.gateway == request.gateway,
                    ApprovalRow.target_id == request.target_id,
                    same_amount,
                    ApprovalRow.state.in_([s.value for s in LIVE]),
                    ApprovalRow.created_at >= since,
                )
                .order_by(ApprovalRow.created_at.desc())
            )
        )
        for row in rows:
            if amount is not None and row.currency != amount.currency:
                continue
            if (row.params or {}) != request.params:
                continue
            if not services.policy.same_person(actor.key, row.requester_key):
                continue
            earlier = await load(session, row.id)
            raise DuplicateRequest(earlier, question(earlier, services.settings.locale))


def question(earlier: ApprovalView, locale: str) -> str:
    """`this looks like a duplicate of apr_…: …; refund again?`"""
    verb = earlier.action
    what = f"{verb} of {earlier.amount.format(locale)}" if earlier.amount else verb
    minutes = round((now() - earlier.created_at).total_seconds() / 60)
    when = (
        "just now" if minutes < 1 else "a minute ago" if minutes == 1 else f"{minutes} minutes ago"
    )
    return (
        f"this looks like a duplicate of {earlier.id}: you asked for a {what} on "
        f"{earlier.target_id} {when} ({earlier.state.value}). {verb.capitalize()} again? "
        f"`again {earlier.id}` asks for it once more; otherwise nothing happens."
    )
