"""The WooCommerce gateway against the emulated store: lookups, refunds, subscriptions, errors.

Authentication (OAuth 1.0a over HTTP, Basic over HTTPS) is in test_woocommerce_auth.py,
webhooks in test_woocommerce_webhooks.py; the contract suite runs this gateway too.
"""

from __future__ import annotations

import json
from decimal import Decimal
from urllib.parse import parse_qs

import pytest

from bot.gateways.base import Capability, ErrorCode, GatewayError, LookupQuery, Unsupported
from bot.gateways.woocommerce.gateway import WooCommerceGateway
from bot.gateways.woocommerce.mapping import amount_text, money, parse_order
from bot.models import ChargeStatus, SubscriptionStatus
from bot.money import Money, MoneyError
from chargedesk_emulators.woocommerce import PREFIX, WooCommerceEmulator, woocommerce_api
from tests.fakes.emulated_gateway import fixtures
from tests.fakes.woocommerce_env import (
    EMAIL,
    Seeded,
    seed_contract_customer,
    woocommerce_gateway,
    woocommerce_settings,
)


def usd(text: str) -> Money:
    return money(text, "USD")


api, seeded, gateway = fixtures(woocommerce_api, seed_contract_customer, woocommerce_gateway)


def query_of(exchange: object) -> dict[str, list[str]]:
    return parse_qs(exchange.raw_query)  # type: ignore[attr-defined]


# --- what people type -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "value"),
    [
        ("order #1234", "1234"),
        ("Order No. 1234", "1234"),
        ("order number: 1234", "1234"),
        ("order#1234", "1234"),
        ("#1234", "1234"),
        ("  1234 ", "1234"),
        ("ch_1234", "ch_1234"),
        ("order_1234", "order_1234"),
    ],
)
def test_order_numbers_are_read_from_what_people_type(typed: str, value: str) -> None:
    assert LookupQuery.parse(typed) == LookupQuery("id", value)


def test_an_email_stays_an_email() -> None:
    assert LookupQuery.parse(" Jane.Doe@Example.com ") == LookupQuery(
        "email", "jane.doe@example.com"
    )


# --- lookups ----------------------------------------------------------------------------------


async def test_lookup_by_email_pages_past_the_default_ten_orders(
    api: WooCommerceEmulator, gateway: WooCommerceGateway
) -> None:
    user = api.add_customer("many@example.com", "Mo", "Many")
    orders = {str(api.add_order("10.00", customer_id=user, days_ago=i)) for i in range(130)}
    (profile,) = await gateway.lookup(LookupQuery.parse("many@example.com"))
    assert profile.customer.id == f"customer-{user}" and profile.customer.name == "Mo Many"
    assert {c.id for c in profile.charges} == orders
    pages = [query_of(e) for e in api.requests_to("GET", f"{PREFIX}/orders")]
    by_customer = [q for q in pages if q.get("customer") == [str(user)]]
    assert [(q["per_page"], q["page"]) for q in by_customer] == [(["100"], ["1"]), (["100"], ["2"])]


async def test_guest_orders_are_found_by_their_billing_email_only(
    api: WooCommerceEmulator, gateway: WooCommerceGateway
) -> None:
    guest = api.add_order(
        "19.00", email="gus@example.com", name=("Gus", "Guest"), payment_method="cod"
    )
    api.add_order("23.00", email="angus@example.com", name=("Angus", "Other"))  # a search also hits
    (profile,) = await gateway.lookup(LookupQuery.parse("GUS@example.com"))
    assert (profile.customer.id, profile.customer.email) == ("gus@example.com", "gus@example.com")
    assert profile.customer.name == "Gus Guest"
    assert [c.id for c in profile.charges] == [str(guest)]
    assert profile.charges[0].customer_id == "gus@example.com"


