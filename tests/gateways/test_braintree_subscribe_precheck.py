"""Braintree `subscribe` refused before approval when Braintree would refuse it anyway:
several seats, a plan the account lacks; one line, no request, nothing sent to Braintree."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from bot.store.tables import ApprovalRow
from chargedesk_emulators.braintree import BraintreeEmulator
from tests.conftest import say
from tests.fakes.braintree_env import Seeded, braintree_beside

pytestmark = pytest.mark.approvals


@pytest.fixture
async def braintree(services) -> AsyncIterator[tuple[BraintreeEmulator, Seeded]]:  # type: ignore[no-untyped-def]
    async with braintree_beside(services) as seeded:
        yield seeded


async def approval_rows(services) -> int:  # type: ignore[no-untyped-def]
    async with services.db.read() as s:
        return int(await s.scalar(select(func.count()).select_from(ApprovalRow)) or 0)


@pytest.mark.parametrize(
    ("words", "code", "says"),
    [
        ("pro-monthly 3", "rejected", "a Braintree subscription is one seat, not 3"),
        ("gold-yearly", "not_found", "Braintree has no plan gold-yearly"),
    ],
)
async def test_braintree_subscribe_braintree_would_refuse_is_refused_before_approval(
    services, braintree, agent, words, code, says
):  # type: ignore[no-untyped-def]
    api, seeded = braintree
    subscriptions = dict(api.subscriptions)
    rows = await approval_rows(services)
    reply = await say(
        services, agent, f"subscribe braintree:{seeded.customer_id} {words} reason: by phone"
    )
    assert reply.error is not None and reply.approval is None
    assert reply.error.code == code
    assert says in reply.error.message and "\n" not in reply.error.message
    assert await approval_rows(services) == rows
    assert api.subscriptions == subscriptions
    assert api.requests_to("POST", "/subscriptions") == []


async def test_braintree_subscribe_with_one_seat_and_a_trial_is_asked_for(
    services, braintree, agent
):  # type: ignore[no-untyped-def]
    api, seeded = braintree
    reply = await say(
        services,
        agent,
        f"subscribe braintree:{seeded.customer_id} pro-monthly 14d reason: by phone",
    )
    assert reply.error is None, reply.error
    assert reply.approval is not None and reply.approval.state == "pending"
    assert api.requests_to("POST", "/subscriptions") == []
