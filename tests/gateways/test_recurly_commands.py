"""`subscribe`, `plan` and `charge` on Recurly through the bot's approvals, end to end: an
agent asks, a manager approves (twice, at once), Recurly acts once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from bot.approvals.workflow import get
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
        api.add_plan("pro-plus", "Pro plus", {"USD": "50.00"})
        gateway = RecurlyGateway(recurly_settings(api, timeout=2, max_retries=0), backoff=0.01)
        services.gateways = Gateways([*services.gateways, gateway], timeout=10)
        try:
            yield api, seeded
        finally:
            await gateway.close()


async def approved_by_two_at_once(services, asked, manager, other_manager) -> str:  # type: ignore[no-untyped-def]
    assert asked.approval is not None, asked.error
    await asyncio.gather(
        say(services, manager, f"approve {asked.approval.id}"),
        say(services, other_manager, f"approve {asked.approval.id}"),
    )
    view = await get(services, asked.approval.id)
    assert view.state.value == "succeeded", view.error_message
    assert view.result_id is not None
    return view.result_id


async def test_an_approved_recurly_subscribe_starts_one_subscription(
    services, recurly, agent, manager, other_manager
) -> None:
    api, seeded = recurly
    before = len(api.subscriptions)
    asked = await say(
        services, agent,
        f"subscribe recurly:{seeded.account_id} pro-monthly:USD 2 reason: upgrade by phone",
    )  # fmt: skip
    sub_id = await approved_by_two_at_once(services, asked, manager, other_manager)
    assert len(api.subscriptions) == before + 1 and api.subscriptions[sub_id].quantity == 2
    assert len(api.requests_to("POST", "/subscriptions")) == 1


async def test_an_approved_recurly_plan_change_bills_the_previewed_amount_once(
    services, recurly, agent, manager, other_manager
) -> None:
    api, seeded = recurly
    sub_id = seeded.subscription_ids[0]
    asked = await say(
        services, agent, f"plan recurly:{sub_id} pro-plus now prorate reason: upgrade by phone"
    )
    assert asked.approval is not None, asked.error
    preview = (await get(services, asked.approval.id)).params["preview"]
    await approved_by_two_at_once(services, asked, manager, other_manager)
    posted = [
        json.loads(e.body)
        for e in api.requests_to("POST", f"/subscriptions/{sub_id}/change")
        if not e.path.endswith("/preview")
    ]
    assert posted == [{"timeframe": "now", "plan_code": "pro-plus", "quantity": 1}]
    (invoice,) = [i for i in api.invoices.values() if i.origin == "immediate_change"]
    (payment,) = invoice.transaction_ids
    charged = api.transactions[payment].amount
    assert int(charged * 100) == preview["due_now"]["minor"]


async def test_an_approved_recurly_charge_takes_the_money_once(
    services, recurly, agent, manager, other_manager
) -> None:
    api, seeded = recurly
    asked = await say(
        services, agent,
        f"charge recurly:{seeded.account_id} 31.40 USD Extra setup reason: asked by phone",
    )  # fmt: skip
    charge_id = await approved_by_two_at_once(services, asked, manager, other_manager)
    assert str(api.transactions[charge_id].amount) == "31.40"
    assert len(api.requests_to("POST", "/purchases")) == 1