async def test_an_account_and_its_guest_orders_are_two_profiles(
    api: WooCommerceEmulator, gateway: WooCommerceGateway, seeded: Seeded
) -> None:
    before = api.add_order("15.00", email=EMAIL, days_ago=400)  # bought as a guest first
    profiles = await gateway.lookup(LookupQuery.parse(EMAIL))
    assert [p.customer.id for p in profiles] == [seeded.customer_id, EMAIL]
    assert [c.id for c in profiles[1].charges] == [str(before)]
    assert str(before) not in {c.id for c in profiles[0].charges}


async def test_an_order_number_finds_its_customer(
    api: WooCommerceEmulator, gateway: WooCommerceGateway, seeded: Seeded
) -> None:
    for typed in (f"order #{seeded.charge_id}", seeded.charge_id, f"#{seeded.charge_id}"):
        (profile,) = await gateway.lookup(LookupQuery.parse(typed))
        assert profile.customer.id == seeded.customer_id


async def test_a_plugins_order_number_wins_over_an_order_id(
    api: WooCommerceEmulator, gateway: WooCommerceGateway, seeded: Seeded
) -> None:
    # Sequential Order Numbers: the customer's "order #<n>" is not the order's ID.
    api.orders[int(seeded.charge_id)].number = "5001"
    other = api.add_customer("other@example.com", "Otto", "Other")
    numbered = api.add_order("30.00", customer_id=other, number=seeded.charge_id)
    (profile,) = await gateway.lookup(LookupQuery.parse(f"order #{seeded.charge_id}"))
    assert profile.customer.id == f"customer-{other}"
    assert str(numbered) in {c.id for c in profile.charges}
    custom = api.add_order("31.00", email="wc@example.com", number="WC-1042")
    (by_custom,) = await gateway.lookup(LookupQuery.parse("wc-1042"))
    assert [c.id for c in by_custom.charges] == [str(custom)]
    assert "Order #WC-1042" in (by_custom.charges[0].description or "")


async def test_a_subscription_or_customer_id_finds_its_customer(
    gateway: WooCommerceGateway, seeded: Seeded
) -> None:
    for typed in (seeded.subscription_ids[0], seeded.customer_id):
        (profile,) = await gateway.lookup(LookupQuery.parse(typed))
        assert profile.customer.id == seeded.customer_id
        assert {s.id for s in profile.subscriptions} == set(seeded.subscription_ids)


@pytest.mark.parametrize(
    "typed", ["ch_3MmlLrLkdIwHu7ix", "I-BW452GLLEP1G", "cus_NffrFeUfNV2Hib", "9999999"]
)
async def test_ids_woocommerce_does_not_know_find_nobody(
    api: WooCommerceEmulator, gateway: WooCommerceGateway, typed: str
) -> None:
    assert await gateway.lookup(LookupQuery.parse(typed)) == []
    if not typed.isdigit():
        assert api.exchanges == []  # other gateways' IDs cost the store no request


async def test_profile_maps_order_states_from_gmt_dates(
    api: WooCommerceEmulator, gateway: WooCommerceGateway
) -> None:
    user = api.add_customer("states@example.com")
    ids = {
        state: api.add_order("40.00", customer_id=user, status=state, paid=paid, payment_method="bacs")
        for state, paid in [
            ("processing", True), ("completed", True), ("on-hold", False), ("pending", False),
            ("cancelled", False), ("failed", False), ("trash", True),
        ]
    }  # fmt: skip
    partial = api.add_order("40.00", customer_id=user)
    api.refund_in_dashboard(partial, "15.00")
    full = api.add_order("40.00", customer_id=user)
    api.refund_in_dashboard(full, "40.00")
    (profile,) = await gateway.lookup(LookupQuery.parse("states@example.com"))
    charges = {c.id: c for c in profile.charges}
    assert {s: charges[str(i)].status for s, i in ids.items() if s != "trash"} == {
        "processing": ChargeStatus.succeeded,
        "completed": ChargeStatus.succeeded,
        "on-hold": ChargeStatus.authorized,
        "pending": ChargeStatus.authorized,
        "cancelled": ChargeStatus.voided,
        "failed": ChargeStatus.failed,
    }
    assert str(ids["trash"]) not in charges
    assert (charges[str(partial)].status, charges[str(partial)].refundable) == (
        ChargeStatus.partially_refunded,
        usd("25.00"),
    )
    assert charges[str(full)].status == ChargeStatus.refunded
    order = api.orders[ids["processing"]]
    assert charges[str(order.id)].created == order.created  # the _gmt date, not the store's clock
    assert (
        charges[str(order.id)].description
        == f"Order #{order.id}: Woo Album #1 (Direct bank transfer)"
    )
    assert {r.charge_id for r in profile.refunds} == {str(partial), str(full)}


