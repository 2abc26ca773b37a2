"""Charging a Recurly account's saved billing info (`POST /purchases`, one charge line) through
the official client against the emulator: one charge per key however often retried or
whatever answer is lost; a decline says Recurly's decline code."""

from __future__ import annotations

import json

import pytest

from bot.gateways.base import ErrorCode, GatewayError
from bot.gateways.recurly.gateway import RecurlyGateway
from bot.models import ChargeStatus
from bot.money import Money
from chargedesk_emulators.recurly import RecurlyEmulator, recurly_api, schema_problems
from tests.fakes.emulated_gateway import fixtures
from tests.fakes.recurly_env import Seeded, recurly_gateway, seed_contract_account

api, seeded, gateway = fixtures(recurly_api, seed_contract_account, recurly_gateway)


def purchases(api: RecurlyEmulator) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(e.body) for e in api.requests_to("POST", "/purchases")]


def payments(api: RecurlyEmulator, account_id: str, amount: str) -> list[str]:
    """The account's successful payments of `amount`."""
    return [
        t.id
        for t in api.transactions.values()
        if t.account_id == account_id and t.type == "purchase" and str(t.amount) == amount
        and t.status == "success"
    ]  # fmt: skip


async def test_recurly_charges_the_saved_card_once_however_often_retried(
    api: RecurlyEmulator, gateway: RecurlyGateway, seeded: Seeded
) -> None:
    amount = Money(minor=4250, currency="USD")
    charge = await gateway.charge_saved_card(
        seeded.account_id, amount, description="Extra setup", idempotency_key="appr-charge"
    )
    again = await gateway.charge_saved_card(
        seeded.account_id, amount, description="Extra setup", idempotency_key="appr-charge"
    )
    assert again.id == charge.id and payments(api, seeded.account_id, "42.50") == [charge.id]
    assert (charge.amount, charge.status, charge.customer_id) == (
        amount, ChargeStatus.succeeded, seeded.account_id,
    )  # fmt: skip
    (body,) = purchases(api)
    assert body["account"] == {"code": "jane-doe"} and body["collection_method"] == "automatic"
    assert body["line_items"] == [{
        "type": "charge", "currency": "USD", "unit_amount": 42.5, "quantity": 1,
        "description": "Extra setup",
    }]  # fmt: skip
    assert body["customer_notes"].startswith("Charge reference cd-")
    assert schema_problems(api.exchanges, requests=True) == []


async def test_a_lost_answer_is_found_by_the_invoices_reference(
    api: RecurlyEmulator, gateway: RecurlyGateway, seeded: Seeded
) -> None:
    api.fail_next(1, 503, after=True, method="POST", path_prefix="/purchases")
    charge = await gateway.charge_saved_card(
        seeded.account_id, Money(minor=1234, currency="USD"), description="Top-up",
        idempotency_key="appr-lost",
    )  # fmt: skip
    assert len(purchases(api)) == 1 and payments(api, seeded.account_id, "12.34") == [charge.id]


@pytest.mark.parametrize(
    ("card", "code", "raw"),
    [
        ("insufficient_funds", ErrorCode.card_declined, "insufficient_funds"),
        ("do_not_honor", ErrorCode.card_declined, "do_not_honor"),
        ("requires_3d_secure", ErrorCode.authentication_required, "requires_3d_secure"),
    ],
)
async def test_a_decline_says_recurlys_decline_code_and_leaves_no_invoice(
    api: RecurlyEmulator, gateway: RecurlyGateway, seeded: Seeded, card: str, code: ErrorCode,
    raw: str,
) -> None:  # fmt: skip
    api.set_card(seeded.account_id, card)
    invoices = len(api.invoices)
    with pytest.raises(GatewayError) as declined:
        await gateway.charge_saved_card(
            seeded.account_id, Money(minor=1234, currency="USD"), description="Top-up",
            idempotency_key=f"appr-{card}",
        )  # fmt: skip
    assert (declined.value.code, declined.value.raw_code) == (code, raw)
    assert len(api.invoices) == invoices and payments(api, seeded.account_id, "12.34") == []


async def test_no_billing_info_or_an_impossible_amount_charges_nothing(
    api: RecurlyEmulator, gateway: RecurlyGateway, seeded: Seeded
) -> None:
    api.set_card(seeded.account_id, None)
    with pytest.raises(GatewayError) as no_card:
        await gateway.charge_saved_card(
            seeded.account_id, Money(minor=1234, currency="USD"), description="x",
            idempotency_key="k1",
        )  # fmt: skip
    assert no_card.value.raw_code == "validation"
    with pytest.raises(GatewayError) as zero:
        await gateway.charge_saved_card(
            seeded.account_id, Money(minor=0, currency="USD"), description="x", idempotency_key="k2"
        )
    assert zero.value.code == ErrorCode.rejected
    assert len(purchases(api)) == 1  # the one without billing info; nothing paid
