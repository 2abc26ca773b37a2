"""`cancel <sub> now and-refund last|prorated`: one approved request ends a subscription and
refunds its last payment (in full, or the unused part of the period), exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot.actors import Actor
from bot.approvals.executor import recover
from bot.approvals.policy import Policy, load_policy
from bot.approvals.workflow import get
from bot.commands.forms import cancel_form, submit
from bot.commands.router import Context
from bot.gateways.base import ErrorCode, GatewayError
from bot.gateways.registry import Gateways
from bot.gateways.termination import PaidPeriod, refund_for, unused_share
from bot.models import Charge, ChargeStatus
from bot.money import Money
from bot.services import Services
from bot.store.tables import AuditEntry, DocumentRequest
from tests.conftest import CHANNEL, REPO, say
from tests.fakes.stripe_env import FakeStripe, stripe_fake

pytestmark = pytest.mark.approvals

DAY = 86400
START = datetime(2026, 11, 1, tzinfo=UTC)
END = START + timedelta(days=30)


# --- the amount --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("paid", "left_seconds", "expected"),
    [
        (Money(minor=3000, currency="EUR"), 20 * DAY, 2000),  # two thirds of €30.00
        (Money(minor=1000, currency="EUR"), 10 * DAY, 333),  # 333.33… rounds down
        (Money(minor=2000, currency="EUR"), 10 * DAY, 667),  # 666.66… rounds up
        (Money(minor=1000, currency="JPY"), 10 * DAY, 333),  # ¥333.33… is ¥333
        (Money(minor=5001, currency="JPY"), 15 * DAY, 2500),  # ¥2500.5: half to even
        (Money(minor=5003, currency="JPY"), 15 * DAY, 2502),  # ¥2501.5: half to even
        (Money(minor=15000, currency="KWD"), 1, 0),  # one second of 30 days: nothing
        (Money(minor=1250, currency="EUR"), 30 * DAY, 1250),  # unused: all of it
        (Money(minor=1250, currency="EUR"), 0, 0),  # over: nothing
    ],
)
def test_the_unused_share_is_exact_in_minor_units(
    paid: Money, left_seconds: int, expected: int
) -> None:
    share = unused_share(paid, START, END, END - timedelta(seconds=left_seconds))
    assert share == Money(minor=expected, currency=paid.currency)


def test_the_unused_share_never_exceeds_what_was_paid_outside_the_period() -> None:
    paid = Money(minor=999, currency="JPY")
    assert unused_share(paid, START, END, START - timedelta(days=3)).minor == 999
    assert unused_share(paid, START, END, END + timedelta(days=3)).minor == 0


def _charge(**changes: Any) -> Charge:
    values: dict[str, Any] = {
        "gateway": "stripe", "id": "ch_9", "customer_id": "cus_1",
        "amount": Money(minor=3000, currency="EUR"), "amount_captured": 3000,
        "status": ChargeStatus.succeeded,
    }  # fmt: skip
    return Charge(**(values | changes))


def test_a_prorated_refund_is_capped_at_what_is_left_of_the_payment() -> None:
    charge = _charge(amount_refunded=2500, status=ChargeStatus.partially_refunded)
    planned = refund_for(PaidPeriod(charge, START, END), "prorated", gateway="stripe", at=START)
    assert planned.amount == Money(minor=500, currency="EUR") and planned.charge_id == "ch_9"


def test_last_refunds_what_remains_of_the_last_payment() -> None:
    planned = refund_for(PaidPeriod(_charge(), START, END), "last", gateway="stripe", at=END)
    assert planned.amount == Money(minor=3000, currency="EUR") and planned.mode == "last"


@pytest.mark.parametrize(
    ("charge", "at", "code"),
    [
        (_charge(amount_refunded=3000, status=ChargeStatus.refunded), START, "already_refunded"),
        (_charge(), END, "invalid_state"),  # the period is over: nothing unused
        (_charge(status=ChargeStatus.failed, amount_captured=0), START, "invalid_state"),
    ],
)
def test_nothing_to_refund_is_said_before_approval(charge: Charge, at: datetime, code: str) -> None:
    with pytest.raises(GatewayError) as refused:
        refund_for(PaidPeriod(charge, START, END), "prorated", gateway="stripe", at=at)
    assert refused.value.code == ErrorCode(code)


# --- the policy --------------------------------------------------------------------------


def test_the_shipped_policy_decides_a_refunding_cancel_by_both_tables(
    agent: Actor, manager: Actor
) -> None:
    shipped = load_policy(REPO / "config" / "policy.toml")
    small = Money(minor=1250, currency="EUR")
    assert not shipped.decide("cancel", agent, small).alone  # agents never cancel alone
    alone = shipped.decide("cancel", manager, small)
    assert alone.alone and "within your limit of €1,000.00" in alone.why
    above = shipped.decide("cancel", manager, Money(minor=150000, currency="EUR"))
    assert not above.alone and "above your limit" in above.why


def test_without_a_policy_file_a_refunding_cancel_needs_a_manager(manager: Actor) -> None:
    assert not Policy().decide("cancel", manager, Money(minor=1, currency="EUR")).alone


# --- through the bot, at the Stripe emulator ----------------------------------------------


@pytest.fixture
def policy() -> Policy:
    """Agents may cancel alone, and refund up to €50.00 alone (€200.00 a day)."""
    return Policy.model_validate({
        "refund": {"limits": {"agent": {"EUR": "50.00"}},
                   "daily_budget": {"agent": {"EUR": "200.00"}}},
        "cancel": {"alone_roles": ["agent"]},
    })  # fmt: skip


@pytest.fixture
async def stripe(services: Services) -> AsyncIterator[FakeStripe]:
    async with stripe_fake() as fake:
        services.gateways = Gateways([*services.gateways, fake.gateway], timeout=10)
        yield fake


async def _subscribe(fake: FakeStripe, minor: int, *, used_days: int = 10) -> tuple[str, str]:
    """A paid 30-day subscription `used_days` into its period: (subscription, its charge)."""
    price = fake.emulator.add_price(minor, "EUR", nickname=f"Plan {minor}")
    sub = fake.emulator.add_subscription(fake.env.customer_id, price["id"], bill=True)
    fake.emulator.move_period(sub["id"], used_days * DAY)
    paid = await fake.gateway.subscription_payment(sub["id"])
    return sub["id"], paid.charge.id


def _refunds(fake: FakeStripe, charge_id: str) -> list[int]:
    return [
        r["amount"] for r in fake.emulator.get(charge_id, expand=["refunds"])["refunds"]["data"]
    ]


def _cancels(fake: FakeStripe, sub_id: str) -> int:
    path = f"/v1/subscriptions/{sub_id}"
    return sum(1 for r in fake.emulator.requests if (r.method, r.path) == ("DELETE", path))


async def _credit_notes(services: Services, charge_id: str) -> list[str]:
    async with services.db.read() as s:
        rows = await s.scalars(
            select(DocumentRequest.source_id).where(
                DocumentRequest.kind == "credit_note", DocumentRequest.charge_id == charge_id
            )
        )
        return list(rows)


async def _outcomes(services: Services, approval_id: str) -> list[tuple[str, str | None]]:
    async with services.db.read() as s:
        rows = await s.execute(
            select(AuditEntry.outcome, AuditEntry.gateway_request_id)
            .where(AuditEntry.approval_id == approval_id).order_by(AuditEntry.seq)
        )  # fmt: skip
        return [(o, r) for o, r in rows]


async def test_above_the_refund_limit_an_agent_waits_and_one_approval_cancels_and_refunds_once(
    services: Services, stripe: FakeStripe, agent: Actor, manager: Actor, other_manager: Actor
) -> None:
    sub_id, charge_id = await _subscribe(stripe, 9000)  # €90.00, a third used: €60.00 back
    asked = await say(
        services, agent, f"cancel stripe:{sub_id} now and-refund prorated reason: moving away"
    )
    assert asked.error is None and asked.approval is not None, asked.error
    assert asked.approval.state == "pending"
    (card,) = asked.cards
    assert card.title.startswith(
        f"Cancel {sub_id} now and refund €60.00 (prorated) of {charge_id}: waiting"
    ), card.title
    assert "above your limit of €50.00" in str(card.sections)
    assert _cancels(stripe, sub_id) == 0 and _refunds(stripe, charge_id) == []

    await asyncio.gather(
        say(services, manager, f"approve {asked.approval.id}"),
        say(services, other_manager, f"approve {asked.approval.id}"),
    )
    await say(services, manager, f"approve {asked.approval.id}")  # a late click
    view = await get(services, asked.approval.id)
    assert view.state.value == "succeeded", (view.error_code, view.error_message)
    assert _cancels(stripe, sub_id) == 1 and _refunds(stripe, charge_id) == [6000]
    assert stripe.emulator.get(sub_id)["status"] == "canceled"
    (refund,) = stripe.emulator.get(charge_id, expand=["refunds"])["refunds"]["data"]
    assert view.result_id == refund["id"]
    assert ("succeeded", refund["id"]) in await _outcomes(services, view.id)
    assert await _credit_notes(services, charge_id) == [refund["id"]]


async def test_within_the_refund_limit_an_agent_who_may_cancel_alone_does_it_at_once(
    services: Services, stripe: FakeStripe, agent: Actor
) -> None:
    sub_id, charge_id = await _subscribe(stripe, 1250, used_days=0)
    asked = await say(
        services, agent, f"cancel stripe:{sub_id} now and-refund last reason: requested_by_customer"
    )
    assert asked.approval is not None and asked.approval.state == "succeeded", asked.error
    assert _refunds(stripe, charge_id) == [1250]
    assert await services.budgets.spent(services.policy.person(agent.key), "EUR") == 1250
    assert len(await _credit_notes(services, charge_id)) == 1


async def test_a_crash_between_the_cancel_and_the_refund_is_recovered_with_one_refund(
    services: Services, stripe: FakeStripe, agent: Actor, manager: Actor,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    sub_id, charge_id = await _subscribe(stripe, 9000, used_days=0)
    asked = await say(
        services, agent, f"cancel stripe:{sub_id} now and-refund last reason: moving away"
    )
    assert asked.approval is not None and asked.approval.state == "pending"
    refund = stripe.gateway.refund

    async def crash(*args: Any, **kwargs: Any) -> Any:
        raise SystemExit("the process died between the cancel and the refund")

    monkeypatch.setattr(stripe.gateway, "refund", crash)
    with pytest.raises(SystemExit):
        await say(services, manager, f"approve {asked.approval.id}")
    assert (await get(services, asked.approval.id)).state.value == "executing"
    assert stripe.emulator.get(sub_id)["status"] == "canceled" and _refunds(stripe, charge_id) == []

    monkeypatch.setattr(stripe.gateway, "refund", refund)
    (view,) = await recover(services, older_than=timedelta(0))
    assert view.state.value == "succeeded", view.error_message
    assert await recover(services, older_than=timedelta(0)) == []
    assert _cancels(stripe, sub_id) == 1 and _refunds(stripe, charge_id) == [9000]
    assert await _credit_notes(services, charge_id) == [view.result_id]


async def test_a_charge_refunded_meanwhile_makes_the_request_stale_and_cancels_nothing(
    services: Services, stripe: FakeStripe, agent: Actor, manager: Actor
) -> None:
    sub_id, charge_id = await _subscribe(stripe, 9000, used_days=0)
    asked = await say(
        services, agent, f"cancel stripe:{sub_id} now and-refund last reason: moving away"
    )
    assert asked.approval is not None
    stripe.emulator.add_refund(charge_id, 100)  # someone refunds part of it meanwhile
    done = await say(services, manager, f"approve {asked.approval.id}")
    view = await get(services, asked.approval.id)
    # The charge changed under the request: it goes stale before anything is cancelled.
    assert view.state.value == "stale", (view.state, view.error_message, done.error)
    assert stripe.emulator.get(sub_id)["status"] == "active"


async def test_a_refund_refused_after_the_cancel_says_the_subscription_ended(
    services: Services, stripe: FakeStripe, agent: Actor, manager: Actor,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    sub_id, charge_id = await _subscribe(stripe, 9000, used_days=0)
    asked = await say(services, agent, f"cancel stripe:{sub_id} now and-refund last reason: moving")
    assert asked.approval is not None

    async def refused(*args: Any, **kwargs: Any) -> Any:
        raise GatewayError(ErrorCode.charge_disputed, "the payment is disputed", gateway="stripe")

    monkeypatch.setattr(stripe.gateway, "refund", refused)
    await say(services, manager, f"approve {asked.approval.id}")
    view = await get(services, asked.approval.id)
    assert view.state.value == "failed"
    assert view.error_message == (
        f"{sub_id} is canceled, but the refund of {charge_id} failed: the payment is disputed"
    )
    assert await _credit_notes(services, charge_id) == []


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("cancel stripe:{sub} period-end and-refund last reason: moving", "usage"),
        ("cancel stripe:{sub} now and-refund reason: moving", "usage"),
        ("cancel stripe:{sub} now and-refund double reason: moving", "invalid_arguments"),
    ],
)
async def test_a_refund_goes_only_with_now_and_a_kind(
    services: Services, stripe: FakeStripe, agent: Actor, line: str, code: str
) -> None:
    sub_id, charge_id = await _subscribe(stripe, 1250)
    said = await say(services, agent, line.format(sub=sub_id))
    assert said.error is not None and said.approval is None
    assert "\n" not in said.error.message
    assert _cancels(stripe, sub_id) == 0 and _refunds(stripe, charge_id) == []


async def test_a_subscription_with_no_paid_charge_says_so_before_approval(
    services: Services, stripe: FakeStripe, agent: Actor
) -> None:
    unpaid = stripe.env.subscription_ids[0]  # seeded without an invoice
    said = await say(
        services, agent, f"cancel stripe:{unpaid} now and-refund prorated reason: moving away"
    )
    assert said.error is not None and said.approval is None
    assert "no paid invoice" in said.error.message
    assert _cancels(stripe, unpaid) == 0


async def test_again_repeats_the_cancel_with_its_refund(
    services: Services, stripe: FakeStripe, agent: Actor
) -> None:
    sub_id, _ = await _subscribe(stripe, 9000, used_days=0)
    line = f"cancel stripe:{sub_id} now and-refund last reason: moving"
    first = await say(services, agent, line)
    twice = await say(services, agent, line)
    assert first.approval is not None and twice.approval is None and twice.error is not None
    (button,) = twice.cards[0].actions
    assert button.command == f"again {first.approval.id}"
    again = await say(services, agent, button.command)
    assert again.approval is not None and again.approval.id != first.approval.id
    repeated = await get(services, again.approval.id)
    assert repeated.params["refund"] == "last"
    assert repeated.amount == Money(minor=9000, currency="EUR")


async def test_a_ledger_subscription_no_charge_names_refunds_nothing_and_cancels_nothing(
    services: Services, agent: Actor
) -> None:
    said = await say(
        services, agent, "cancel ledger:sub_jane_pro now and-refund last reason: moving away"
    )
    assert said.error is not None and said.approval is None
    assert said.error.code == "invalid_state"
    assert "no paid charge in the ledger" in said.error.message
    assert (
        await services.gateways.get("ledger").get_subscription("sub_jane_pro")
    ).status.value == "active"


async def test_the_cancel_form_offers_a_refund_that_goes_only_with_now(
    services: Services, agent: Actor
) -> None:
    ctx = Context(services, agent, CHANNEL)
    form = await cancel_form(ctx, "sub_jane_pro")
    refund = next(f for f in form.fields if f.name == "refund")
    assert refund.default == "none"
    assert [c.value for c in refund.choices] == ["none", "last", "prorated"]
    said = await submit(
        ctx, form, {"when": "period-end", "refund": "last", "reason_text": "moving away"}
    )
    assert said.error is not None and said.error.code == "usage" and said.approval is None
