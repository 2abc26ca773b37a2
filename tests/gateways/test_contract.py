"""One contract, every gateway: the same behaviours against the ledger, Stripe and PayPal.

Each backend talks through its real SDK to an HTTP emulator on 127.0.0.1 (or,
for the ledger, to our own tables). Add a gateway by adding a backend below.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from bot.gateways.base import (
    Capability,
    ErrorCode,
    GatewayError,
    LookupQuery,
    Unsupported,
)
from bot.gateways.ledger.gateway import LedgerGateway
from bot.gateways.ledger.importer import import_data
from bot.money import Money
from bot.tax_ids import InvalidTaxId
from tests.gateways.contract import ContractEnv


@asynccontextmanager
async def ledger_env(db) -> AsyncIterator[ContractEnv]:  # type: ignore[no-untyped-def]
    created = "2026-11-01T10:00:00Z"
    await import_data(db, {
        "customers": [{"id": "cus_c", "email": "contract@example.com", "name": "Contract Test", "created": created}],
        "charges": [
            {"id": "ch_c_paid", "customer": "cus_c", "amount": 10000, "currency": "EUR", "status": "succeeded", "created": created},
            {"id": "ch_c_auth1", "customer": "cus_c", "amount": 5000, "currency": "EUR", "status": "authorized", "created": created},
            {"id": "ch_c_auth2", "customer": "cus_c", "amount": 5000, "currency": "EUR", "status": "authorized", "created": created},
        ],
        "subscriptions": [
            {"id": f"sub_c_{n}", "customer": "cus_c", "plan": "Pro", "status": "active", "amount": 4900, "currency": "EUR",
             "current_period_end": "2026-12-31T00:00:00Z"}
            for n in (1, 2)
        ],
    })  # fmt: skip
    yield ContractEnv(
        gateway=LedgerGateway(db), email="contract@example.com", customer_id="cus_c", currency="EUR",
        charge_id="ch_c_paid", authorized_ids=("ch_c_auth1", "ch_c_auth2"), subscription_ids=("sub_c_1", "sub_c_2"),
        unsupported=Capability.send_invoice,
    )  # fmt: skip


def _backend(module: str, factory: str):  # type: ignore[no-untyped-def]
    def make(db):  # type: ignore[no-untyped-def]
        return getattr(importlib.import_module(module), factory)()

    return make


BACKENDS = {
    "ledger": ledger_env,
    "stripe-emulator": _backend("tests.fakes.stripe_env", "stripe_fake_env"),
    "stripe-localstripe": _backend("tests.fakes.stripe_env", "stripe_localstripe_env"),
    "paypal-emulator": _backend("tests.fakes.paypal_env", "paypal_env"),
    "recurly-emulator": _backend("tests.fakes.recurly_env", "recurly_env"),
    "braintree-emulator": _backend("tests.fakes.braintree_env", "braintree_env"),
    "woocommerce-emulator": _backend("tests.fakes.woocommerce_env", "woocommerce_env"),
}


@pytest.fixture(params=list(BACKENDS))
async def env(request, services) -> AsyncIterator[ContractEnv]:  # type: ignore[no-untyped-def]
    async with BACKENDS[request.param](services.db) as contract_env:
        behaviour = request.node.originalname.removeprefix("test_")
        if behaviour in contract_env.skips:
            pytest.skip(f"{request.param}: {contract_env.skips[behaviour]}")
        try:
            yield contract_env
        finally:
            await contract_env.gateway.close()


def money(env: ContractEnv, text: str) -> Money:
    from bot.money import parse_money

    return parse_money(text, env.currency)


async def test_find_by_email(env):
    profiles = await env.gateway.lookup(LookupQuery.parse(env.email.upper()))
    assert [p.customer.id for p in profiles] == [env.customer_id]
    assert profiles[0].customer.email == env.email


async def test_profile(env):
    (profile,) = await env.gateway.lookup(LookupQuery.parse(env.email))
    charges = {c.id: c for c in profile.charges}
    assert charges[env.charge_id].status.value == "succeeded"
    assert charges[env.charge_id].amount == money(env, "100.00")
    assert {charges[i].status.value for i in env.authorized_ids} == {"authorized"}
    assert {s.id for s in profile.subscriptions} >= set(env.subscription_ids)
    assert all(
        s.status.value == "active" for s in profile.subscriptions if s.id in env.subscription_ids
    )


async def test_full_and_partial_refund(env):
    partial = await env.gateway.refund(
        env.charge_id, money(env, "30.00"), reason="goodwill", idempotency_key="ct-partial"
    )
    assert partial.amount == money(env, "30.00")
    charge = await env.gateway.get_charge(env.charge_id)
    assert (charge.status.value, charge.refunded) == ("partially_refunded", money(env, "30.00"))
    assert charge.refundable == money(env, "70.00")
    await env.gateway.refund(
        env.charge_id, charge.refundable, reason="duplicate", idempotency_key="ct-rest"
    )
    charge = await env.gateway.get_charge(env.charge_id)
    assert (charge.status.value, charge.refunded) == ("refunded", money(env, "100.00"))


async def test_over_refund_refused(env):
    await env.gateway.refund(
        env.charge_id, money(env, "60.00"), reason="goodwill", idempotency_key="ct-first"
    )
    with pytest.raises(GatewayError) as info:
        await env.gateway.refund(
            env.charge_id, money(env, "40.01"), reason="goodwill", idempotency_key="ct-over"
        )
    assert info.value.code == ErrorCode.amount_too_large
    assert "40.00" in info.value.message  # says what remains
    charge = await env.gateway.get_charge(env.charge_id)
    assert charge.refunded == money(env, "60.00")


async def test_same_idempotency_key_twice_gives_one_refund(env):
    first = await env.gateway.refund(
        env.charge_id, money(env, "10.00"), reason="goodwill", idempotency_key="apr_contract01"
    )
    again = await env.gateway.refund(
        env.charge_id, money(env, "10.00"), reason="goodwill", idempotency_key="apr_contract01"
    )
    assert first.id == again.id
    charge = await env.gateway.get_charge(env.charge_id)
    assert charge.refunded == money(env, "10.00")


async def test_capture_and_void(env):
    captured = await env.gateway.capture(
        env.authorized_ids[0], money(env, "20.00"), idempotency_key="ct-capture"
    )
    assert captured.status.value == "succeeded"
    assert captured.amount_captured == money(env, "20.00").minor
    voided = await env.gateway.void(env.authorized_ids[1], idempotency_key="ct-void")
    assert voided.status.value == "voided"
    with pytest.raises(GatewayError) as info:
        await env.gateway.void(env.authorized_ids[0], idempotency_key="ct-void-again")
    assert info.value.code == ErrorCode.invalid_state


async def test_cancel_now(env):
    sub = await env.gateway.cancel_subscription(
        env.subscription_ids[0],
        at_period_end=False,
        reason="requested_by_customer",
        idempotency_key="ct-cancel-now",
    )
    assert sub.status.value == "canceled"
    assert (await env.gateway.get_subscription(env.subscription_ids[0])).status.value == "canceled"


async def test_cancel_at_period_end(env):
    sub = await env.gateway.cancel_subscription(
        env.subscription_ids[1],
        at_period_end=True,
        reason="requested_by_customer",
        idempotency_key="ct-cancel-end",
    )
    assert sub.status.value == "active" and sub.cancel_at_period_end


async def test_unknown_ids_are_not_found(env):
    with pytest.raises(GatewayError) as info:
        await env.gateway.get_charge("ch_does_not_exist_0")
    assert info.value.code == ErrorCode.not_found
    assert await env.gateway.lookup(LookupQuery.parse("nobody-at-all@example.com")) == []


async def test_tax_id_add(env):
    gateway = env.gateway
    if Capability.tax_id not in gateway.capabilities:
        with pytest.raises(Unsupported):
            await gateway.add_tax_id(env.customer_id, "DE136695976", idempotency_key="ct-tax")
        return
    first = await gateway.add_tax_id(env.customer_id, "de 136 695 976", idempotency_key="ct-tax-1")
    assert (first.type, first.value, first.country) == ("eu_vat", "DE136695976", "DE")
    changed = await gateway.add_tax_id(
        env.customer_id, "FR40303265045", idempotency_key="ct-tax-2", replace=True
    )
    again = await gateway.add_tax_id(
        env.customer_id, "FR40303265045", idempotency_key="ct-tax-2", replace=True
    )
    assert again.id == changed.id
    with pytest.raises(InvalidTaxId) as info:
        await gateway.add_tax_id(env.customer_id, "FR40303265046", idempotency_key="ct-tax-3")
    assert info.value.code == ErrorCode.invalid_tax_id and "FR40303265046" in info.value.message
    (profile,) = await gateway.lookup(LookupQuery.parse(env.email))
    assert [(t.type, t.value) for t in profile.tax_ids] == [("eu_vat", "FR40303265045")]


async def test_card_update_url_or_unsupported(env):
    gateway = env.gateway
    back = "https://billing.example.com/portal/done"
    if Capability.hosted_card_update not in gateway.capabilities:
        with pytest.raises(Unsupported) as unsupported:
            await gateway.card_update_url(env.customer_id, return_url=back)
        assert unsupported.value.message == (
            f"the {gateway.name} gateway does not support hosted card update"
        )
        return
    url = await gateway.card_update_url(env.customer_id, return_url=back)
    assert url.startswith(("https://", "http://127.0.0.1:"))
    with pytest.raises(GatewayError) as info:
        await gateway.card_update_url("cus_does_not_exist_0", return_url=back)
    assert info.value.code == ErrorCode.not_found


async def test_unsupported_capability_is_a_clear_error(env):
    if env.unsupported is None:
        pytest.skip("this gateway supports every capability")
    assert env.unsupported not in env.gateway.capabilities
    calls = {
        Capability.create_subscription: lambda g: g.create_subscription(
            env.customer_id, "price_x", idempotency_key="k"
        ),
        Capability.coupon: lambda g: g.apply_coupon(
            env.customer_id, "WELCOME", idempotency_key="k"
        ),
        Capability.tax_id: lambda g: g.add_tax_id(
            env.customer_id, "DE136695976", idempotency_key="k"
        ),
        Capability.send_invoice: lambda g: g.send_invoice("in_x", idempotency_key="k"),
    }
    with pytest.raises(Unsupported) as info:
        await calls[env.unsupported](env.gateway)
    assert (
        info.value.message
        == f"the {env.gateway.name} gateway does not support {env.unsupported.value.replace('_', ' ')}"
    )
