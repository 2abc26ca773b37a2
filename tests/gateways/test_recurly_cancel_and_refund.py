"""`cancel <sub> now and-refund last|prorated` at Recurly: its own terminate, refund full or
partial, through the bot's approvals, with the refund Recurly made as the result."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from bot.actors import Actor
from bot.approvals.workflow import get
from bot.gateways.recurly.gateway import RecurlyGateway
from bot.gateways.registry import Gateways
from bot.services import Services
from chargedesk_emulators.recurly import RecurlyEmulator, recurly_api
from tests.conftest import say
from tests.fakes.recurly_env import Seeded, recurly_settings, seed_contract_account

pytestmark = pytest.mark.approvals


@pytest.fixture
async def recurly(services: Services) -> AsyncIterator[tuple[RecurlyEmulator, Seeded]]:
    with recurly_api() as api:
        seeded = seed_contract_account(api)
        gateway = RecurlyGateway(recurly_settings(api, timeout=2, max_retries=0), backoff=0.01)
        services.gateways = Gateways([*services.gateways, gateway], timeout=10)
        try:
            yield api, seeded
        finally:
            await gateway.close()


@pytest.mark.parametrize(("mode", "sent"), [("last", "full"), ("prorated", "partial")])
async def test_recurly_terminates_with_its_own_refund_once(
    services: Services,
    recurly: tuple[RecurlyEmulator, Seeded],
    manager: Actor,
    other_manager: Actor,
    mode: str,
    sent: str,
) -> None:
    api, seeded = recurly
    sub_id = seeded.subscription_ids[0]  # 20.00 USD a month, 10 days in
    (paid,) = api.subscriptions[sub_id].invoice_ids
    (payment,) = api.invoices[paid].transaction_ids
    asked = await say(
        services, manager,
        f"cancel recurly:{sub_id} now and-refund {mode} reason: requested_by_customer moving",
    )  # fmt: skip
    assert asked.approval is not None, asked.error
    view = await get(services, asked.approval.id)
    assert view.state.value == "succeeded", view.error_message  # a manager's, within limit
    assert asked.cards[0].title.startswith(f"Cancel {sub_id} now and refund $")
    (terminate,) = api.requests_to("DELETE", f"/subscriptions/{sub_id}")
    assert terminate.query == {"refund": sent}
    (refund,) = api.refunds_of(payment)
    assert view.result_id == refund.id
    assert view.amount is not None
    planned = Decimal(view.amount.minor) / 100
    if mode == "last":
        assert refund.amount == planned == Decimal("20.00")
    else:  # Recurly works it out itself as it terminates: the card's, to the cent
        assert Decimal("0") < planned < Decimal("20.00")
        assert abs(refund.amount - planned) <= Decimal("0.01")
    # Asked again (a late duplicate, or recovery): it ended, so nothing more is sent.
    again = await say(services, other_manager, f"approve {asked.approval.id}")
    assert again.error is not None
    assert len(api.requests_to("DELETE", f"/subscriptions/{sub_id}")) == 1
    assert len(api.refunds_of(payment)) == 1


async def test_a_recurly_subscription_without_a_paid_invoice_says_so_before_approval(
    services: Services, recurly: tuple[RecurlyEmulator, Seeded], agent: Actor
) -> None:
    api, seeded = recurly
    plan = api.add_plan("trial", "Trial", {"USD": "0.00"})
    sub_id = api.add_subscription(seeded.account_id, plan, "USD", days_ago=1)
    said = await say(
        services, agent, f"cancel recurly:{sub_id} now and-refund last reason: other x"
    )
    assert said.error is not None and said.approval is None
    assert "nothing to refund" in said.error.message
    assert api.requests_to("DELETE", f"/subscriptions/{sub_id}") == []