# --- money ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "currency", "minor"),
    [("29.35", "USD", 2935), ("500", "JPY", 500), ("500.00", "JPY", 500), ("1.250", "KWD", 1250),
     ("12.5", "EUR", 1250), ("-10.00", "EUR", 1000), ("1999.50", "HUF", 199950)],
)  # fmt: skip
def test_amounts_read_exactly_in_iso_minor_units(written: str, currency: str, minor: int) -> None:
    assert money(written, currency) == Money(minor=minor, currency=currency)


@pytest.mark.parametrize(
    ("written", "currency"), [("12.345", "EUR"), ("500.5", "JPY"), ("1,00", "EUR")]
)
def test_amounts_a_currency_cannot_hold_are_refused_not_rounded(
    written: str, currency: str
) -> None:
    with pytest.raises(MoneyError):
        money(written, currency)


@pytest.mark.parametrize(
    ("amount", "sent"),
    [(Money(minor=500, currency="JPY"), "500"), (Money(minor=1250, currency="KWD"), "1.250"),
     (Money(minor=1050, currency="EUR"), "10.50")],
)  # fmt: skip
def test_refund_amounts_are_sent_with_the_currencys_iso_digits(amount: Money, sent: str) -> None:
    assert amount_text(amount) == sent


async def test_a_zero_decimal_store_refunds_yen_exactly() -> None:
    with woocommerce_api(currency="JPY", decimals=0) as api:
        user = api.add_customer("yen@example.com")
        order = api.add_order("5000", customer_id=user)
        gw = WooCommerceGateway(woocommerce_settings(api), backoff=0.01)
        try:
            refund = await gw.refund(
                str(order),
                Money(minor=1500, currency="JPY"),
                reason="goodwill",
                idempotency_key="k-yen",
            )
            charge = await gw.get_charge(str(order))
        finally:
            await gw.close()
    (post,) = api.requests_to("POST", f"{PREFIX}/orders/{order}/refunds")
    assert json.loads(post.body)["amount"] == "1500"
    assert refund.amount == Money(minor=1500, currency="JPY")
    assert charge.refundable == Money(minor=3500, currency="JPY")


async def test_an_order_in_a_currency_outside_iso_is_left_out_and_refused(
    api: WooCommerceEmulator, gateway: WooCommerceGateway, seeded: Seeded
) -> None:
    odd = api.add_order("0.00150000", customer_id=seeded.user_id, currency="BTC")
    (profile,) = await gateway.lookup(LookupQuery.parse(EMAIL))
    assert str(odd) not in {c.id for c in profile.charges}
    assert seeded.charge_id in {c.id for c in profile.charges}
    with pytest.raises(GatewayError) as info:
        await gateway.get_charge(str(odd))
    assert info.value.code == ErrorCode.rejected and "BTC" in info.value.message


# --- refunds ----------------------------------------------------------------------------------


