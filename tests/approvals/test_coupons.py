"""Coupons from the card: read from the gateway when asked, judged by the policy's caps per
role (a percentage off, an amount off per currency), applied or removed once, shown safely."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select, update

from bot.approvals.policy import Policy
from bot.chat.slack.render import reply_messages
from bot.gateways.registry import Gateways
from bot.services import Services
from bot.store.tables import ApprovalRow, LedgerCoupon, LedgerDiscount, LedgerOperation
from chargedesk_emulators.paypal import paypal_api
from tests.chat.test_slack_escaping import strings
from tests.conftest import say
from tests.fakes.paypal_env import paypal_gateway, seed_contract_payer

pytestmark = pytest.mark.approvals

SUB = "sub_jane_pro"  # 49.00 EUR a month, active (demo dataset)
HOSTILE = "*bold* <@U123> <!channel> <script>alert(1)</script>"


async def discounts(services: Services, target: str = SUB) -> list[str]:
    async with services.db.read() as s:
        return list(
            await s.scalars(
                select(LedgerDiscount.coupon_id).where(LedgerDiscount.target_id == target)
            )
        )


async def count(services: Services, table: Any) -> int:
    async with services.db.read() as s:
        return await s.scalar(select(func.count()).select_from(table)) or 0


def shown(reply: Any) -> str:
    return reply.cards[0].model_dump_json()


async def test_agent_applies_a_ten_percent_coupon_alone(services, agent):
    reply = await say(services, agent, f"coupon {SUB} WELCOME10 reason: goodwill late parcel")
    assert reply.error is None and reply.approval.state == "succeeded"
    assert reply.cards[0].title.startswith(
        "Coupon WELCOME10 (Welcome offer): 10% off for 3 months on sub_jane_pro"
    )
    assert "within your cap of 20% off" in shown(reply)
    assert await discounts(services) == ["WELCOME10"]
    card = await say(services, agent, "lookup jane.doe@example.com")
    assert "WELCOME10 (Welcome offer): 10% off for 3 months, on sub_jane_pro" in shown(card)


async def test_thirty_percent_waits_for_a_manager(services, agent, manager):
    reply = await say(services, agent, f"coupon {SUB} LOYAL30 reason: goodwill loyal customer")
    assert reply.approval.state == "pending"
    assert "30% off is above your cap of 20%: needs approval by 1 manager" in shown(reply)
    assert "LOYAL30 (Loyalty): 30% off forever" in reply.cards[0].title
    assert await discounts(services) == []
    approved = await say(services, manager, f"approve {reply.approval.id}")
    assert approved.approval.state == "succeeded"
    assert await discounts(services) == ["LOYAL30"]


async def test_a_manager_applies_up_to_their_own_cap_alone(services, manager):
    reply = await say(services, manager, f"coupon {SUB} LOYAL30 reason: goodwill loyal customer")
    assert reply.approval.state == "succeeded"
    services.policy.coupon.max_percent_off.pop("manager")
    services.policy.coupon.max_percent_off.pop("agent")
    other = await say(services, manager, "coupon cus_kowalski LOYAL30 reason: goodwill partner")
    assert other.approval.state == "pending"  # no cap for the role: every percentage waits
    assert "30% off: needs approval by 1 manager" in shown(other)


async def test_fixed_amount_coupons_are_capped_per_currency(services, agent):
    small = await say(services, agent, f"coupon {SUB} SORRY10 reason: goodwill outage")
    assert small.approval.state == "succeeded"
    assert "within your limit of €10.00" in shown(small)
    big = await say(services, agent, "coupon cus_kowalski SORRY25 reason: goodwill outage")
    assert big.approval.state == "pending"
    assert "€25.00 is above your limit of €10.00" in shown(big)
    assert await discounts(services, "cus_kowalski") == []
    # An amount off in another currency than the subscription is billed in: refused at once.
    usd = await say(services, agent, "coupon sub_john_team SORRY10 reason: goodwill outage")
    assert usd.error.code == "currency_mismatch"
    assert usd.error.message == (
        "coupon SORRY10 takes €10.00 off, but sub_john_team is billed in USD"
    )


async def test_an_unknown_code_is_a_one_line_error_and_changes_nothing(services, agent):
    reply = await say(services, agent, f"coupon {SUB} NOSUCHCODE reason: goodwill outage")
    assert reply.error.code == "not_found"
    assert reply.error.message == "no coupon NOSUCHCODE in the ledger"
    assert await count(services, ApprovalRow) == 0 and await discounts(services) == []
    malformed = await say(services, agent, f"coupon {SUB} <b>x</b> reason: goodwill outage")
    assert malformed.error.code == "invalid_arguments" and "\n" not in malformed.error.message
    nowhere = await say(services, agent, "coupon sub_nobody WELCOME10 reason: goodwill outage")
    assert nowhere.error.message == "no customer or subscription sub_nobody in any gateway"
    assert await count(services, ApprovalRow) == 0


async def test_removing_a_discount_needs_a_manager_and_removes_it(services, agent, manager):
    await say(services, agent, f"coupon {SUB} WELCOME10 reason: goodwill late parcel")
    reply = await say(services, agent, f"coupon {SUB} remove reason: other promotion ended")
    assert reply.approval.state == "pending"
    assert reply.cards[0].title.startswith("Remove the discount on sub_jane_pro")
    assert await discounts(services) == ["WELCOME10"]
    approved = await say(services, manager, f"approve {reply.approval.id}")
    assert approved.approval.state == "succeeded"
    assert await discounts(services) == []
    nothing = await say(services, manager, f"coupon {SUB} remove reason: other nothing left")
    assert nothing.error.code == "invalid_state"
    assert nothing.error.message == "sub_jane_pro has no discount to remove"


async def test_a_new_coupon_replaces_the_discount_the_subscription_had(services, manager):
    await say(services, manager, f"coupon {SUB} WELCOME10 reason: goodwill one")
    await say(services, manager, f"coupon {SUB} LOYAL30 reason: goodwill two")
    assert await discounts(services) == ["LOYAL30"]


async def test_approved_twice_or_asked_twice_applies_once(services, agent, manager, other_manager):
    reply = await say(services, agent, f"coupon {SUB} LOYAL30 reason: goodwill loyal customer")
    first = await say(services, manager, f"approve {reply.approval.id}")
    second = await say(services, other_manager, f"approve {reply.approval.id}")
    assert first.approval.state == "succeeded"
    assert second.error.code == "already_decided"
    again = await say(services, agent, f"coupon {SUB} LOYAL30 reason: goodwill loyal customer")
    assert again.error.code == "duplicate_request"  # the double click asks before repeating
    assert await discounts(services) == ["LOYAL30"]
    # The gateway itself: the same key twice is one operation, the same coupon again no change.
    ledger = services.gateways.get("ledger")
    await ledger.apply_coupon(SUB, "LOYAL30", idempotency_key=reply.approval.id)
    await ledger.apply_coupon(SUB, "LOYAL30", idempotency_key="apr_other")
    assert await discounts(services) == ["LOYAL30"]
    async with services.db.read() as s:
        ops = await s.scalar(
            select(func.count()).select_from(LedgerOperation)
            .where(LedgerOperation.idempotency_key == reply.approval.id)
        )  # fmt: skip
    assert ops == 1


async def test_a_coupon_changed_since_the_request_goes_stale(services, agent, manager):
    reply = await say(services, agent, f"coupon {SUB} LOYAL30 reason: goodwill loyal customer")
    async with services.db.write() as s:
        await s.execute(
            update(LedgerCoupon).where(LedgerCoupon.id == "LOYAL30").values(percent_off_bp=9000)
        )
    approved = await say(services, manager, f"approve {reply.approval.id}")
    assert approved.approval.state == "stale"  # 90 % off is not what the manager was shown
    assert await discounts(services) == []


@pytest.fixture
async def paypal(services: Services) -> AsyncIterator[str]:
    """PayPal beside the demo ledger; the payer's first subscription's ID."""
    with paypal_api() as api:
        seeded = seed_contract_payer(api)
        gateway = paypal_gateway(api)
        services.gateways = Gateways([*services.gateways, gateway], timeout=5)
        try:
            yield seeded.subscription_ids[0]
        finally:
            await gateway.close()


async def test_paypal_says_unsupported_with_its_reason_before_any_approval(services, paypal, agent):
    reply = await say(services, agent, f"coupon paypal:{paypal} WELCOME10 reason: goodwill x")
    assert reply.error.code == "unsupported"
    assert reply.error.message == (
        "the paypal gateway does not support coupon: PayPal subscriptions take no coupons: "
        "move the subscriber to a cheaper plan, or refund part of a payment"
    )
    assert await count(services, ApprovalRow) == 0


async def test_a_hostile_coupon_name_is_inert_in_slack(services, manager):
    async with services.db.write() as s:
        s.add(
            LedgerCoupon(id="EVIL", name=HOSTILE, percent_off_bp=500, duration="once", active=True)
        )
    reply = await say(services, manager, f"coupon {SUB} EVIL reason: goodwill test")
    card = await say(services, manager, "lookup jane.doe@example.com")
    assert reply.approval.state == "succeeded"
    for answer in (reply, card):
        texts = [t for m in reply_messages(answer) for t in (m.text, *strings(m.blocks))]
        assert any("&lt;@U123&gt;" in text for text in texts)  # shown, as typed
        for control in ("<@U123>", "<!channel>", "<script>"):
            assert not [text for text in texts if control in text]


def test_percent_caps_in_the_policy_are_checked_when_read():
    policy = Policy.model_validate({"coupon": {"max_percent_off": {"agent": 12.5}}})
    assert str(policy.coupon.max_percent_off["agent"]) == "12.5"  # exact, not a float
    for bad, words in (
        ({"agent": 150}, "not a percentage from 0 to 100"),
        ({"agent": "ten"}, "'ten' is not a percentage"),
        ({"viewer": 5}, "viewer is read-only"),
        ({"boss": 5}, "boss"),
    ):
        with pytest.raises(ValidationError, match=words):
            Policy.model_validate({"coupon": {"max_percent_off": bad}})
