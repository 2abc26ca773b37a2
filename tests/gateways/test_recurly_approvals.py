"""Recurly refunds and cancellations through the bot's approvals: exactly once, end to end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal

import pytest

from bot.approvals.executor import recover
from bot.gateways.recurly.gateway import RecurlyGateway
from bot.gateways.registry import Gateways
from chargedesk_emulators.recurly import RecurlyEmulator, recurly_api
from tests.conftest import say
from tests.fakes.recurly_env import Seeded, recurly_settings, seed_contract_account

pytestmark = pytest.mark.approvals


@pytest.fixture
async def recurly(services) -> AsyncIterator[tuple[RecurlyEmulator, Seeded]]:  # type: ignore[no-untyped-def]
    with recurly_api() as api:
        seeded = seed_contract_account(api)
        gateway = RecurlyGateway(recurly_settings(api, timeout=0.5, max_retries=0), backoff=0.01)
        services.gateways = Gateways([*services.gateways, gateway], timeout=10)
        try:
            yield api, seeded
        finally:
            await gateway.close()


async def test_an_approved_refund_whose_answer_timed_out_is_recovered_as_one_refund(
    services, recurly, agent, manager
) -> None:
    api, seeded = recurly
    asked = await say(
        services, agent, f"refund recurly:{seeded.charge_id} 70.00 reason: goodwill late order"
    )
    assert asked.error is None and asked.approval is not None, asked.error
    # Recurly takes longer than we wait: the outcome is unknown, the approval stays executing.
    api.slow_next(1, 3.0, method="POST", path_prefix="/invoices/")
    await say(services, manager, f"approve {asked.approval.id}")
    for _ in range(200):
        if api.refunds_of(seeded.charge_id):
            break
        await asyncio.sleep(0.05)
    (view,) = await recover(services, older_than=timedelta(0))
    assert view.state.value == "succeeded"
    (refund,) = api.refunds_of(seeded.charge_id)
    assert refund.amount == Decimal("70.00") and view.result_id == refund.id
    assert await recover(services, older_than=timedelta(0)) == []
    assert len([e for e in api.requests_to("POST", "/invoices/") if "/refund" in e.path]) == 1


async def test_two_managers_approving_at_once_refund_once(
    services, recurly, agent, manager, other_manager
) -> None:
    api, seeded = recurly
    asked = await say(
        services, agent, f"refund recurly:{seeded.charge_id} 80.00 reason: duplicate charged twice"
    )
    assert asked.approval is not None
    await asyncio.gather(
        say(services, manager, f"approve {asked.approval.id}"),
        say(services, other_manager, f"approve {asked.approval.id}"),
    )
    (refund,) = api.refunds_of(seeded.charge_id)
    assert refund.amount == Decimal("80.00")
    assert api.credit_balance(seeded.account_id, "USD") == 0


async def test_a_cancel_at_period_end_through_the_bot(services, recurly, agent, manager) -> None:
    api, seeded = recurly
    sub = seeded.subscription_ids[0]
    asked = await say(services, agent, f"cancel recurly:{sub} reason: requested_by_customer moving")
    if asked.approval is not None:
        await say(services, manager, f"approve {asked.approval.id}")
    assert api.subscriptions[sub].state == "canceled"
    assert api.subscriptions[sub].expires == api.subscriptions[sub].term_end