async def test_a_refund_carries_our_key_and_keeps_the_agents_reason_private(
    api: WooCommerceEmulator, gateway: WooCommerceGateway, seeded: Seeded
) -> None:
    reason = "goodwill <b>late</b> & sorry"
    refund = await gateway.refund(
        seeded.charge_id, usd("12.50"), reason=reason, idempotency_key="apr_0a1b2c"
    )
    (post,) = api.requests_to("POST", f"{PREFIX}/orders/{seeded.charge_id}/refunds")
    assert json.loads(post.body) == {
        "amount": "12.50",
        "reason": "Refund ref apr_0a1b2c",  # the customer sees this in their order
        "api_refund": True,
        "meta_data": [{"key": "chargedesk_request", "value": "apr_0a1b2c"}],
    }
    stored = api.refunds[int(refund.id)]
    assert (stored.amount, stored.refunded_payment, refund.charge_id) == (
        Decimal("12.50"),
        True,
        seeded.charge_id,
    )
    (note,) = [n for n in api.notes.values() if n.order_id == int(seeded.charge_id)]
    assert not note.customer_note
    assert note.note == (
        "Refunded $12.50 through ChargeDesk (ref apr_0a1b2c): goodwill &lt;b&gt;late&lt;/b&gt; &amp; sorry"
    )


async def test_a_long_key_is_shown_to_the_customer_only_as_a_hash(
    api: WooCommerceEmulator, gateway: WooCommerceGateway, seeded: Seeded
) -> None:
    key = "request with spaces/and:odd chars " * 3
    first = await gateway.refund(
        seeded.charge_id, usd("5.00"), reason="goodwill", idempotency_key=key
    )
    again = await gateway.refund(
        seeded.charge_id, usd("5.00"), reason="goodwill", idempotency_key=key
    )
    assert first.id == again.id
    reason = api.refunds[int(first.id)].reason
    assert reason.startswith("Refund ref cd-") and "spaces" not in reason


async def test_refund_retried_after_a_timeout_gives_one_refund(
    api: WooCommerceEmulator, seeded: Seeded
) -> None:
    gw = WooCommerceGateway(woocommerce_settings(api, write_timeout=0.5), backoff=0.01)
    try:
        # The store refunds (the payment plugin too) but answers after we gave up.
        api.slow_next(
            1,
            2.0,
            after=True,
            method="POST",
            path_prefix=f"{PREFIX}/orders/{seeded.charge_id}/refunds",
        )
        with pytest.raises(GatewayError) as info:
            await gw.refund(
                seeded.charge_id, usd("25.00"), reason="goodwill", idempotency_key="apr_timeout1"
            )
        assert info.value.code == ErrorCode.timeout
        again = await gw.refund(
            seeded.charge_id, usd("25.00"), reason="goodwill", idempotency_key="apr_timeout1"
        )
    finally:
        await gw.close()
    assert [r.id for r in api.refunds.values()] == [int(again.id)]
    assert api.gateway_refunds == [(int(seeded.charge_id), Decimal("25.00"))]
    assert len(api.requests_to("POST", f"{PREFIX}/orders/{seeded.charge_id}/refunds")) == 1


async def test_a_refund_whose_answer_was_lost_is_found_by_its_key(
    api: WooCommerceEmulator, gateway: WooCommerceGateway, seeded: Seeded
) -> None:
    api.fail_next(1, 502, after=True, method="POST")
    with pytest.raises(GatewayError) as info:
        await gateway.refund(
            seeded.charge_id, usd("30.00"), reason="goodwill", idempotency_key="apr_lost01"
        )
    assert info.value.code == ErrorCode.unavailable  # outcome unknown: the executor runs it again
    again = await gateway.refund(
        seeded.charge_id, usd("30.00"), reason="goodwill", idempotency_key="apr_lost01"
    )
    assert len(api.refunds) == 1 and int(again.id) in api.refunds


async def test_a_refund_that_died_before_its_meta_data_is_found_by_its_reason(
    api: WooCommerceEmulator, gateway: WooCommerceGateway, seeded: Seeded
) -> None:
    api.die_before_refund_meta()
    with pytest.raises(GatewayError) as info:
        await gateway.refund(
            seeded.charge_id, usd("20.00"), reason="goodwill", idempotency_key="apr_died01"
        )
    assert info.value.code == ErrorCode.unavailable
    (stored,) = api.refunds.values()
    assert stored.meta == []  # WooCommerce saved the refund, not our meta data
    again = await gateway.refund(
        seeded.charge_id, usd("20.00"), reason="goodwill", idempotency_key="apr_died01"
    )
    assert again.id == str(stored.id) and len(api.refunds) == 1


