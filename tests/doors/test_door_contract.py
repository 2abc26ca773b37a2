"""The door contract, run against every door: Slack, Discord, the terminal shell, Intercom's
canvas and the agent panel.

The scenarios are in door_contract.py, the harnesses that drive each real door in
harnesses.py. A new door adds a harness there and gets every test here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.services import Services
from tests.doors import door_contract as contract
from tests.doors.door_contract import DoorHarness
from tests.doors.harnesses import DOORS

pytestmark = [pytest.mark.storage, pytest.mark.approvals]


# --- the contract, for every door -----------------------------------------------------------


@pytest.fixture(params=sorted(DOORS))
async def door(request: pytest.FixtureRequest, services: Services) -> AsyncIterator[DoorHarness]:
    async with DOORS[request.param](services) as harness:
        # A door where a scenario cannot apply says why (the Intercom canvas: `skips`).
        behaviour = request.node.originalname.removeprefix("test_")
        if behaviour in getattr(harness, "skips", {}):
            pytest.skip(f"{request.param}: {harness.skips[behaviour]}")
        yield harness


async def test_an_agents_lookup_shows_the_customers_card(door):
    await contract.an_agents_lookup_shows_the_customers_card(door)


async def test_a_customer_is_refused_privately_and_nothing_is_posted(door):
    await contract.a_customer_is_refused_privately_and_nothing_is_posted(door)


async def test_a_refund_over_the_limit_is_posted_where_managers_work(door):
    await contract.a_refund_over_the_limit_is_posted_where_managers_work(door)


async def test_a_manager_cannot_approve_their_own_request(door, tmp_path):
    await contract.a_manager_cannot_approve_their_own_request(door, tmp_path)


@pytest.mark.parametrize("where", ["shell", "another door", "expiry"])
async def test_a_decision_taken_elsewhere_redraws_every_copy(door, where):
    await contract.a_decision_taken_elsewhere_redraws_every_copy(door, where)


async def test_an_approved_refund_executes_once_however_often_approve_is_clicked(door):
    await contract.an_approved_refund_executes_once_however_often_approve_is_clicked(door)


async def test_an_alert_reaches_the_alerts_channel(door):
    await contract.an_alert_reaches_the_alerts_channel(door)


async def test_unknown_users_move_no_money(door):
    await contract.unknown_users_move_no_money(door)
