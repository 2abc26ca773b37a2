"""Stripe plan changes at renewal: a subscription schedule keeps the current phase to the
period's end and bills the new price from then on, made once however often it is run."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bot.approvals.workflow import get
from bot.lookup_cache import forget
from bot.models import PlanChange
from tests.conftest import say
from tests.fakes.stripe_env import EMAIL, FakeStripe

pytestmark = pytest.mark.approvals


def period_end(stripe: FakeStripe, sub_id: str) -> int:
    return max(i["current_period_end"] for i in stripe.emulator.get(sub_id)["items"]["data"])


def schedule_creations(stripe: FakeStripe) -> list[Any]:
    return [
        r
        for r in stripe.emulator.requests
        if (r.method, r.path) == ("POST", "/v1/subscription_schedules") and not r.replayed
    ]


async def ask_renewal(services: Any, stripe: FakeStripe, agent: Any) -> tuple[Any, str, dict]:
    team = stripe.emulator.add_price(5000, "eur", nickname="Team")
    sub_id = stripe.env.subscription_ids[0]  # Basic monthly, 20.00 EUR
    reply = await say(services, agent, f"plan stripe:{sub_id} {team['id']} renewal reason: later")
    assert reply.error is None, reply.error
    return reply, sub_id, team


async def test_stripe_plan_at_renewal_previews_the_new_price_from_the_period_end(
    services, stripe, agent
):
    reply, sub_id, _ = await ask_renewal(services, stripe, agent)
    starts = datetime.fromtimestamp(period_end(stripe, sub_id), UTC)
    text = reply.cards[0].model_dump_json()
    assert f"Team plan from {starts:%Y-%m-%d}: €50.00 monthly, nothing charged today" in text
    assert reply.approval.state == "pending"
    assert stripe.emulator.schedules() == []  # nothing at Stripe before approval


async def test_stripe_plan_at_renewal_makes_one_schedule_with_two_phases(
    services, stripe, agent, manager
):
    reply, sub_id, team = await ask_renewal(services, stripe, agent)
    end = period_end(stripe, sub_id)
    approved = await say(services, manager, f"approve {reply.approval.id}")
    assert approved.approval.state == "succeeded", approved.error
    [schedule] = stripe.emulator.schedules()
    assert schedule["subscription"] == sub_id and schedule["end_behavior"] == "release"
    now, then = schedule["phases"]
    assert (now["end_date"], then["start_date"]) == (end, end)
    assert [i["price"] for i in then["items"]] == [team["id"]]
    [update] = [r for r in stripe.emulator.requests if r.path.endswith(schedule["id"])]
    assert update.params["phases"][1]["duration"] == {"interval": "month", "interval_count": "1"}
    assert update.params["end_behavior"] == "release"
    # The subscription itself still bills Basic until the renewal.
    sub = stripe.emulator.get(sub_id)
    assert sub["schedule"] == schedule["id"]
    assert sub["items"]["data"][0]["price"]["nickname"] == "Basic monthly"
    sent = [r for r in stripe.emulator.requests if r.path.startswith("/v1/subscription_sched")]
    assert all(r.idempotency_key for r in sent if r.method == "POST")


async def test_a_retried_or_second_renewal_change_makes_no_second_schedule(
    services, stripe, agent, manager, other_manager
):
    reply, sub_id, _ = await ask_renewal(services, stripe, agent)
    await say(services, manager, f"approve {reply.approval.id}")
    twice = await say(services, other_manager, f"approve {reply.approval.id}")
    assert twice.approval is None or twice.approval.state == "succeeded"
    view = await get(services, reply.approval.id)
    change = PlanChange.model_validate(view.params["preview"])
    stripe.emulator.forget_idempotency_keys()  # a recovery after Stripe's 24 hours
    await stripe.gateway.change_plan(change, idempotency_key=reply.approval.id)
    # Another change at renewal of the same subscription updates its one schedule.
    pro = stripe.emulator.add_price(9000, "eur", nickname="Pro")
    again = await say(services, agent, f"plan stripe:{sub_id} {pro['id']} renewal reason: more")
    done = await say(services, manager, f"approve {again.approval.id}")
    assert done.approval.state == "succeeded", done.error
    [schedule] = stripe.emulator.schedules()
    assert [i["price"] for i in schedule["phases"][-1]["items"]] == [pro["id"]]
    assert len(schedule_creations(stripe)) == 1


async def test_the_card_shows_the_pending_change_until_the_renewal_bills_it(
    services, stripe, agent, manager
):
    reply, sub_id, team = await ask_renewal(services, stripe, agent)
    await say(services, manager, f"approve {reply.approval.id}")
    end = period_end(stripe, sub_id)
    card = (await say(services, agent, f"lookup {EMAIL}")).cards[0].model_dump_json()
    starts = datetime.fromtimestamp(end, UTC)
    assert f"Basic monthly → Team from {starts:%Y-%m-%d}" in card
    stripe.emulator.advance_schedules(end + 1)
    sub = stripe.emulator.get(sub_id, expand=["latest_invoice"])
    assert sub["items"]["data"][0]["price"]["id"] == team["id"]
    assert sub["items"]["data"][0]["current_period_start"] == end
    assert sub["latest_invoice"]["total"] == 5000
    await forget(services, "stripe", stripe.env.customer_id)  # what its webhook does
    card = (await say(services, agent, f"lookup {EMAIL}")).cards[0].model_dump_json()
    assert "→ Team" not in card and "€50.00/month" in card