async def test_a_refund_raced_by_a_dashboard_refund_says_what_remains(
    api: WooCommerceEmulator, gateway: WooCommerceGateway, seeded: Seeded
) -> None:
    api.race_next_refund("70.00")
    with pytest.raises(GatewayError) as info:
        await gateway.refund(
            seeded.charge_id, usd("40.00"), reason="goodwill", idempotency_key="apr_race01"
        )
    assert info.value.code == ErrorCode.amount_too_large
    assert "only $30.00" in info.value.message
    assert (info.value.raw_code, info.value.raw_message) == (
        "woocommerce_rest_cannot_create_order_refund",
        "Invalid refund amount.",
    )
    assert api.refunded(int(seeded.charge_id)) == Decimal("70.00")


@pytest.mark.parametrize(
    ("method", "title"),
    [("cod", "Cash on delivery"), ("bacs", "Direct bank transfer"), ("gone-plugin", "gone-plugin")],
)
async def test_a_payment_method_that_cannot_refund_says_so_and_offers_a_manual_record(
    api: WooCommerceEmulator, gateway: WooCommerceGateway, method: str, title: str
) -> None:
    user = api.add_customer("cash@example.com")
    order = api.add_order("60.00", customer_id=user, payment_method=method)
    with pytest.raises(GatewayError) as info:
        await gateway.refund(
            str(order), usd("10.00"), reason="goodwill", idempotency_key="apr_cash01"
        )
    error = info.value
    assert error.code == ErrorCode.unsupported
    assert f"paid with {title}, which cannot refund through WooCommerce" in error.message
    assert "nothing was refunded" in error.message and "“Refund manually”" in error.message
    assert len(error.message) <= 300  # a command's error line shows it whole
    assert error.raw_code == "woocommerce_rest_cannot_create_order_refund"
    assert error.raw_message in (
        "The payment gateway for this order does not support automatic refunds.",
        "The payment gateway for this order does not exist.",
    )
    assert api.refunds == {} and api.gateway_refunds == []


async def test_when_the_key_may_not_read_payment_methods_woocommerces_words_are_given(
    api: WooCommerceEmulator,
) -> None:
    api.add_key("ck_clerk", "cs_clerk", "read_write", manager=False)
    user = api.add_customer("cash@example.com")
    order = api.add_order("60.00", customer_id=user, payment_method="cod")
    gw = WooCommerceGateway(
        woocommerce_settings(api, consumer_key="ck_clerk", consumer_secret="cs_clerk"), backoff=0.01
    )
    try:
        with pytest.raises(GatewayError) as info:
            await gw.refund(
                str(order), usd("10.00"), reason="goodwill", idempotency_key="apr_clerk1"
            )
    finally:
        await gw.close()
    assert info.value.code == ErrorCode.rejected
    assert "does not support automatic refunds" in info.value.message
    assert "Nothing was refunded" in info.value.message


async def test_a_payment_plugins_own_refusal_is_passed_on(
    api: WooCommerceEmulator, gateway: WooCommerceGateway, seeded: Seeded
) -> None:
    api.gateways["stripe"].decline = "Refund failed: the charge is disputed."
    with pytest.raises(GatewayError) as info:
        await gateway.refund(
            seeded.charge_id, usd("10.00"), reason="goodwill", idempotency_key="apr_plugin"
        )
    assert info.value.code == ErrorCode.rejected
    assert info.value.message.startswith("Credit Card (Stripe) refused to refund order")
    assert "the charge is disputed" in info.value.message and api.refunds == {}


