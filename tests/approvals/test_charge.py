"""`charge`: a new payment on a customer's saved card, off session, behind a manager's approval."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.gateways.registry import Gateways
from bot.money import Money
from bot.store.tables import ApprovalRow, LedgerCharge
from tests.conftest import say
from tests.fakes.stripe_env import FakeStripe

pytestmark = pytest.mark.approvals

WHY = "reason: asked by phone for two extra seats"


def intents(fake: FakeStripe, customer_id: str) -> list[dict[str, Any]]:
    return [i for i in fake.emulator._of("payment_intent") if i["customer"] == customer_id]


async def approvals(services: Any) -> int:
    async with services.db.read() as s:
        return int(await s.scalar(select(func.count()).select_from(ApprovalRow)) or 0)


async def asked(services: Any, actor: Any, customer_id: str, amount: str = "25.00 EUR") -> str:
    reply = await say(services, actor, f"charge stripe:{customer_id} {amount} Extra seats {WHY}")
    assert reply.error is None, reply.error
    assert reply.approval is not None and reply.approval.state == "pending"
    return reply.approval.id


async def test_an_off_session_charge_approved_twice_charges_once_at_stripe(
    services, stripe, agent, manager, other_manager
):
    customer = stripe.env.customer_id
    before = len(intents(stripe, customer))
    approval = await asked(services, agent, customer)
    first = await say(services, manager, f"approve {approval}")
    second = await say(services, other_manager, f"approve {approval}")
    assert first.approval.state == "succeeded"
    assert second.error is not None and second.error.code == "already_decided"
    made = intents(stripe, customer)[before:] if before else intents(stripe, customer)
    new = [i for i in made if i["metadata"].get("chargedesk_idempotency_key") == approval]
    assert len(new) == 1
    (intent,) = new
    assert (intent["amount"], intent["currency"], intent["status"]) == (2500, "eur", "succeeded")
    assert intent["payment_method"] == "pm_card_visa"  # the customer's default one
    assert "Extra seats" in (intent["description"] or "")


async def test_a_retried_charge_with_the_same_key_finds_the_first_one(services, stripe):
    customer = stripe.env.customer_id
    amount = Money(minor=1000, currency="EUR")
    first = await stripe.gateway.charge_saved_card(
        customer, amount, description="Order 7", idempotency_key="apr_0000aa"
    )
    stripe.emulator.forget_idempotency_keys()  # 24 hours later, at Stripe
    again = await stripe.gateway.charge_saved_card(
        customer, amount, description="Order 7", idempotency_key="apr_0000aa"
    )
    assert again.id == first.id
    keyed = [
        i for i in intents(stripe, customer) if i["metadata"].get("chargedesk_idempotency_key")
    ]
    assert len(keyed) == 1


async def charged_with(services: Any, fake: FakeStripe, card: str, agent: Any, manager: Any):
    """A new customer whose saved card is `card`, charged with a manager's approval."""
    customer = fake.emulator.add_customer(f"{card}@example.com", "Card Holder", payment_method=card)
    approval = await asked(services, agent, customer["id"])
    reply = await say(services, manager, f"approve {approval}")
    assert reply.approval.state == "failed"
    return reply, intents(fake, customer["id"])


async def test_a_declined_card_says_card_declined_with_stripes_decline_code(
    services, stripe, agent, manager
):
    card = "pm_card_visa_chargeDeclinedInsufficientFunds"
    reply, _ = await charged_with(services, stripe, card, agent, manager)
    assert reply.error.code == "card_declined"
    assert "insufficient_funds" in reply.error.message


async def test_a_card_wanting_3d_secure_says_the_customer_must_confirm(
    services, stripe, agent, manager
):
    reply, made = await charged_with(
        services, stripe, "pm_card_authenticationRequired", agent, manager
    )
    assert reply.error.code == "authentication_required"
    assert "3-D Secure" in reply.error.message and "request" in reply.error.message
    assert [i["status"] for i in made] == ["requires_payment_method"]


async def test_a_manager_needs_another_manager_to_charge(services, stripe, manager):
    approval = await asked(services, manager, stripe.env.customer_id)
    reply = await say(services, manager, f"approve {approval}")
    assert reply.error is not None  # four eyes: never their own
    assert (
        intents(stripe, stripe.env.customer_id)[-1]["metadata"].get("chargedesk_idempotency_key")
        != approval
    )


