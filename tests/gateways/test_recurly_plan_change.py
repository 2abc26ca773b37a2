"""Recurly plan changes through the official client against the emulator: Recurly's own
preview (`POST /subscriptions/{id}/change/preview`) is what the change bills, or the change
is refused; now (prorated by Recurly) or at the next bill date; once per key."""

from __future__ import annotations

import json

import pytest

from bot.gateways.base import ErrorCode, GatewayError
from bot.gateways.recurly.gateway import RecurlyGateway
from bot.money import Money
from chargedesk_emulators.recurly import RecurlyEmulator, recurly_api, schema_problems
from tests.fakes.emulated_gateway import fixtures
from tests.fakes.recurly_env import Seeded, recurly_gateway, seed_contract_account

api, seeded, gateway = fixtures(recurly_api, seed_contract_account, recurly_gateway)


def changes(api: RecurlyEmulator, sub_id: str) -> list[dict]:  # type: ignore[type-arg]
    """The bodies of every change (not preview) posted for the subscription."""
    return [
        json.loads(e.body)
        for e in api.requests_to("POST", f"/subscriptions/{sub_id}/change")
        if not e.path.endswith("/preview")
    ]


def change_invoices(api: RecurlyEmulator, sub_id: str) -> list[tuple[str, str]]:
    """(type, total) of the invoices the plan changes of a subscription made."""
    return [
        (i.type, str(api.lines[i.line_ids[0]].subtotal))
        for i in api.invoices.values()
        if i.origin == "immediate_change" and sub_id in i.subscription_ids
    ]


async def test_recurly_plan_change_now_bills_exactly_what_its_preview_said_once(
    api: RecurlyEmulator, gateway: RecurlyGateway, seeded: Seeded
) -> None:
    api.add_plan("pro-plus", "Pro plus", {"USD": "50.00"})
    sub_id = seeded.subscription_ids[0]  # 20.00 USD a month, 10 days in
    preview = await gateway.preview_plan_change(sub_id, "pro-plus", now=True, prorate=True)
    assert preview.recurring == Money(minor=5000, currency="USD")
    assert 0 < preview.due_now.minor < 3000  # the difference, for what is left of the month
    assert changes(api, sub_id) == []  # a preview changes nothing
    done = await gateway.change_plan(preview, idempotency_key="appr-plan")
    assert done.plan == "Pro plus" and done.amount == Money(minor=5000, currency="USD")
    assert changes(api, sub_id) == [{"timeframe": "now", "plan_code": "pro-plus", "quantity": 1}]
    assert change_invoices(api, sub_id) == [("charge", str(preview.due_now.decimal))]
    again = await gateway.change_plan(preview, idempotency_key="appr-plan")
    assert again.id == done.id and len(changes(api, sub_id)) == 1
    assert len(change_invoices(api, sub_id)) == 1
    assert schema_problems(api.exchanges, requests=True) == []


async def test_a_downgrade_now_is_credited_as_previewed(
    api: RecurlyEmulator, gateway: RecurlyGateway, seeded: Seeded
) -> None:
    api.add_plan("lite", "Lite", {"USD": "5.00"})
    sub_id = seeded.subscription_ids[0]
    preview = await gateway.preview_plan_change(sub_id, "lite:USD", now=True, prorate=True)
    assert preview.due_now.minor < 0
    await gateway.change_plan(preview, idempotency_key="appr-down")
    assert change_invoices(api, sub_id) == [("credit", str(-preview.due_now.decimal))]


async def test_a_change_at_renewal_waits_for_the_bill_date_and_charges_nothing_now(
    api: RecurlyEmulator, gateway: RecurlyGateway, seeded: Seeded
) -> None:
    api.add_plan("pro-plus", "Pro plus", {"USD": "50.00"})
    sub_id = seeded.subscription_ids[0]
    preview = await gateway.preview_plan_change(sub_id, "pro-plus", now=False, prorate=False)
    assert preview.due_now == Money(minor=0, currency="USD")
    done = await gateway.change_plan(preview, idempotency_key="appr-renewal")
    assert done.plan == "Pro monthly"  # until the bill date
    pending = api.subscriptions[sub_id].pending
    assert pending is not None and pending.plan.code == "pro-plus"
    assert pending.activate_at == api.subscriptions[sub_id].period_end
    await gateway.change_plan(preview, idempotency_key="appr-renewal")
    assert len(changes(api, sub_id)) == 1 and change_invoices(api, sub_id) == []
    assert changes(api, sub_id)[0]["timeframe"] == "bill_date"


async def test_a_change_whose_fresh_preview_differs_is_refused_and_sends_nothing(
    api: RecurlyEmulator, gateway: RecurlyGateway, seeded: Seeded
) -> None:
    api.add_plan("pro-plus", "Pro plus", {"USD": "50.00"})
    sub_id = seeded.subscription_ids[0]
    preview = await gateway.preview_plan_change(sub_id, "pro-plus", now=True, prorate=True)
    api.subscriptions[sub_id].quantity = 2  # seats added in Recurly's admin meanwhile
    with pytest.raises(GatewayError) as stale:
        await gateway.change_plan(preview, idempotency_key="appr-stale")
    assert stale.value.code == ErrorCode.invalid_state and "preview" in stale.value.message
    assert changes(api, sub_id) == [] and change_invoices(api, sub_id) == []


async def test_a_lost_answer_to_a_change_is_settled_by_reading_the_subscription(
    api: RecurlyEmulator, gateway: RecurlyGateway, seeded: Seeded
) -> None:
    api.add_plan("pro-plus", "Pro plus", {"USD": "50.00"})
    sub_id = seeded.subscription_ids[0]
    preview = await gateway.preview_plan_change(sub_id, "pro-plus", now=True, prorate=True)
    api.fail_next(1, 503, after=True, method="POST", path_prefix=f"/subscriptions/{sub_id}/change")
    done = await gateway.change_plan(preview, idempotency_key="appr-lost")
    assert done.plan == "Pro plus" and len(changes(api, sub_id)) == 1


async def test_what_recurly_cannot_do_is_refused_before_approval(
    api: RecurlyEmulator, gateway: RecurlyGateway, seeded: Seeded
) -> None:
    api.add_plan("pro-plus", "Pro plus", {"USD": "50.00"})
    api.add_plan("euro", "Euro", {"EUR": "10.00"})
    sub_id = seeded.subscription_ids[0]
    with pytest.raises(GatewayError) as unprorated:
        await gateway.preview_plan_change(sub_id, "pro-plus", now=True, prorate=False)
    assert unprorated.value.code == ErrorCode.rejected and "renewal" in unprorated.value.message
    with pytest.raises(GatewayError) as currency:
        await gateway.preview_plan_change(sub_id, "euro", now=True, prorate=True)
    assert currency.value.code == ErrorCode.currency_mismatch
    assert api.requests_to("POST", f"/subscriptions/{sub_id}/change") == []