async def test_an_unpaid_order_is_not_refunded(
    api: WooCommerceEmulator, gateway: WooCommerceGateway, seeded: Seeded
) -> None:
    with pytest.raises(GatewayError) as info:
        await gateway.refund(
            seeded.authorized_ids[0], usd("10.00"), reason="goodwill", idempotency_key="k-unpaid"
        )
    assert info.value.code == ErrorCode.not_settled and "not paid" in info.value.message
    assert api.requests_to("POST", PREFIX) == []


async def test_a_missing_note_does_not_undo_the_refund(
    api: WooCommerceEmulator, gateway: WooCommerceGateway, seeded: Seeded
) -> None:
    api.fail_next(1, 500, method="POST", path_prefix=f"{PREFIX}/orders/{seeded.charge_id}/notes")
    refund = await gateway.refund(
        seeded.charge_id, usd("10.00"), reason="goodwill", idempotency_key="apr_nonote"
    )
    assert int(refund.id) in api.refunds
    # The retry of the same request writes the note it lacks, and no second refund.
    await gateway.refund(
        seeded.charge_id, usd("10.00"), reason="goodwill", idempotency_key="apr_nonote"
    )
    assert len(api.refunds) == 1
    assert [
        n.note.split(":")[0] for n in api.notes.values() if n.order_id == int(seeded.charge_id)
    ] == ["Refunded $10.00 through ChargeDesk (ref apr_nonote)"]


# --- what WooCommerce cannot do -----------------------------------------------------------------


async def test_capture_and_void_are_unsupported_and_say_why(
    api: WooCommerceEmulator, gateway: WooCommerceGateway, seeded: Seeded
) -> None:
    with pytest.raises(Unsupported) as captured:
        await gateway.capture(seeded.authorized_ids[0], None, idempotency_key="k")
    assert captured.value.message.startswith("the woocommerce gateway does not support capture: ")
    assert "moves to Processing" in captured.value.message
    with pytest.raises(Unsupported) as voided:
        await gateway.void(seeded.authorized_ids[0], idempotency_key="k")
    assert "cancelling the order in WooCommerce" in voided.value.message
    assert api.exchanges == []


async def test_capabilities_and_dashboard_links(
    api: WooCommerceEmulator, gateway: WooCommerceGateway
) -> None:
    assert (
        Capability.capture not in gateway.capabilities and Capability.refund in gateway.capabilities
    )
    assert gateway.dashboard_url("727") == f"{api.base_url}/wp-admin/post.php?post=727&action=edit"
    assert (
        gateway.dashboard_url("customer-26") == f"{api.base_url}/wp-admin/user-edit.php?user_id=26"
    )
    assert gateway.dashboard_url("ch_123") is None


# --- subscriptions ----------------------------------------------------------------------------


async def test_cancel_at_period_end_then_now(
    api: WooCommerceEmulator, gateway: WooCommerceGateway, seeded: Seeded
) -> None:
    sub_id = seeded.subscription_ids[0]
    renews = api.orders[int(sub_id)].next_payment
    ending = await gateway.cancel_subscription(
        sub_id, at_period_end=True, reason="requested_by_customer", idempotency_key="k1"
    )
    assert (ending.status, ending.cancel_at_period_end, ending.current_period_end) == (
        SubscriptionStatus.active,
        True,
        renews,
    )
    again = await gateway.cancel_subscription(
        sub_id, at_period_end=True, reason="r", idempotency_key="k1"
    )
    assert again.cancel_at_period_end
    ended = await gateway.cancel_subscription(
        sub_id, at_period_end=False, reason="r", idempotency_key="k2"
    )
    assert ended.status == SubscriptionStatus.canceled and ended.canceled_at is not None
    puts = [json.loads(e.body) for e in api.requests_to("PUT", f"{PREFIX}/subscriptions/{sub_id}")]
    assert puts == [{"transition_status": "pending-cancel"}, {"transition_status": "cancelled"}]


