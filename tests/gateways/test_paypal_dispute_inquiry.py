"""A PayPal dispute still in inquiry (status OPEN, stage INQUIRY) takes no evidence: the
agent is told at once, and no manager is asked to approve what PayPal would refuse."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from bot.store.tables import ApprovalRow
from chargedesk_emulators.paypal import PayPalEmulator
from tests.conftest import say
from tests.fakes.paypal_env import Seeded, paypal_beside

pytestmark = pytest.mark.approvals


@pytest.fixture
async def paypal(services) -> AsyncIterator[tuple[PayPalEmulator, Seeded]]:  # type: ignore[no-untyped-def]
    async with paypal_beside(services) as (api, seeded, _):
        yield api, seeded


async def approvals(services) -> int:  # type: ignore[no-untyped-def]
    async with services.db.read() as s:
        return int(await s.scalar(select(func.count()).select_from(ApprovalRow)) or 0)


async def test_evidence_for_a_paypal_inquiry_is_refused_before_any_approval(
    services, paypal, agent
):
    api, seeded = paypal
    inquiry = api.add_dispute(seeded.charge_id, status="OPEN")
    assert api.disputes[inquiry].stage == "INQUIRY"
    reply = await say(services, agent, f"dispute paypal:{inquiry} evidence reason: delivered")
    assert reply.error is not None and reply.approval is None
    assert reply.error.code == "invalid_state" and "\n" not in reply.error.message
    assert "PayPal takes evidence only once it waits for the seller" in reply.error.message
    assert await approvals(services) == 0
    assert api.requests_to("POST", f"/v1/customer/disputes/{inquiry}") == []


async def test_accepting_a_paypal_inquiry_still_goes_to_approval(services, paypal, agent):
    api, seeded = paypal
    inquiry = api.add_dispute(seeded.charge_id, status="OPEN")
    reply = await say(services, agent, f"dispute paypal:{inquiry} accept reason: fair claim")
    assert reply.error is None and reply.approval is not None
    assert reply.approval.state == "pending" and await approvals(services) == 1


async def test_evidence_for_a_dispute_waiting_for_the_seller_still_goes_to_approval(
    services, paypal, agent
):
    api, seeded = paypal
    waiting = api.add_dispute(seeded.charge_id)
    reply = await say(services, agent, f"dispute paypal:{waiting} evidence reason: delivered")
    assert reply.error is None and reply.approval is not None and await approvals(services) == 1
