"""Braintree refunds through the command and the approval executor: once, whatever is lost."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot.approvals.executor import recover
from bot.approvals.workflow import State, get
from bot.gateways.braintree.gateway import BraintreeGateway
from bot.gateways.registry import Gateways
from bot.store.tables import ApprovalRow, DocumentRequest
from chargedesk_emulators.braintree import BraintreeEmulator, braintree_api
from tests.conftest import say
from tests.fakes.braintree_env import Seeded, braintree_settings, seed_contract_customer

pytestmark = pytest.mark.approvals


@pytest.fixture
async def braintree(services) -> AsyncIterator[tuple[BraintreeEmulator, Seeded]]:  # type: ignore[no-untyped-def]
    """Braintree beside the demo ledger; it answers slower than we wait when told to."""
    with braintree_api() as api:
        seeded = seed_contract_customer(api)
        settings = braintree_settings(api, timeout=0.3, max_retries=0)
        gateway = BraintreeGateway(settings, backoff=0.01)
        services.gateways = Gateways([*services.gateways, gateway], timeout=5)
        try:
            yield api, seeded
        finally:
            await gateway.close()


async def until_refunded(api: BraintreeEmulator, sale: str) -> None:
    for _ in range(100):
        if api.transactions[sale].refund_ids:
            return
        await asyncio.sleep(0.05)


async def test_a_refund_whose_answer_timed_out_is_recovered_with_one_refund(
    services, braintree, agent, manager
):  # type: ignore[no-untyped-def]
    api, seeded = braintree
    reply = await say(
        services,
        agent,
        f"refund braintree:{seeded.charge_id} 80.00 reason: duplicate charged twice",
    )
    assert reply.approval is not None and reply.approval.state == "pending"
    api.slow_next(1, 0.8, apply_first=False, path_contains="/refund")
    decided = await say(services, manager, f"approve {reply.approval.id}")
    assert decided.approval is not None and decided.approval.state == "executing"
    await until_refunded(api, seeded.charge_id)  # Braintree did it after we stopped waiting
    (recovered,) = await recover(services, older_than=timedelta(0))
    (refund,) = api.transactions[seeded.charge_id].refund_ids
    assert (recovered.state, recovered.result_id) == (State.succeeded, refund)
    assert len(api.requests_to("POST", "/refund")) == 1


async def test_an_unsettled_payment_is_voided_in_full_and_part_of_it_is_refused(
    services, braintree, agent
):  # type: ignore[no-untyped-def]
    api, seeded = braintree
    whole = api.add_sale(seeded.customer_id, "30.00", status="submitted_for_settlement")
    part = api.add_sale(seeded.customer_id, "40.00", status="submitted_for_settlement")
    voided = await say(services, agent, f"refund braintree:{whole} reason: duplicate charged twice")
    assert voided.approval is not None and voided.approval.state == "succeeded", voided.error
    assert (await get(services, voided.approval.id)).result_id == whole
    assert api.transactions[whole].status == "voided"
    refused = await say(services, agent, f"refund braintree:{part} 10.00 reason: goodwill late")
    # Refused before anyone is asked to approve it: no request, nothing changed.
    assert refused.approval is None and refused.error is not None
    assert refused.error.code == "not_settled" and "has not settled" in refused.error.message
    assert api.transactions[part].status == "submitted_for_settlement"
    async with services.db.read() as session:
        assert (await session.scalar(select(func.count()).select_from(ApprovalRow))) == 1
        # The void moved no money: no credit note is asked for.
        kinds = (await session.scalars(select(DocumentRequest.kind))).all()
    assert "credit_note" not in kinds