async def test_a_cancel_whose_answer_was_lost_is_settled_by_a_reread(
    api: WooCommerceEmulator, gateway: WooCommerceGateway, seeded: Seeded
) -> None:
    api.fail_next(1, 500, after=True, method="PUT")
    sub = await gateway.cancel_subscription(
        seeded.subscription_ids[1], at_period_end=False, reason="r", idempotency_key="k"
    )
    assert sub.status == SubscriptionStatus.canceled
    assert len(api.requests_to("PUT", PREFIX)) == 1


async def test_a_cancel_woocommerce_subscriptions_refuses_is_refused_before_asking(
    api: WooCommerceEmulator, gateway: WooCommerceGateway, seeded: Seeded
) -> None:
    held = api.add_subscription(seeded.user_id, "9.00", status="on-hold")
    with pytest.raises(GatewayError) as info:
        await gateway.cancel_subscription(
            str(held), at_period_end=True, reason="r", idempotency_key="k"
        )
    assert info.value.code == ErrorCode.invalid_state and "on-hold" in info.value.message
    expired = api.add_subscription(seeded.user_id, "9.00", status="expired")
    with pytest.raises(GatewayError) as gone:
        await gateway.cancel_subscription(
            str(expired), at_period_end=False, reason="r", idempotency_key="k"
        )
    assert gone.value.code == ErrorCode.invalid_state
    assert api.requests_to("PUT", PREFIX) == []


async def test_a_transition_the_store_refuses_is_reported_with_where_it_stands(
    api: WooCommerceEmulator, gateway: WooCommerceGateway, seeded: Seeded
) -> None:
    # The payment method cannot cancel: WooCommerce Subscriptions throws, WordPress answers
    # its "critical error" 500, and the subscription is read again to tell what happened.
    api.gateways["stripe"].cancels = False
    sub_id = seeded.subscription_ids[0]
    with pytest.raises(GatewayError) as info:
        await gateway.cancel_subscription(
            sub_id, at_period_end=False, reason="r", idempotency_key="k"
        )
    assert info.value.code == ErrorCode.rejected
    assert (
        "would not move subscription" in info.value.message and "still active" in info.value.message
    )
    assert info.value.raw_code == "internal_server_error"
    assert api.orders[int(sub_id)].status == "active"


async def test_without_the_subscriptions_extension_cancel_is_unsupported_with_the_reason(
    api: WooCommerceEmulator, gateway: WooCommerceGateway, seeded: Seeded
) -> None:
    api.set_subscriptions(False)
    with pytest.raises(Unsupported) as info:
        await gateway.cancel_subscription(
            seeded.subscription_ids[0], at_period_end=True, reason="r", idempotency_key="k"
        )
    assert info.value.message.startswith(
        "the woocommerce gateway does not support cancel subscription: "
    )
    assert (
        "no WooCommerce Subscriptions extension (its REST API answers rest_no_route)"
        in info.value.message
    )
    with pytest.raises(Unsupported):
        await gateway.get_subscription(seeded.subscription_ids[0])
    (profile,) = await gateway.lookup(LookupQuery.parse(EMAIL))  # the rest still shows
    assert profile.subscriptions == () and seeded.charge_id in {c.id for c in profile.charges}


def test_subscription_statuses_map_to_ours() -> None:
    from bot.gateways.woocommerce.mapping import parse_subscription

    base = {
        "id": 9,
        "customer_id": 3,
        "total": "9.00",
        "currency": "EUR",
        "line_items": [{"name": "Pro"}],
    }
    statuses = {
        s: parse_subscription({**base, "status": s}).status
        for s in (
            "active",
            "pending-cancel",
            "on-hold",
            "pending",
            "cancelled",
            "expired",
            "switched",
        )
    }
    assert statuses == {
        "active": SubscriptionStatus.active, "pending-cancel": SubscriptionStatus.active,
        "on-hold": SubscriptionStatus.past_due, "pending": SubscriptionStatus.incomplete,
        "cancelled": SubscriptionStatus.canceled, "expired": SubscriptionStatus.canceled,
        "switched": SubscriptionStatus.canceled,
    }  # fmt: skip
    quarterly = parse_subscription(
        {**base, "status": "active", "billing_period": "month", "billing_interval": "3"}
    )
    assert (quarterly.interval, quarterly.plan, quarterly.customer_id) == (
        "3 months",
        "Pro",
        "customer-3",
    )
    trial = parse_subscription(
        {**base, "status": "active", "trial_end_date_gmt": "2999-01-01T00:00:00"}
    )
    assert trial.status == SubscriptionStatus.trialing


