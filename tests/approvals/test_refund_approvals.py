"""The approval policy and workflow, driven through the same commands agents type."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from bot.actors import Role
from bot.approvals.policy import ActionPolicy, Policy
from bot.approvals.workflow import now
from bot.money import Money
from bot.services import Services
from bot.store.tables import ApprovalRow, LedgerRefund
from tests.conftest import person, say

pytestmark = pytest.mark.approvals

CHARGE = "ch_jane_1"  # 120.00 EUR, succeeded, nothing refunded (demo dataset)


async def refunds_of(services: Services, charge: str) -> int:
    async with services.db.read() as s:
        return await s.scalar(
            select(func.coalesce(func.sum(LedgerRefund.amount), 0)).where(
                LedgerRefund.charge_id == charge
            )
        )


async def test_refund_within_agent_limit_executes_at_once(services, agent):
    reply = await say(services, agent, f"refund {CHARGE} 20.00 reason: goodwill late parcel")
    assert reply.error is None
    assert reply.approval.state == "succeeded"
    assert await refunds_of(services, CHARGE) == 2000


async def test_refund_above_agent_limit_waits_for_a_manager(services, agent, manager):
    reply = await say(services, agent, f"refund {CHARGE} 80 reason: duplicate charged twice")
    assert reply.approval.state == "pending"
    assert await refunds_of(services, CHARGE) == 0
    approved = await say(services, manager, f"approve {reply.approval.id}")
    assert approved.approval.state == "succeeded"
    assert await refunds_of(services, CHARGE) == 8000


async def test_refund_past_daily_budget_waits_for_a_manager(services, agent, other_agent):
    services.policy.refund.daily_budget["agent"]["EUR"] = Money(minor=6000, currency="EUR")
    first = await say(services, agent, f"refund {CHARGE} 40 reason: goodwill one")
    assert first.approval.state == "succeeded"
    over = await say(services, agent, f"refund {CHARGE} 30 reason: goodwill two")
    assert over.approval.state == "pending"
    assert "daily budget of €60.00 is used up" in over.cards[0].model_dump_json()
    # The budget is per person: a colleague still has theirs.
    colleague = await say(services, other_agent, f"refund {CHARGE} 30 reason: goodwill three")
    assert colleague.approval.state == "succeeded"
    assert await services.budgets.spent(agent.key, "EUR") == 4000


async def test_requester_cannot_approve_own_refund(services, manager, other_manager):
    # A manager above their own limit still needs someone else.
    services.policy.refund.limits.pop("manager", None)
    reply = await say(services, manager, f"refund {CHARGE} 100 reason: duplicate charged twice")
    assert reply.approval.state == "pending"
    own = await say(services, manager, f"approve {reply.approval.id}")
    assert own.error.code == "own_request"
    assert "your own request" in own.error.message
    assert await refunds_of(services, CHARGE) == 0
    other = await say(services, other_manager, f"approve {reply.approval.id}")
    assert other.approval.state == "succeeded"


async def test_manager_cannot_deny_own_request_either(services, manager):
    services.policy.refund.limits.pop("manager", None)
    reply = await say(services, manager, f"refund {CHARGE} 100 reason: duplicate x")
    denied = await say(services, manager, f"deny {reply.approval.id} reason: changed my mind")
    assert denied.error.code == "own_request"


async def test_non_manager_cannot_approve(services, agent, other_agent):
    reply = await say(services, agent, f"refund {CHARGE} 80 reason: duplicate charged twice")
    attempt = await say(services, other_agent, f"approve {reply.approval.id}")
    assert attempt.error.code == "forbidden"
    assert await refunds_of(services, CHARGE) == 0


async def test_n_of_m_needs_n_distinct_approvers(services, agent, manager, other_manager):
    services.policy.refund = ActionPolicy(approvals=2, reason_codes=[])
    reply = await say(services, agent, f"refund {CHARGE} 30 reason: two managers please")
    first = await say(services, manager, f"approve {reply.approval.id}")
    assert first.approval.state == "pending"
    again = await say(services, manager, f"approve {reply.approval.id}")
    assert again.error.code == "already_voted"
    assert await refunds_of(services, CHARGE) == 0
    second = await say(services, other_manager, f"approve {reply.approval.id}")
    assert second.approval.state == "succeeded"
    assert await refunds_of(services, CHARGE) == 3000


async def test_denied_request_never_executes(services, agent, manager, other_manager):
    reply = await say(services, agent, f"refund {CHARGE} 80 reason: duplicate charged twice")
    no_reason = await say(services, manager, f"deny {reply.approval.id}")
    assert (
        no_reason.error.code == "invalid_arguments"
        and "reason is required" in no_reason.error.message
    )
    denied = await say(
        services, manager, f"deny {reply.approval.id} reason: customer was not charged twice"
    )
    assert denied.approval.state == "denied"
    late = await say(services, other_manager, f"approve {reply.approval.id}")
    assert late.error.code == "already_decided"
    assert await refunds_of(services, CHARGE) == 0


async def test_expired_request_never_executes(services, agent, manager):
    reply = await say(services, agent, f"refund {CHARGE} 80 reason: duplicate charged twice")
    async with services.db.write() as s:
        await s.execute(
            update(ApprovalRow)
            .where(ApprovalRow.id == reply.approval.id)
            .values(expires_at=now() - timedelta(minutes=1))
        )
    late = await say(services, manager, f"approve {reply.approval.id}")
    assert late.error.code == "expired"
    listing = await say(services, manager, f"approvals {reply.approval.id}")
    assert listing.approval.state == "expired"
    assert await refunds_of(services, CHARGE) == 0


async def test_an_approval_that_no_longer_fits_the_refundable_amount_goes_stale(
    services, agent, manager
):
    pending = await say(services, agent, f"refund {CHARGE} 80 reason: duplicate charged twice")
    quick = await say(services, agent, f"refund {CHARGE} 45 reason: goodwill meanwhile")
    assert quick.approval.state == "succeeded"  # 75.00 left: the 80.00 no longer fits
    approved = await say(services, manager, f"approve {pending.approval.id}")
    assert approved.approval.state == "stale"
    assert await refunds_of(services, CHARGE) == 4500


async def test_partial_refunds_add_up_and_over_refund_names_what_remains(services, agent, manager):
    for amount in ("40", "30.50", "45"):
        reply = await say(services, agent, f"refund {CHARGE} {amount} reason: goodwill part")
        assert reply.approval.state == "succeeded", reply.error
    too_much = await say(services, agent, f"refund {CHARGE} 5 reason: goodwill more")
    assert too_much.error.code == "amount_too_large"
    assert "€4.50" in too_much.error.message
    rest = await say(services, agent, f"refund {CHARGE} reason: goodwill the rest")
    assert rest.approval.state == "succeeded"
    assert await refunds_of(services, CHARGE) == 12000
    done = await say(services, agent, f"refund {CHARGE} 1 reason: goodwill again")
    assert done.error.code == "already_refunded"


async def test_reason_must_start_with_a_policy_code(services, agent):
    reply = await say(services, agent, f"refund {CHARGE} 10 reason: because I said so")
    assert reply.error.code == "reason_code"
    assert "duplicate" in reply.error.message
    assert await refunds_of(services, CHARGE) == 0


async def test_safe_default_policy_needs_a_manager_for_everything(services, agent):
    services.policy = Policy()
    reply = await say(services, agent, f"refund {CHARGE} 0.01 reason: anything")
    assert reply.approval.state == "pending"


async def test_cancel_at_period_end_and_now(services, agent, manager):
    reply = await say(
        services, agent, "cancel sub_jane_pro reason: requested_by_customer moving on"
    )
    assert reply.approval.state == "pending"
    done = await say(services, manager, f"approve {reply.approval.id}")
    assert done.approval.state == "succeeded"
    sub = await services.gateways.get("ledger").get_subscription("sub_jane_pro")
    assert sub.cancel_at_period_end and sub.status.value == "active"
    again = await say(services, agent, "cancel sub_jane_pro reason: requested_by_customer again")
    assert again.error.code == "invalid_state"
    now_reply = await say(services, manager, "cancel sub_jane_pro now reason: fraudulent card")
    assert (
        now_reply.approval.state == "succeeded"
    )  # managers may cancel alone under the shipped policy
    sub = await services.gateways.get("ledger").get_subscription("sub_jane_pro")
    assert sub.status.value == "canceled"


async def test_capture_and_void_authorizations(services, agent, manager):
    capture = await say(
        services, agent, "capture ch_jane_auth 10 reason: shipped part of the order"
    )
    assert capture.approval.state == "succeeded", capture.error
    charge = await services.gateways.get("ledger").get_charge("ch_jane_auth")
    assert charge.status.value == "succeeded" and charge.amount_captured == 1000
    card = (await say(services, agent, "lookup ch_jane_auth")).cards[0]
    assert "€10.00 of €250.00" in card.model_dump_json()
    void = await say(services, agent, "void ch_jane_auth reason: order cancelled")
    assert void.error.code == "invalid_state"


async def test_void_releases_an_authorization_and_agents_may_do_it_alone(services, agent):
    void = await say(services, agent, "void ch_jane_auth reason: order cancelled before shipping")
    assert void.approval.state == "succeeded", void.error
    charge = await services.gateways.get("ledger").get_charge("ch_jane_auth")
    assert (charge.status.value, charge.amount_captured) == ("voided", 0)
    capture = await say(services, agent, "capture ch_jane_auth reason: too late")
    assert capture.error.code == "invalid_state"


async def test_every_step_is_in_the_audit_log(services, agent, manager):
    reply = await say(services, agent, f"refund {CHARGE} 80 reason: duplicate charged twice")
    await say(services, manager, f"approve {reply.approval.id}")
    from bot.audit.log import AuditFilter, query

    entries = await query(services.db, AuditFilter(approval_id=reply.approval.id))
    outcomes = [e.outcome for e in reversed(entries)]
    assert outcomes == ["requested", "approved", "executing", "succeeded"]
    last = entries[0]
    assert (last.actor_id, last.amount, last.currency, last.gateway) == (
        "maria",
        8000,
        "EUR",
        "ledger",
    )
    assert last.approvers == ["Maria (test:maria)"]
    assert last.reason == "duplicate charged twice"
    assert last.gateway_request_id and last.gateway_request_id.startswith("re_")


async def test_refusals_of_rights_are_audited(services, manager, other_manager):
    services.policy.refund.limits.pop("manager", None)
    reply = await say(services, manager, f"refund {CHARGE} 100 reason: duplicate x")
    await say(services, manager, f"approve {reply.approval.id}")
    from bot.audit.log import AuditFilter, query

    entries = await query(services.db, AuditFilter(approval_id=reply.approval.id))
    assert entries[0].outcome == "refused"
    assert "own request" in entries[0].detail["why"]


async def test_admin_counts_as_manager(services, agent):
    admin = person("ada", Role.admin)
    reply = await say(services, agent, f"refund {CHARGE} 80 reason: duplicate charged twice")
    assert (
        await say(services, admin, f"approve {reply.approval.id}")
    ).approval.state == "succeeded"
