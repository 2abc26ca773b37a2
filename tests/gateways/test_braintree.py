"""The Braintree gateway against the Braintree emulator: the official SDK over HTTP (XML)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.gateways.base import ErrorCode, GatewayError, LookupQuery
from bot.gateways.braintree.gateway import BraintreeGateway
from bot.models import ChargeStatus, DisputeStatus, SubscriptionStatus
from bot.money import Money
from chargedesk_emulators.braintree import BraintreeEmulator, braintree_api
from tests.fakes.braintree_env import (
    EMAIL,
    Seeded,
    braintree_gateway,
    braintree_settings,
    seed_contract_customer,
)
from tests.fakes.emulated_gateway import fixtures


def usd(minor: int) -> Money:
    return Money(minor=minor, currency="USD")


api, seeded, gateway = fixtures(braintree_api, seed_contract_customer, braintree_gateway)


def credits_of(api: BraintreeEmulator, sale_id: str) -> list[str]:
    return list(api.transactions[sale_id].refund_ids)


# --- lookup --------------------------------------------------------------------------------


async def test_lookup_by_email_finds_the_stored_customer_and_guest_payments_apart(
    api: BraintreeEmulator, gateway: BraintreeGateway, seeded: Seeded
) -> None:
    guest_sale = api.add_sale(None, "12.00", email="Jane.Doe@Example.com", first_name="Jane")
    api.add_customer("someone.else@example.com", "Sam", "Else")
    profiles = await gateway.lookup(LookupQuery.parse("JANE.DOE@example.com"))
    assert [p.customer.id for p in profiles] == [seeded.customer_id, EMAIL]
    stored, guest = profiles
    assert stored.customer.name == "Jane Doe" and stored.customer.email == EMAIL
    assert guest_sale not in {c.id for c in stored.charges}
    assert [c.id for c in guest.charges] == [guest_sale]
    assert guest.charges[0].customer_id == EMAIL
    (search,) = api.requests_to("POST", "/customers/advanced_search_ids")
    assert b"jane.doe@example.com" in search.body


async def test_profile_maps_braintree_objects(
    api: BraintreeEmulator, gateway: BraintreeGateway
) -> None:
    customer = api.add_customer(
        "max@example.de",
        "Max",
        "Mustermann",
        address={
            "line1": "Hauptstraße 5",
            "postal_code": "80331",
            "city": "München",
            "country": "DE",
        },
    )
    api.add_plan("yearly", "Yearly", "119.00", "EUR", billing_frequency=12)
    sub = api.add_subscription(customer, "yearly", days_ago=30)
    trial = api.add_subscription(customer, "yearly", trial=True)
    disputed = api.add_sale(customer, "9.00", "EUR")
    dispute = api.add_dispute(disputed, reason="product_not_received")
    refunded = api.add_sale(customer, "40.00", "EUR")
    refund = api.refund_outside(refunded, "15.00")
    (profile,) = await gateway.lookup(LookupQuery.parse("max@example.de"))
    assert profile.customer.address is not None
    assert (profile.customer.address.city, profile.customer.address.country) == ("München", "DE")
    subscriptions = {s.id: s for s in profile.subscriptions}
    assert (subscriptions[sub].interval, subscriptions[sub].amount) == (
        "year",
        Money(minor=11900, currency="EUR"),
    )
    # A trial has no payment to tell its currency: its merchant account does (read once).
    assert subscriptions[trial].status == SubscriptionStatus.trialing
    assert subscriptions[trial].amount == Money(minor=11900, currency="EUR")
    assert len(api.requests_to("GET", "/merchant_accounts/")) == 1
    charges = {c.id: c for c in profile.charges}
    assert charges[disputed].status == ChargeStatus.disputed
    assert charges[refunded].refunded == Money(minor=1500, currency="EUR")
    (found,) = profile.disputes
    assert (found.id, found.charge_id, found.status) == (
        dispute,
        disputed,
        DisputeStatus.needs_response,
    )
    assert [(r.id, r.charge_id) for r in profile.refunds] == [(refund, refunded)]


async def test_lookup_by_each_kind_of_id(
    api: BraintreeEmulator, gateway: BraintreeGateway, seeded: Seeded
) -> None:
    refund = api.refund_outside(seeded.charge_id, "5.00")
    dispute = api.add_dispute(seeded.authorized_ids[0])
    guest_sale = api.add_sale(None, "7.00", email="guest@example.com")
    for object_id in (
        seeded.customer_id,
        seeded.charge_id,
        refund,
        seeded.subscription_ids[0],
        dispute,
    ):
        (profile,) = await gateway.lookup(LookupQuery.parse(object_id))
        assert profile.customer.id == seeded.customer_id, object_id
    (guest,) = await gateway.lookup(LookupQuery.parse(guest_sale))
    assert guest.customer.id == "guest@example.com"
    # A guest's customer ID is their e-mail, and looks them up again (as documents do).
    (again,) = await gateway.lookup(LookupQuery("id", "guest@example.com"))
    assert [c.id for c in again.charges] == [guest_sale]
    assert await gateway.lookup(LookupQuery.parse("nothing0")) == []


async def test_a_refund_is_not_a_charge(
    api: BraintreeEmulator, gateway: BraintreeGateway, seeded: Seeded
) -> None:
    refund = api.refund_outside(seeded.charge_id, "5.00")
    with pytest.raises(GatewayError) as info:
        await gateway.get_charge(refund)
    assert info.value.code == ErrorCode.not_found and "is a refund" in info.value.message


# --- refunds: settled, unsettled, settling -------------------------------------------------


async def test_refunding_an_unsettled_payment_in_full_voids_it_and_says_why(
    api: BraintreeEmulator, gateway: BraintreeGateway, seeded: Seeded
) -> None:
    sale = api.add_sale(seeded.customer_id, "80.00", status="submitted_for_settlement")
    result = await gateway.refund(sale, usd(8000), reason="duplicate", idempotency_key="k-void")
    assert (result.id, result.charge_id, result.amount, result.status) == (
        sale,
        sale,
        usd(8000),
        "voided",
    )
    assert "voided instead of refunded" in (result.reason or "")
    assert api.transactions[sale].status == "voided" and credits_of(api, sale) == []
    assert api.requests_to("POST", f"/transactions/{sale}/refund") == []
    # The same key again (a retry after a lost answer) gives the same outcome, voids nothing more.
    again = await gateway.refund(sale, usd(8000), reason="duplicate", idempotency_key="k-void")
    assert again.id == sale and len(api.requests_to("PUT", f"/transactions/{sale}/void")) == 1
    assert (await gateway.get_charge(sale)).status == ChargeStatus.voided


async def test_part_of_an_unsettled_payment_is_refused_until_it_settles(
    api: BraintreeEmulator, gateway: BraintreeGateway, seeded: Seeded
) -> None:
    sale = api.add_sale(seeded.customer_id, "80.00", status="submitted_for_settlement")
    with pytest.raises(GatewayError) as refused:
        await gateway.refund(sale, usd(3000), reason="goodwill", idempotency_key="k-part")
    assert refused.value.code == ErrorCode.not_settled and refused.value.raw_code == "91506"
    assert "settled" in refused.value.message and "80.00" in refused.value.message
    assert "voids the payment" in refused.value.message  # the full amount is offered instead
    assert api.transactions[sale].status == "submitted_for_settlement"
    api.settle(sale)
    part = await gateway.refund(sale, usd(3000), reason="goodwill", idempotency_key="k-part")
    assert part.amount == usd(3000) and credits_of(api, sale) == [part.id]


async def test_an_authorized_payment_is_voided_not_refunded(
    api: BraintreeEmulator, gateway: BraintreeGateway, seeded: Seeded
) -> None:
    with pytest.raises(GatewayError) as refused:
        await gateway.refund(
            seeded.authorized_ids[0], usd(5000), reason="x", idempotency_key="k-auth"
        )
    assert refused.value.code == ErrorCode.not_settled and "void it" in refused.value.message
    assert api.transactions[seeded.authorized_ids[0]].status == "authorized"


async def test_a_settling_payment_is_refused_with_braintrees_reason(
    api: BraintreeEmulator, gateway: BraintreeGateway, seeded: Seeded
) -> None:
    sale = api.add_sale(seeded.customer_id, "30.00", status="submitted_for_settlement")
    api.begin_settling(sale)
    with pytest.raises(GatewayError) as refused:
        await gateway.refund(sale, usd(1000), reason="x", idempotency_key="k-settling")
    assert (refused.value.code, refused.value.raw_code) == (ErrorCode.not_settled, "91574")
    assert "settling" in refused.value.message and refused.value.raw_message
    assert credits_of(api, sale) == []


async def test_an_account_that_refunds_while_settling_is_followed() -> None:
    with braintree_api(settling_refunds=True) as api:
        seeded = seed_contract_customer(api)
        sale = api.add_sale(seeded.customer_id, "30.00", status="submitted_for_settlement")
        api.begin_settling(sale)
        gw = BraintreeGateway(braintree_settings(api), backoff=0.01)
        try:
            refund = await gw.refund(sale, usd(1000), reason="x", idempotency_key="k")
        finally:
            await gw.close()
        assert credits_of(api, sale) == [refund.id]


async def test_braintrees_own_refusals_keep_its_code(
    api: BraintreeEmulator, gateway: BraintreeGateway, seeded: Seeded
) -> None:
    client = gateway._api
    with pytest.raises(GatewayError) as too_large:
        await client.refund(seeded.charge_id, "100.01", "chargedesk:x")
    assert (too_large.value.code, too_large.value.raw_code) == (ErrorCode.amount_too_large, "91521")
    assert too_large.value.raw_message == "Refund amount is too large."
    await client.refund(seeded.charge_id, "100.00", "chargedesk:y")
    with pytest.raises(GatewayError) as done:
        await client.refund(seeded.charge_id, "1.00", "chargedesk:z")
    assert (done.value.code, done.value.raw_code) == (ErrorCode.already_refunded, "91512")
    with pytest.raises(GatewayError) as unsettled:
        await client.refund(seeded.authorized_ids[0], "1.00", "chargedesk:w")
    assert (unsettled.value.code, unsettled.value.raw_code) == (ErrorCode.not_settled, "91506")


# --- refunds: exactly once -----------------------------------------------------------------


async def test_the_same_key_twice_gives_one_refund_found_by_its_order_id(
    api: BraintreeEmulator, gateway: BraintreeGateway, seeded: Seeded
) -> None:
    first = await gateway.refund(seeded.charge_id, usd(2500), reason="x", idempotency_key="apr-7")
    again = await gateway.refund(seeded.charge_id, usd(2500), reason="x", idempotency_key="apr-7")
    assert first.id == again.id and credits_of(api, seeded.charge_id) == [first.id]
    assert api.transactions[first.id].order_id == "chargedesk:apr-7"
    (post,) = api.requests_to("POST", f"/transactions/{seeded.charge_id}/refund")
    # Braintree's REST API keeps no idempotency key: none is sent, the order ID carries ours.
    assert b"api_request_key" not in post.body and b"<amount>25.00</amount>" in post.body


async def test_refund_retried_after_a_timeout_gives_one_refund(
    api: BraintreeEmulator, seeded: Seeded
) -> None:
    """Braintree refunds but its answer arrives after we gave up: we read ours back."""
    gw = BraintreeGateway(braintree_settings(api, timeout=0.3, max_retries=0), backoff=0.01)
    api.slow_next(1, 1.0, apply_first=True, path_contains="/refund")
    try:
        refund = await gw.refund(seeded.charge_id, usd(2500), reason="x", idempotency_key="k-slow")
        again = await gw.refund(seeded.charge_id, usd(2500), reason="x", idempotency_key="k-slow")
    finally:
        await gw.close()
    assert credits_of(api, seeded.charge_id) == [refund.id] and again.id == refund.id
    assert len(api.requests_to("POST", "/refund")) == 1


async def test_a_refund_still_in_flight_is_unknown_then_found_on_the_retry(
    api: BraintreeEmulator, seeded: Seeded
) -> None:
    """Not applied yet when we read back: the timeout stands (outcome unknown), and the retry
    (the executor's recovery, with the same key) finds the refund instead of making another."""
    gw = BraintreeGateway(braintree_settings(api, timeout=0.3, max_retries=0), backoff=0.01)
    api.slow_next(1, 0.8, apply_first=False, path_contains="/refund")
    try:
        with pytest.raises(GatewayError) as unknown:
            await gw.refund(seeded.charge_id, usd(2500), reason="x", idempotency_key="k-late")
        assert unknown.value.code == ErrorCode.timeout
        for _ in range(100):  # until Braintree has done it
            if credits_of(api, seeded.charge_id):
                break
            await asyncio.sleep(0.05)
        retried = await gw.refund(seeded.charge_id, usd(2500), reason="x", idempotency_key="k-late")
    finally:
        await gw.close()
    assert credits_of(api, seeded.charge_id) == [retried.id]
    assert len(api.requests_to("POST", "/refund")) == 1


async def test_a_lost_answer_after_a_server_error_is_read_back_too(
    api: BraintreeEmulator, gateway: BraintreeGateway, seeded: Seeded
) -> None:
    api.fail_next(1, 500, after=True, method="POST", path_contains="/refund")
    refund = await gateway.refund(seeded.charge_id, usd(1000), reason="x", idempotency_key="k5")
    assert credits_of(api, seeded.charge_id) == [refund.id]


async def test_over_refund_names_what_remains_and_sends_nothing(
    api: BraintreeEmulator, gateway: BraintreeGateway, seeded: Seeded
) -> None:
    api.refund_outside(seeded.charge_id, "70.00")
    with pytest.raises(GatewayError) as info:
        await gateway.refund(seeded.charge_id, usd(3001), reason="x", idempotency_key="k-over")
    assert info.value.code == ErrorCode.amount_too_large and "30.00" in info.value.message
    assert api.requests_to("POST", "/refund") == []


# --- capture and void ----------------------------------------------------------------------


async def test_capture_of_part_and_a_lost_answer(
    api: BraintreeEmulator, gateway: BraintreeGateway, seeded: Seeded
) -> None:
    authorized = seeded.authorized_ids[0]
    api.fail_next(1, 500, after=True, method="PUT", path_contains="/submit_for_settlement")
    captured = await gateway.capture(authorized, usd(2000), idempotency_key="k-cap")
    assert (captured.status, captured.amount_captured) == (ChargeStatus.succeeded, 2000)
    assert api.transactions[authorized].status == "submitted_for_settlement"
    again = await gateway.capture(authorized, usd(2000), idempotency_key="k-cap")
    assert again.amount_captured == 2000
    assert len(api.requests_to("PUT", "/submit_for_settlement")) == 1
    with pytest.raises(GatewayError) as other:
        await gateway.capture(authorized, usd(3000), idempotency_key="k-cap-2")
    assert other.value.code == ErrorCode.invalid_state


async def test_void_is_settled_by_a_reread_and_the_control_panels_void_is_not_ours(
    api: BraintreeEmulator, gateway: BraintreeGateway, seeded: Seeded
) -> None:
    first, second = seeded.authorized_ids
    api.slow_next(1, 1.0, apply_first=True, path_contains="/void")
    gw = BraintreeGateway(braintree_settings(api, timeout=0.3), backoff=0.01)
    try:
        voided = await gw.void(first, idempotency_key="k-void")
    finally:
        await gw.close()
    assert voided.status == ChargeStatus.voided
    api.void_outside(second)
    with pytest.raises(GatewayError) as info:
        await gateway.void(second, idempotency_key="k-void-2")
    assert info.value.code == ErrorCode.invalid_state


# --- subscriptions -------------------------------------------------------------------------


async def test_cancel_now_is_final_and_once(
    api: BraintreeEmulator, gateway: BraintreeGateway, seeded: Seeded
) -> None:
    sub_id = seeded.subscription_ids[0]
    sub = await gateway.cancel_subscription(
        sub_id, at_period_end=False, reason="x", idempotency_key="k-c"
    )
    assert sub.status == SubscriptionStatus.canceled and sub.canceled_at is not None
    again = await gateway.cancel_subscription(
        sub_id, at_period_end=False, reason="x", idempotency_key="k-c"
    )
    assert again.status == SubscriptionStatus.canceled
    assert len(api.requests_to("PUT", f"/subscriptions/{sub_id}/cancel")) == 1


async def test_cancel_at_period_end_ends_the_billing_cycles(
    api: BraintreeEmulator, gateway: BraintreeGateway, seeded: Seeded
) -> None:
    sub_id = seeded.subscription_ids[0]
    sub = await gateway.cancel_subscription(
        sub_id, at_period_end=True, reason="x", idempotency_key="k-e"
    )
    record = api.subscriptions[sub_id]
    assert (record.never_expires, record.cycles, record.current_cycle) == (False, 2, 2)
    assert sub.status == SubscriptionStatus.active and sub.cancel_at_period_end
    await gateway.cancel_subscription(sub_id, at_period_end=True, reason="x", idempotency_key="k-e")
    assert len(api.requests_to("PUT", f"/subscriptions/{sub_id}")) == 1


async def test_a_trial_cannot_end_at_period_end_and_says_so(
    api: BraintreeEmulator, gateway: BraintreeGateway, seeded: Seeded
) -> None:
    trial = api.add_subscription(seeded.customer_id, "pro-monthly", trial=True)
    with pytest.raises(GatewayError) as info:
        await gateway.cancel_subscription(
            trial, at_period_end=True, reason="x", idempotency_key="k-t"
        )
    assert info.value.code == ErrorCode.unsupported and "Cancel it now" in info.value.message
    assert api.subscriptions[trial].never_expires


async def test_a_subscription_cancelled_in_the_control_panel_is_not_cancelled_again(
    api: BraintreeEmulator, gateway: BraintreeGateway, seeded: Seeded
) -> None:
    sub_id = seeded.subscription_ids[1]
    api.cancel_outside(sub_id)
    with pytest.raises(GatewayError) as info:
        await gateway.cancel_subscription(
            sub_id, at_period_end=False, reason="x", idempotency_key="k-x"
        )
    assert info.value.code == ErrorCode.invalid_state and "already canceled" in info.value.message
    assert api.requests_to("PUT", "/cancel") == []


# --- transport -----------------------------------------------------------------------------


async def test_wrong_keys_say_which_settings_to_check_and_never_show_the_key(
    api: BraintreeEmulator, seeded: Seeded
) -> None:
    gw = BraintreeGateway(
        braintree_settings(api, private_key=SecretStr("not-the-key")), backoff=0.01
    )
    try:
        with pytest.raises(GatewayError) as info:
            await gw.get_charge(seeded.charge_id)
    finally:
        await gw.close()
    assert info.value.code == ErrorCode.rejected and "braintree.private_key" in info.value.message
    assert "not-the-key" not in info.value.message and api.private_key not in info.value.message


async def test_reads_are_retried_and_writes_are_not(
    api: BraintreeEmulator, gateway: BraintreeGateway, seeded: Seeded
) -> None:
    api.fail_next(2, 503, method="GET")
    assert (await gateway.get_charge(seeded.charge_id)).id == seeded.charge_id
    api.fail_next(1, 503, method="POST", path_contains="/refund")
    with pytest.raises(GatewayError) as info:
        await gateway.refund(seeded.charge_id, usd(100), reason="x", idempotency_key="k-503")
    assert info.value.code == ErrorCode.unavailable
    assert len(api.requests_to("POST", "/refund")) == 1 and credits_of(api, seeded.charge_id) == []


async def test_a_slow_braintree_times_out(api: BraintreeEmulator, seeded: Seeded) -> None:
    gw = BraintreeGateway(braintree_settings(api, timeout=0.3, max_retries=0), backoff=0.01)
    api.slow_next(1, 1.0, method="GET")
    try:
        with pytest.raises(GatewayError) as slow:
            await gw.get_charge(seeded.charge_id)
    finally:
        await gw.close()
    assert slow.value.code == ErrorCode.timeout


def test_dashboard_links_go_to_the_control_panel_of_the_environment(api: BraintreeEmulator) -> None:
    settings = braintree_settings(api, base_url=None, merchant_id="m123")
    sandbox = BraintreeGateway(settings)
    live = BraintreeGateway(settings.model_copy(update={"environment": "production"}))
    assert sandbox.dashboard_url("kj3hb8ew") == (
        "https://sandbox.braintreegateway.com/merchants/m123/transactions/kj3hb8ew"
    )
    assert live.dashboard_url(
        "kj3hb8ew",
    ).startswith("https://www.braintreegateway.com/")
    assert sandbox.dashboard_url("<script>") is None
    assert BraintreeGateway(braintree_settings(api)).dashboard_url("kj3hb8ew") is None


@pytest.mark.parametrize("base_url", ["http://127.0.0.1:9/api", "https://127.0.0.1:8443"])
def test_a_base_url_the_sdk_cannot_use_is_refused(api: BraintreeEmulator, base_url: str) -> None:
    with pytest.raises(GatewayError) as info:
        BraintreeGateway(braintree_settings(api, base_url=base_url))
    assert "braintree.base_url" in info.value.message


def test_braintree_is_enabled_by_its_three_credentials_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from bot.settings import Settings
    from bot.wiring import configured_gateways

    monkeypatch.setenv("CHARGEDESK_BRAINTREE__MERCHANT_ID", "m123")
    monkeypatch.setenv("CHARGEDESK_BRAINTREE__PUBLIC_KEY", "pub")
    without = Settings(data_dir=tmp_path, ledger={"enabled": False})
    assert configured_gateways(without, None) == []  # type: ignore[arg-type]
    monkeypatch.setenv("CHARGEDESK_BRAINTREE__PRIVATE_KEY", "very-private")
    configured = Settings(data_dir=tmp_path, ledger={"enabled": False})
    assert "very-private" not in repr(configured.braintree)
    (gateway,) = configured_gateways(configured, None)  # type: ignore[arg-type]
    assert isinstance(gateway, BraintreeGateway) and gateway.settings.environment == "sandbox"