# --- transport and errors ---------------------------------------------------------------------


async def test_reads_are_retried_and_writes_are_not(
    api: WooCommerceEmulator, gateway: WooCommerceGateway, seeded: Seeded
) -> None:
    api.fail_next(2, 503, method="GET")
    charge = await gateway.get_charge(seeded.charge_id)
    assert charge.status == ChargeStatus.succeeded
    api.fail_next(1, 503, method="POST")
    with pytest.raises(GatewayError) as info:
        await gateway.refund(
            seeded.charge_id, usd("10.00"), reason="goodwill", idempotency_key="k-503"
        )
    assert info.value.code == ErrorCode.unavailable
    assert len(api.requests_to("POST", PREFIX)) == 1 and api.refunds == {}


async def test_reads_failing_past_their_retries_say_so(
    api: WooCommerceEmulator, gateway: WooCommerceGateway, seeded: Seeded
) -> None:
    api.fail_next(3, 500, method="GET")
    with pytest.raises(GatewayError) as info:
        await gateway.get_charge(seeded.charge_id)
    assert info.value.code == ErrorCode.unavailable
    assert info.value.raw_code == "internal_server_error"
    assert "<p>" not in (info.value.raw_message or "")  # WordPress's HTML, as plain words


async def test_a_page_in_place_of_the_api_says_what_may_stand_in_the_way(
    api: WooCommerceEmulator, gateway: WooCommerceGateway, seeded: Seeded
) -> None:
    api.fail_next(3, 200, method="GET")
    with pytest.raises(GatewayError) as info:
        await gateway.get_charge(seeded.charge_id)
    assert info.value.code == ErrorCode.unavailable and "security plugin" in info.value.message


async def test_a_slow_store_times_out(api: WooCommerceEmulator, seeded: Seeded) -> None:
    gw = WooCommerceGateway(woocommerce_settings(api, timeout=0.3, max_retries=0), backoff=0.01)
    try:
        api.slow_next(1, 1.5)
        with pytest.raises(GatewayError) as info:
            await gw.get_charge(seeded.charge_id)
    finally:
        await gw.close()
    assert info.value.code == ErrorCode.timeout


async def test_unknown_orders_and_subscriptions_are_not_found(
    gateway: WooCommerceGateway, seeded: Seeded
) -> None:
    for call in (
        gateway.get_charge("999999"),
        gateway.get_subscription("999999"),
        gateway.get_charge(seeded.subscription_ids[0]),
    ):
        with pytest.raises(GatewayError) as info:
            await call
        assert info.value.code == ErrorCode.not_found


def test_an_order_without_a_paid_date_but_processing_counts_as_paid() -> None:
    charge = parse_order(
        {"id": 5, "number": "5", "status": "processing", "currency": "EUR", "total": "9.00", "customer_id": 0,
         "billing": {"email": "A@Example.com"}, "date_paid_gmt": None, "refunds": []}
    )  # fmt: skip
    assert (charge.status, charge.amount_captured, charge.customer_id) == (
        ChargeStatus.succeeded,
        900,
        "a@example.com",
    )


def test_a_store_url_must_be_the_site_address() -> None:
    from pydantic import ValidationError

    from bot.settings import WooCommerceSettings

    with pytest.raises(ValidationError, match="the store's address only"):
        WooCommerceSettings(store_url="https://shop.example.com/wp-json/wc/v3")  # type: ignore[arg-type]
    assert WooCommerceSettings(store_url="https://shop.example.com/blog").store_url is not None  # type: ignore[arg-type]