@pytest.mark.parametrize(
    "amount", ["12.345 EUR", "12.50", "-5 EUR", "0 EUR", "500.5 JPY", "١٢ EUR"]
)
async def test_a_bad_amount_is_a_one_line_error_and_nothing_changes(services, agent, amount):
    reply = await say(services, agent, f"charge ledger:cus_jane {amount} Extra seats {WHY}")
    assert reply.error is not None and reply.error.code in ("invalid_amount", "invalid_arguments")
    assert "\n" not in reply.error.message
    assert await approvals(services) == 0


async def test_a_charge_without_a_description_or_reason_is_refused(services, agent):
    for line in (
        "charge ledger:cus_jane 10.00 EUR reason: phone",
        "charge ledger:cus_jane 10 EUR x",
    ):
        reply = await say(services, agent, line)
        assert reply.error is not None and "\n" not in reply.error.message
    assert await approvals(services) == 0


async def test_a_ledger_charge_is_one_charge_row(services, agent, manager):
    reply = await say(services, agent, f"charge ledger:cus_jane 30.00 EUR Consulting hour {WHY}")
    approval = reply.approval.id
    for _ in range(2):
        await say(services, manager, f"approve {approval}")
    async with services.db.read() as s:
        rows = list(
            await s.scalars(
                select(LedgerCharge).where(LedgerCharge.description == "Consulting hour")
            )
        )
    assert [(r.amount, r.currency, r.status, r.customer_id) for r in rows] == [
        (3000, "EUR", "succeeded", "cus_jane")
    ]


async def test_a_customer_without_a_saved_card_is_told_to_send_a_request(
    services, stripe, agent, manager
):
    customer = stripe.emulator.add_customer("nocard@example.com", "No Card", payment_method=None)
    approval = await asked(services, agent, customer["id"])
    reply = await say(services, manager, f"approve {approval}")
    assert reply.error.code == "invalid_state" and "no saved card" in reply.error.message
    assert intents(stripe, customer["id"]) == []


@pytest.fixture
async def braintree(services: Any) -> AsyncIterator[Any]:
    from chargedesk_emulators.braintree import braintree_api
    from tests.fakes.braintree_env import braintree_gateway, seed_contract_customer

    with braintree_api() as api:
        seeded = seed_contract_customer(api)
        gateway = braintree_gateway(api)
        services.gateways = Gateways([*services.gateways, gateway], timeout=5)
        try:
            yield api, seeded.customer_id
        finally:
            await gateway.close()


def sales_of(api: Any, customer_id: str) -> list[Any]:
    return [
        t for t in api.transactions.values() if t.customer_id == customer_id and t.type == "sale"
    ]


async def test_a_braintree_charge_approved_twice_is_one_sale_read_back_by_order_id(
    services, braintree, agent, manager, other_manager
):
    api, customer = braintree
    before = len(sales_of(api, customer))
    reply = await say(services, agent, f"charge braintree:{customer} 25.00 USD Extra seats {WHY}")
    approval = reply.approval.id
    assert (await say(services, manager, f"approve {approval}")).approval.state == "succeeded"
    assert (await say(services, other_manager, f"approve {approval}")).error is not None
    gateway = services.gateways.get("braintree")
    again = await gateway.charge_saved_card(
        customer, Money(minor=2500, currency="USD"), description="Extra seats",
        idempotency_key=approval,
    )  # fmt: skip
    made = sales_of(api, customer)[before:]
    assert [(str(s.amount), s.status, s.id) for s in made] == [
        ("25.00", "submitted_for_settlement", again.id)
    ]


async def test_a_declined_braintree_sale_says_card_declined_with_its_code(
    services, braintree, agent, manager
):
    api, customer = braintree
    reply = await say(services, agent, f"charge braintree:{customer} 2001 USD Big order {WHY}")
    failed = await say(services, manager, f"approve {reply.approval.id}")
    assert failed.error.code == "card_declined" and "Insufficient Funds" in failed.error.message
    assert sales_of(api, customer)[-1].status == "processor_declined"


async def test_a_braintree_charge_in_a_currency_never_paid_in_is_refused(
    services, braintree, agent, manager
):
    api, customer = braintree
    before = len(sales_of(api, customer))
    reply = await say(services, agent, f"charge braintree:{customer} 10.00 EUR Order {WHY}")
    failed = await say(services, manager, f"approve {reply.approval.id}")
    assert failed.error.code == "currency_mismatch"
    assert len(sales_of(api, customer)) == before
