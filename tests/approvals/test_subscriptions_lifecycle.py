"""Subscriptions from the card: subscribe, change plan with a proration preview, pause, resume.

Ledger tests run on the demo dataset (plans in bot/demo/dataset.py DEMO_PRICES); the Stripe
ones against the Stripe emulator, the PayPal and Braintree ones against theirs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select, update

from bot.approvals.workflow import get
from bot.commands import COMMANDS
from bot.commands.forms import reason_form
from bot.gateways.braintree.gateway import BraintreeGateway
from bot.gateways.proration import period_after, period_before, prorated
from bot.gateways.recurly.gateway import PAUSE_CYCLES
from bot.gateways.registry import Gateways
from bot.store.tables import ApprovalRow, LedgerInvoice, LedgerPrice, LedgerSubscription
from chargedesk_emulators.braintree import braintree_api
from chargedesk_emulators.paypal import PayPalEmulator, paypal_api
from chargedesk_emulators.paypal import schema_problems as paypal_schema_problems
from chargedesk_emulators.recurly import recurly_api
from chargedesk_emulators.recurly import schema_problems as recurly_schema_problems
from chargedesk_emulators.woocommerce import woocommerce_api
from tests.conftest import say
from tests.fakes.braintree_env import braintree_settings, seed_contract_customer
from tests.fakes.paypal_env import Seeded as PayPalSeeded
from tests.fakes.paypal_env import paypal_gateway, seed_contract_payer
from tests.fakes.recurly_env import recurly_gateway, seed_contract_account
from tests.fakes.stripe_env import FakeStripe, stripe_fake
from tests.fakes.woocommerce_env import seed_contract_customer as seed_woo_customer
from tests.fakes.woocommerce_env import woocommerce_gateway

pytestmark = pytest.mark.approvals

JANE_PRO = "sub_jane_pro"  # ledger: Pro 49.00 EUR/month, active, period ends in 27 days


async def ledger_sub(services, sub_id: str) -> LedgerSubscription:
    async with services.db.read() as s:
        row = await s.get(LedgerSubscription, sub_id)
        assert row is not None
        return row


async def subs_of(services, customer: str) -> list[LedgerSubscription]:
    async with services.db.read() as s:
        return list(
            await s.scalars(
                select(LedgerSubscription).where(LedgerSubscription.customer_id == customer)
            )
        )


# --- subscribe ------------------------------------------------------------------------


async def test_manager_subscribes_a_ledger_customer_with_trial_and_quantity(services, manager):
    before = len(await subs_of(services, "cus_john"))
    reply = await say(
        services, manager, "subscribe cus_john price_team_usd 14d 3 reason: signed by phone"
    )
    assert reply.error is None, reply.error
    assert reply.approval.state == "succeeded"
    text = reply.cards[0].model_dump_json()
    assert "Subscribe cus_john to Team × 3: $360.00 monthly, 14-day trial" in text
    subs = await subs_of(services, "cus_john")
    assert len(subs) == before + 1
    new = next(s for s in subs if s.price_id == "price_team_usd")
    assert (new.quantity, new.status, new.amount) == (3, "trialing", 12000)
    assert new.trial_end is not None
    assert timedelta(days=13) < new.trial_end - datetime.now(UTC) <= timedelta(days=14)


async def test_an_agents_subscribe_waits_for_a_manager(services, agent, manager):
    before = len(await subs_of(services, "cus_yuki"))
    reply = await say(services, agent, "subscribe cus_yuki price_basic_jpy reason: asked by mail")
    assert reply.approval.state == "pending"
    assert len(await subs_of(services, "cus_yuki")) == before
    approved = await say(services, manager, f"approve {reply.approval.id}")
    assert approved.approval.state == "succeeded"
    assert len(await subs_of(services, "cus_yuki")) == before + 1


async def test_subscribe_to_an_unknown_plan_is_one_line_and_changes_nothing(services, manager):
    before = len(await subs_of(services, "cus_jane"))
    reply = await say(services, manager, "subscribe cus_jane price_nope reason: typo test")
    assert reply.error is not None
    assert reply.error.code == "not_found"
    assert "price_nope" in reply.error.message and "\n" not in reply.error.message
    assert len(await subs_of(services, "cus_jane")) == before
    async with services.db.read() as s:
        assert await s.scalar(select(func.count()).select_from(ApprovalRow)) == 0


async def test_subscribe_bad_quantity_and_trial_are_refused(services, manager):
    for line in (
        "subscribe cus_jane price_pro 0 reason: zero seats",
        "subscribe cus_jane price_pro 999d reason: long trial",
    ):
        reply = await say(services, manager, line)
        assert reply.error is not None, line
        assert reply.approval is None


# --- plan -----------------------------------------------------------------------------


def test_proration_is_exact_in_minor_units():
    start = datetime(2026, 1, 1, tzinfo=UTC)
    end = period_after(start, "month")
    assert end == datetime(2026, 2, 1, tzinfo=UTC)
    assert period_before(end, "month") == start
    half = start + (end - start) / 2
    # 15.5 of 31 days: +120.00 * 0.5 - 49.00 * 0.5
    assert prorated(4900, 12000, start=start, end=end, at=half) == 6000 - 2450
    assert prorated(12000, 4900, start=start, end=end, at=half) == -(6000 - 2450)
    assert prorated(4900, 12000, start=start, end=end, at=end) == 0
    # Rounded half away from zero per line: 1 * 1/3 -> 0, 2 * 1/3 -> 1 (0.67)
    third = end - (end - start) / 3
    assert prorated(1, 2, start=start, end=end, at=third) == 1
    assert period_before(datetime(2026, 3, 31, tzinfo=UTC), "month") == datetime(
        2026, 2, 28, tzinfo=UTC
    )


async def test_plan_change_card_shows_the_preview_and_charges_it(services, agent, manager):
    reply = await say(services, agent, f"plan {JANE_PRO} price_team now prorate reason: upgrade")
    assert reply.error is None, reply.error
    assert reply.approval.state == "pending"
    view_text = reply.cards[0].model_dump_json()
    assert "Team plan from now: charged €" in view_text
    assert "today (prorated), then €120.00 monthly" in view_text
    async with services.db.read() as s:
        row = await s.get(ApprovalRow, reply.approval.id)
        previewed = row.amount
    assert previewed is not None and 0 < previewed < 12000 - 4900
    approved = await say(services, manager, f"approve {reply.approval.id}")
    assert approved.approval.state == "succeeded"
    sub = await ledger_sub(services, JANE_PRO)
    assert (sub.plan, sub.price_id, sub.amount) == ("Team", "price_team", 12000)
    async with services.db.read() as s:
        invoiced = list(
            await s.scalars(
                select(LedgerInvoice.amount_due).where(
                    LedgerInvoice.customer_id == "cus_jane", LedgerInvoice.status == "open"
                )
            )
        )
    assert previewed in invoiced  # what the card said is what is collected


async def test_plan_change_goes_stale_when_the_subscription_changed(services, agent, manager):
    reply = await say(services, agent, f"plan {JANE_PRO} price_team reason: upgrade please")
    assert reply.approval.state == "pending"
    async with services.db.write() as s:  # someone moved it to another seat count meanwhile
        await s.execute(
            update(LedgerSubscription).where(LedgerSubscription.id == JANE_PRO).values(quantity=2)
        )
    approved = await say(services, manager, f"approve {reply.approval.id}")
    assert approved.approval.state == "stale"
    sub = await ledger_sub(services, JANE_PRO)
    assert sub.plan == "Pro"


async def test_approving_a_plan_change_twice_changes_it_once(
    services, agent, manager, other_manager
):
    reply = await say(services, agent, f"plan {JANE_PRO} price_team reason: upgrade please")
    first = await say(services, manager, f"approve {reply.approval.id}")
    second = await say(services, other_manager, f"approve {reply.approval.id}")
    assert first.approval.state == "succeeded"
    assert second.error is not None and second.error.code == "already_decided"
    async with services.db.read() as s:
        count = await s.scalar(
            select(func.count())
            .select_from(LedgerInvoice)
            .where(LedgerInvoice.customer_id == "cus_jane", LedgerInvoice.number.is_(None))
        )
    assert count == 1


async def test_plan_to_an_unknown_price_is_one_line_and_changes_nothing(services, manager):
    reply = await say(services, manager, f"plan {JANE_PRO} price_nope reason: typo")
    assert reply.error is not None and reply.error.code == "not_found"
    assert "\n" not in reply.error.message
    assert (await ledger_sub(services, JANE_PRO)).plan == "Pro"


async def test_a_downgrade_credits_and_a_manager_does_it_alone(services, manager):
    reply = await say(services, manager, f"plan {JANE_PRO} price_starter reason: downgrade")
    assert reply.approval.state == "succeeded"
    assert "Starter plan from now: credited €" in reply.cards[0].model_dump_json()
    assert (await ledger_sub(services, JANE_PRO)).amount == 1900


# --- pause and resume -----------------------------------------------------------------


async def test_pause_and_resume_a_ledger_subscription(services, agent, manager):
    paused = await say(services, agent, f"pause {JANE_PRO} reason: customer on leave")
    assert paused.approval.state == "pending"  # pausing stops payments: a manager decides
    assert (await say(services, manager, f"approve {paused.approval.id}")).approval.state == (
        "succeeded"
    )
    assert (await ledger_sub(services, JANE_PRO)).paused
    again = await say(services, agent, f"pause {JANE_PRO} reason: twice")
    assert again.error is not None and "already paused" in again.error.message
    resumed = await say(services, agent, f"resume {JANE_PRO} reason: back at work")
    assert resumed.approval.state == "succeeded"  # resuming: agents alone
    assert not (await ledger_sub(services, JANE_PRO)).paused


# --- Stripe ---------------------------------------------------------------------------


@pytest.fixture
async def stripe(services) -> AsyncIterator[FakeStripe]:  # type: ignore[no-untyped-def]
    """The Stripe emulator beside the demo ledger, with Basic (20.00) and Team (50.00) prices."""
    async with stripe_fake() as fake:
        services.gateways = Gateways([*services.gateways, fake.gateway], timeout=5)
        yield fake


def stripe_sub(fake: FakeStripe) -> str:
    return fake.env.subscription_ids[0]  # Basic monthly, 20.00 EUR, quantity 1


async def test_manager_subscribes_on_stripe_with_trial_and_quantity(services, stripe, manager):
    team = stripe.emulator.add_price(5000, "eur", nickname="Team")
    customer = stripe.env.customer_id
    reply = await say(
        services, manager, f"subscribe stripe:{customer} {team['id']} 3 14d reason: phone order"
    )
    assert reply.error is None, reply.error
    assert reply.approval.state == "succeeded"
    assert "Subscribe " + customer + " to Team × 3: €150.00 monthly, 14-day trial" in (
        reply.cards[0].model_dump_json()
    )
    approval = await get(services, reply.approval.id)
    sub = stripe.emulator.get(approval.result_id)
    assert sub["status"] == "trialing"
    assert sub["items"]["data"][0]["quantity"] == 3
    assert sub["trial_end"] - sub["trial_start"] == 14 * 86400
    assert sub["metadata"]["chargedesk_idempotency_key"] == reply.approval.id


async def test_stripe_plan_change_charges_what_the_preview_said(services, stripe, agent, manager):
    team = stripe.emulator.add_price(5000, "eur", nickname="Team")
    sub_id = stripe_sub(stripe)
    stripe.emulator.move_period(sub_id, 10 * 86400)  # a third of the month used
    reply = await say(services, agent, f"plan stripe:{sub_id} {team['id']} reason: more seats")
    assert reply.error is None, reply.error
    assert reply.approval.state == "pending"
    assert "Team plan from now: charged €" in reply.cards[0].model_dump_json()
    previewed = (await get(services, reply.approval.id)).amount
    assert previewed is not None and 0 < previewed.minor < 3000
    approved = await say(services, manager, f"approve {reply.approval.id}")
    assert approved.approval.state == "succeeded", approved.error
    sub = stripe.emulator.get(sub_id)
    assert sub["items"]["data"][0]["price"]["id"] == team["id"]
    invoice = stripe.emulator.get(sub["latest_invoice"])
    assert invoice["billing_reason"] == "subscription_update"
    assert (invoice["status"], invoice["amount_paid"]) == ("paid", previewed.minor)


async def test_stripe_plan_change_goes_stale_when_seats_changed(services, stripe, agent, manager):
    team = stripe.emulator.add_price(5000, "eur", nickname="Team")
    sub_id = stripe_sub(stripe)
    reply = await say(services, agent, f"plan stripe:{sub_id} {team['id']} reason: more seats")
    stripe.emulator._objects[sub_id]["items"]["data"][0]["quantity"] = 4  # changed in the dashboard
    approved = await say(services, manager, f"approve {reply.approval.id}")
    assert approved.approval.state == "stale"
    assert stripe.emulator.get(sub_id)["items"]["data"][0]["price"]["id"] != team["id"]


async def test_approving_a_stripe_plan_change_twice_bills_once(
    services, stripe, agent, manager, other_manager
):
    team = stripe.emulator.add_price(5000, "eur", nickname="Team")
    sub_id = stripe_sub(stripe)
    reply = await say(services, agent, f"plan stripe:{sub_id} {team['id']} reason: more seats")
    results = await asyncio.gather(
        say(services, manager, f"approve {reply.approval.id}"),
        say(services, other_manager, f"approve {reply.approval.id}"),
    )
    states = [r.approval.state if r.approval else r.error.code for r in results]
    assert (
        "succeeded" in states and states.count("succeeded") + states.count("already_decided") == 2
    )
    updates = [
        e for e in stripe.emulator.events if e["type"] == "invoice.finalized"
        and e["data"]["object"]["billing_reason"] == "subscription_update"
    ]  # fmt: skip
    assert len(updates) == 1


async def test_stripe_plan_to_an_unknown_price_is_one_line(services, stripe, manager):
    sub_id = stripe_sub(stripe)
    reply = await say(services, manager, f"plan stripe:{sub_id} price_nope reason: typo")
    assert reply.error is not None and reply.error.code == "not_found"
    assert "\n" not in reply.error.message
    assert stripe.emulator.get(sub_id)["items"]["data"][0]["price"]["nickname"] == "Basic monthly"


async def test_pause_and_resume_on_stripe(services, stripe, manager, agent):
    sub_id = stripe_sub(stripe)
    paused = await say(services, manager, f"pause stripe:{sub_id} reason: customer on leave")
    assert paused.approval.state == "succeeded", paused.error
    assert stripe.emulator.get(sub_id)["pause_collection"]["behavior"] == "void"
    resumed = await say(services, agent, f"resume stripe:{sub_id} reason: back at work")
    assert resumed.approval.state == "succeeded", resumed.error
    assert stripe.emulator.get(sub_id)["pause_collection"] is None


# --- PayPal and Braintree -------------------------------------------------------------


@pytest.fixture
async def paypal(services) -> AsyncIterator[tuple[PayPalEmulator, PayPalSeeded]]:  # type: ignore[no-untyped-def]
    with paypal_api() as api:
        seeded = seed_contract_payer(api)
        gateway = paypal_gateway(api)
        services.gateways = Gateways([*services.gateways, gateway], timeout=5)
        try:
            yield api, seeded
        finally:
            await gateway.close()


async def test_pause_and_resume_on_paypal(services, paypal, manager, agent):
    api, seeded = paypal
    sub_id = seeded.subscription_ids[0]
    paused = await say(services, manager, f"pause paypal:{sub_id} reason: customer on leave")
    assert paused.approval.state == "succeeded", paused.error
    assert api.subscriptions[sub_id].status == "SUSPENDED"
    twice = await say(services, manager, f"pause paypal:{sub_id} reason: again")
    assert twice.error is not None and "already paused" in twice.error.message
    resumed = await say(services, agent, f"resume paypal:{sub_id} reason: back at work")
    assert resumed.approval.state == "succeeded", resumed.error
    assert api.subscriptions[sub_id].status == "ACTIVE"
    problems = paypal_schema_problems(api.exchanges, requests=True)
    assert problems == [], "\n".join(problems)


async def test_paypal_pause_run_twice_suspends_once(services, paypal):
    api, seeded = paypal
    gateway = services.gateways.get("paypal")
    sub_id = seeded.subscription_ids[0]
    first = await gateway.set_paused(sub_id, True, idempotency_key="apr_1")
    again = await gateway.set_paused(sub_id, True, idempotency_key="apr_1")
    assert first.paused and again.paused
    suspends = [e for e in api.exchanges if e.path.endswith("/suspend")]
    assert len(suspends) == 1


async def test_paypal_subscribe_is_refused_with_the_reason_before_approval(
    services, paypal, manager
):
    _, seeded = paypal
    reply = await say(
        services, manager, f"subscribe paypal:{seeded.payer_id} P-PRO reason: by phone"
    )
    assert reply.error is not None and reply.error.code == "unsupported"
    assert "buyer approves it on PayPal" in reply.error.message
    assert reply.approval is None


async def test_braintree_subscribe_on_the_default_card_once_with_a_trial(
    services, manager, other_manager, agent
):
    with braintree_api() as api:
        seeded = seed_contract_customer(api)
        gateway = BraintreeGateway(braintree_settings(api), backoff=0.01)
        services.gateways = Gateways([*services.gateways, gateway], timeout=5)
        try:
            line = f"subscribe braintree:{seeded.customer_id} pro-monthly 14d reason: by phone"
            reply = await say(services, agent, line)
            results = await asyncio.gather(
                say(services, manager, f"approve {reply.approval.id}"),
                say(services, other_manager, f"approve {reply.approval.id}"),
            )
            seats = await say(
                services,
                manager,
                f"subscribe braintree:{seeded.customer_id} pro-monthly 3 reason: x y",
            )
            again = await gateway.create_subscription(
                seeded.customer_id, "pro-monthly", idempotency_key=reply.approval.id, trial_days=14
            )
        finally:
            await gateway.close()
    assert reply.approval.state == "pending"
    assert "succeeded" in [r.approval.state for r in results if r.approval]
    made = [s for s in api.subscriptions.values() if s.trial]
    assert len(made) == 1 and made[0].id == again.id and not made[0].transactions
    # Refused before approval: Braintree bills one seat (test_braintree_subscribe_precheck.py).
    assert seats.approval is None and "is one seat, not 3" in seats.error.message


async def test_braintree_pause_is_unsupported_with_the_reason_before_approval(services, manager):
    with braintree_api() as api:
        seeded = seed_contract_customer(api)
        gateway = BraintreeGateway(braintree_settings(api), backoff=0.01)
        services.gateways = Gateways([*services.gateways, gateway], timeout=5)
        try:
            sub_id = seeded.subscription_ids[0]
            reply = await say(services, manager, f"pause braintree:{sub_id} reason: on leave")
        finally:
            await gateway.close()
    assert reply.error is not None and reply.error.code == "unsupported"
    assert "Braintree has no pause" in reply.error.message
    assert reply.approval is None
    async with services.db.read() as s:
        assert await s.scalar(select(func.count()).select_from(ApprovalRow)) == 0


async def test_woocommerce_pause_is_on_hold_and_subscribe_is_refused(services, manager):
    with woocommerce_api() as api:
        seeded = seed_woo_customer(api)
        gateway = woocommerce_gateway(api)
        services.gateways = Gateways([*services.gateways, gateway], timeout=5)
        try:
            sub_id = seeded.subscription_ids[0]
            paused = await say(services, manager, f"pause woocommerce:{sub_id} reason: on leave")
            status_paused = (await gateway.get_subscription(sub_id)).paused
            resumed = await say(services, manager, f"resume woocommerce:{sub_id} reason: back")
            status_resumed = (await gateway.get_subscription(sub_id)).paused
            refused = await say(
                services, manager, f"subscribe woocommerce:{seeded.customer_id} 12 reason: x y"
            )
        finally:
            await gateway.close()
    assert paused.approval.state == "succeeded", paused.error
    assert status_paused
    assert resumed.approval.state == "succeeded", resumed.error
    assert not status_resumed
    assert refused.error is not None and refused.error.code == "unsupported"
    assert "checks out a subscription product" in refused.error.message


async def test_pause_and_resume_on_recurly(services, manager, agent):
    with recurly_api() as api:
        seeded = seed_contract_account(api)
        gateway = recurly_gateway(api)
        services.gateways = Gateways([*services.gateways, gateway], timeout=5)
        try:
            sub_id = seeded.subscription_ids[0]
            paused = await say(services, manager, f"pause recurly:{sub_id} reason: on leave")
            pending = api.subscriptions[sub_id].remaining_pause_cycles
            again = await gateway.set_paused(sub_id, True, idempotency_key=paused.approval.id)
            resumed = await say(services, agent, f"resume recurly:{sub_id} reason: back")
            after = api.subscriptions[sub_id].remaining_pause_cycles
        finally:
            await gateway.close()
    assert paused.approval.state == "succeeded", paused.error
    assert pending == PAUSE_CYCLES and again.paused
    assert len([e for e in api.exchanges if e.path.endswith("/pause")]) == 2  # pause, cancel it
    assert resumed.approval.state == "succeeded", resumed.error
    assert after is None
    problems = recurly_schema_problems(api.exchanges, requests=True)
    assert problems == [], "\n".join(problems)


# --- the card -------------------------------------------------------------------------


async def test_card_offers_change_plan_and_pause_then_resume_with_forms(services, manager):
    def commands(reply) -> list[str]:  # type: ignore[no-untyped-def]
        return [b.command for c in reply.cards for b in c.actions]

    card = await say(services, manager, "lookup jane.doe@example.com")
    assert f"plan ledger:{JANE_PRO} reason: " in commands(card)
    assert f"pause ledger:{JANE_PRO} reason: " in commands(card)
    assert "plan ledger:sub_jane_starter reason: " not in commands(card)  # canceled
    form = reason_form(COMMANDS["plan"], {"subscription": f"ledger:{JANE_PRO}"}, "Change plan")
    asked = {f.name: f for f in form.fields}
    assert list(asked) == ["price", "when", "proration", "reason"]
    assert [c.value for c in asked["when"].choices] == ["now", "renewal"]
    await say(services, manager, f"pause {JANE_PRO} reason: on leave")
    card = await say(services, manager, "lookup jane.doe@example.com")
    assert f"resume ledger:{JANE_PRO} reason: " in commands(card)
    assert "active, paused" in card.cards[0].model_dump_json()


async def test_plan_change_to_a_plan_retired_meanwhile_goes_stale(services, agent, manager):
    reply = await say(services, agent, f"plan {JANE_PRO} price_team reason: upgrade please")
    async with services.db.write() as s:
        await s.execute(
            update(LedgerPrice).where(LedgerPrice.id == "price_team").values(active=False)
        )
    approved = await say(services, manager, f"approve {reply.approval.id}")
    assert approved.approval.state == "stale"
    assert (await ledger_sub(services, JANE_PRO)).plan == "Pro"


async def test_plan_at_renewal_is_refused_where_the_gateway_cannot(services, manager):
    # Stripe changes plans at renewal (tests/gateways/test_stripe_plan_renewal.py).
    ledger = await say(services, manager, f"plan {JANE_PRO} price_team renewal reason: later")
    assert ledger.error is not None and "from now only" in ledger.error.message
    assert ledger.approval is None


async def test_the_same_plan_change_asked_twice_runs_once(services, agent, manager):
    first = await say(services, agent, f"plan {JANE_PRO} price_team reason: upgrade please")
    second = await say(services, agent, f"plan {JANE_PRO} price_team reason: upgrade please")
    approved = await say(services, manager, f"approve {first.approval.id}")
    assert approved.approval.state == "succeeded"
    if second.approval is None:  # previewed in the same second: the very same request
        assert second.error.code == "duplicate_request"
    else:  # its own preview, which no longer holds once the first has run
        late = await say(services, manager, f"approve {second.approval.id}")
        assert late.approval.state == "stale"
    assert (await ledger_sub(services, JANE_PRO)).plan == "Team"


async def test_braintree_plan_change_charges_what_the_preview_said(services, agent, manager):
    with braintree_api() as api:
        seeded = seed_contract_customer(api)
        api.add_plan("team-monthly", "Team monthly", "50.00", "USD")
        gateway = BraintreeGateway(braintree_settings(api), backoff=0.01)
        services.gateways = Gateways([*services.gateways, gateway], timeout=5)
        sub_id = seeded.subscription_ids[0]  # Pro monthly, 20.00
        try:
            reply = await say(
                services, agent, f"plan braintree:{sub_id} team-monthly reason: more seats"
            )
            previewed = (await get(services, reply.approval.id)).amount
            approved = await say(services, manager, f"approve {reply.approval.id}")
        finally:
            await gateway.close()
    assert reply.error is None, reply.error
    assert "Team monthly plan from now: charged $" in reply.cards[0].model_dump_json()
    assert approved.approval.state == "succeeded", approved.error
    sub = api.subscriptions[sub_id]
    assert (sub.plan_id, str(sub.price)) == ("team-monthly", "50.00")
    newest = api.transactions[sub.transactions[0]]
    assert previewed is not None and newest.amount * 100 == previewed.minor


async def test_a_coupon_given_with_a_subscription_is_held_to_the_coupon_caps(services, manager):
    # A manager subscribes alone; a coupon that comes with it is judged by [coupon] too.
    within = await say(
        services, manager, "subscribe cus_john price_starter WELCOME10 reason: phone"
    )
    assert within.approval.state == "succeeded", within
    services.policy.coupon.max_percent_off["manager"] = Decimal(5)
    above = await say(services, manager, "subscribe cus_john price_pro WELCOME10 reason: phone")
    assert above.approval.state == "pending"
    assert "the coupon: 10% off is above your cap of 5%" in above.cards[0].model_dump_json()
