"""The Recurly gateway against the Recurly emulator: the official `recurly` client over HTTP."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import pytest
import recurly
from pydantic import SecretStr

from bot.gateways.base import ErrorCode, GatewayError, LookupQuery, Unsupported
from bot.gateways.matrix import table
from bot.gateways.recurly.client import IDLE_SECONDS, endpoint
from bot.gateways.recurly.gateway import RecurlyGateway
from bot.models import ChargeStatus, InvoiceStatus, SubscriptionStatus
from bot.money import Money
from bot.settings import RecurlySettings
from chargedesk_emulators.recurly import RecurlyEmulator, recurly_api, schema_problems
from tests.fakes.emulated_gateway import fixtures
from tests.fakes.recurly_env import (
    EMAIL,
    Seeded,
    recurly_gateway,
    recurly_settings,
    seed_contract_account,
)


def usd(minor: int) -> Money:
    return Money(minor=minor, currency="USD")


api, seeded, gateway = fixtures(recurly_api, seed_contract_account, recurly_gateway)


def refund_bodies(api: RecurlyEmulator) -> list[dict[str, Any]]:
    return [
        json.loads(e.body) for e in api.requests_to("POST", "/invoices/") if "/refund" in e.path
    ]


# --- the connection ------------------------------------------------------------------------


def test_the_api_host_follows_the_region_unless_a_base_url_is_set() -> None:
    key = SecretStr("k")
    assert endpoint(RecurlySettings(api_key=key)) == ("https", "v3.recurly.com", 443)
    assert endpoint(RecurlySettings(api_key=key, region="eu")) == (
        "https",
        "v3.eu.recurly.com",
        443,
    )
    local = RecurlySettings(api_key=key, base_url="http://127.0.0.1:8123")  # type: ignore[arg-type]
    assert endpoint(local) == ("http", "127.0.0.1", 8123)


async def test_every_request_names_the_api_version_and_carries_the_key(
    api: RecurlyEmulator, gateway: RecurlyGateway, seeded: Seeded
) -> None:
    await gateway.get_charge(seeded.charge_id)
    (sent,) = api.requests_to("GET", f"/transactions/{seeded.charge_id}")
    assert sent.headers["accept"] == "application/vnd.recurly.v2021-02-25"
    assert sent.headers["authorization"].startswith("Basic ")
    assert sent.headers["user-agent"].startswith("Recurly/")  # the official client sent it


async def test_a_wrong_api_key_says_which_settings_to_check(
    api: RecurlyEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    gw = recurly_gateway(api, api_key=SecretStr("not-the-key"))
    try:
        with pytest.raises(GatewayError) as refused:
            await gw.lookup(LookupQuery.parse(EMAIL))
    finally:
        await gw.close()
    assert refused.value.code == ErrorCode.rejected
    assert "recurly.api_key" in refused.value.message and "recurly.region" in refused.value.message
    assert refused.value.raw_code == "unauthorized"
    assert "not-the-key" not in refused.value.message and "not-the-key" not in caplog.text


async def test_a_client_library_that_moved_its_connection_is_caught_at_start(
    api: RecurlyEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = recurly.base_client.BaseClient.__init__

    def renamed(self: Any, api_key: str, timeout: Any = None, **options: Any) -> None:
        real(self, api_key, timeout, **options)
        self._transport = self.__dict__.pop("_BaseClient__conn")

    monkeypatch.setattr(recurly.base_client.BaseClient, "__init__", renamed)
    with pytest.raises(RuntimeError, match="no longer keeps its connection"):
        RecurlyGateway(recurly_settings(api))


async def test_recurly_json_is_read_without_floats_where_the_sdk_reads_floats(
    api: RecurlyEmulator, gateway: RecurlyGateway
) -> None:
    account = api.add_account("pennies@example.com")
    _, charge_id = api.add_purchase(account, [("a", "0.10", 1), ("b", "0.20", 1)], "USD")
    assert charge_id is not None
    sdk = recurly.Client(api.api_key)
    sdk._BaseClient__conn = __import__("http.client").client.HTTPConnection(  # type: ignore[attr-defined]
        *api.base_url.removeprefix("http://").split(":")
    )
    assert isinstance(sdk.get_transaction(charge_id).amount, float)  # the SDK's own reading
    raw = await gateway._api.read(lambda c: c.get_transaction(charge_id), "a transaction")

    def numbers(value: Any) -> list[Any]:
        if isinstance(value, dict):
            return [n for v in value.values() for n in numbers(v)]
        if isinstance(value, list):
            return [n for v in value for n in numbers(v)]
        return (
            [value]
            if isinstance(value, int | float | Decimal) and not isinstance(value, bool)
            else []
        )

    assert raw["amount"] == Decimal("0.30")
    assert not any(isinstance(n, float) for n in numbers(raw))
    assert (await gateway.get_charge(charge_id)).amount == usd(30)


# --- lookups -------------------------------------------------------------------------------


async def test_every_account_sharing_an_email_is_its_own_profile(
    api: RecurlyEmulator, gateway: RecurlyGateway, seeded: Seeded
) -> None:
    newer = api.add_account(EMAIL, "Jane", "Doe (second account)", days_ago=1)
    profiles = await gateway.lookup(LookupQuery.parse(EMAIL.upper()))
    assert [p.customer.id for p in profiles] == [newer, seeded.account_id]
    assert all(p.customer.email == EMAIL for p in profiles)


async def test_lookups_follow_recurlys_pages_up_to_the_cap(api: RecurlyEmulator) -> None:
    account = api.add_account("busy@example.com")
    for n in range(230):
        api.add_purchase(account, f"{n + 1}.00", "USD", days_ago=n / 100)
    gw = RecurlyGateway(recurly_settings(api), backoff=0.01, max_charges=1000)
    capped = RecurlyGateway(recurly_settings(api), backoff=0.01, max_charges=50)
    try:
        (profile,) = await gw.lookup(LookupQuery.parse("busy@example.com"))
        (few,) = await capped.lookup(LookupQuery.parse("busy@example.com"))
    finally:
        await gw.close()
        await capped.close()
    assert len(profile.charges) == 230 and len(profile.invoices) == 230
    assert profile.charges[0].amount == usd(100)  # newest first
    pages = [e for e in api.requests_to("GET", f"/accounts/{account}/transactions")]
    assert any("cursor" in e.query for e in pages)  # the second page came by Recurly's `next`
    assert len(few.charges) == 50


async def test_the_profile_shows_recurlys_objects(
    api: RecurlyEmulator, gateway: RecurlyGateway, seeded: Seeded
) -> None:
    api.refund_in_dashboard(seeded.invoice_id, "30.00", refund_method="all_transaction")
    coupon = api.add_coupon("WELCOME10", "Welcome", percent=10)
    api.redemptions["r1"] = __import__("chargedesk_emulators.recurly").recurly.Redemption(
        id="r1", account_id=seeded.account_id, coupon=api.coupons[coupon], currency="USD",
        created=api.accounts[seeded.account_id].created,
    )  # fmt: skip
    (profile,) = await gateway.lookup(LookupQuery.parse(EMAIL))
    charges = {c.id: c for c in profile.charges}
    assert charges[seeded.charge_id].status == ChargeStatus.partially_refunded
    assert charges[seeded.charge_id].refundable == usd(7000)
    assert {charges[a].status for a in seeded.authorized_ids} == {ChargeStatus.authorized}
    (refunded,) = profile.refunds
    assert (refunded.charge_id, refunded.amount) == (seeded.charge_id, usd(3000))
    subs = {s.id: s for s in profile.subscriptions}
    pro, seats = (subs[s] for s in seeded.subscription_ids)
    assert (pro.plan, pro.amount, pro.interval, pro.status) == (
        "Pro monthly",
        usd(2000),
        "month",
        SubscriptionStatus.active,
    )
    assert seats.amount == usd(1000)  # two seats at 5.00
    invoice = next(i for i in profile.invoices if i.id == seeded.invoice_id)
    assert (invoice.number, invoice.status, invoice.amount_paid) == (
        "1001",
        InvoiceStatus.paid,
        usd(10000),
    )
    assert [line.description for line in invoice.lines] == ["Order 1001"]
    assert all(
        i.id in api.invoices and api.invoices[i.id].type == "charge" for i in profile.invoices
    )
    assert profile.discounts == ("WELCOME10: 10% off, forever",)
    assert profile.customer.name == "Jane Doe"


@pytest.mark.parametrize(
    "kind", ["account", "code", "transaction", "invoice", "number", "subscription"]
)
async def test_lookup_by_any_recurly_id(
    api: RecurlyEmulator, gateway: RecurlyGateway, seeded: Seeded, kind: str
) -> None:
    text = {
        "account": seeded.account_id,
        "code": "jane-doe",
        "transaction": seeded.charge_id,
        "invoice": seeded.invoice_id,
        "number": "#" + api.invoices[seeded.invoice_id].number,
        "subscription": seeded.subscription_ids[0],
    }[kind]
    (profile,) = await gateway.lookup(LookupQuery.parse(text))
    assert profile.customer.id == seeded.account_id
    assert seeded.charge_id in {c.id for c in profile.charges}


async def test_ids_of_other_gateways_cost_no_object_reads(
    api: RecurlyEmulator, gateway: RecurlyGateway, seeded: Seeded
) -> None:
    before = len(api.exchanges)
    with pytest.raises(GatewayError) as missing:
        await gateway.get_charge("ch_3MmlLrLkdIwHu7ix0snN0B15")
    assert missing.value.code == ErrorCode.not_found
    assert len(api.exchanges) == before
    assert await gateway.lookup(LookupQuery.parse("cus_NffrFeUfNV2Hib")) == []
    # Only the account-code read: the text is no Recurly ID and has no invoice number.
    assert [e.path for e in api.exchanges[before:]] == ["/accounts/code-cus_NffrFeUfNV2Hib"]


# --- refunds -----------------------------------------------------------------------------


async def test_a_refund_never_becomes_account_credit(
    api: RecurlyEmulator, gateway: RecurlyGateway
) -> None:
    account = api.add_account("credit@example.com")
    # 100.00 due: 20.00 paid with account credit, 80.00 by card.
    _, card = api.add_purchase(account, "100.00", "USD", paid_with_credit="20.00")
    assert card is not None
    charge = await gateway.get_charge(card)
    assert charge.refundable == usd(8000)
    refund = await gateway.refund(card, usd(8000), reason="goodwill", idempotency_key="apr_credit")
    assert refund.amount == usd(8000) and refund.charge_id == card
    assert [r.amount for r in api.refunds_of(card)] == [Decimal("80.00")]
    assert api.credit_balance(account, "USD") == 0  # no credit instead of money
    (sent,) = refund_bodies(api)
    assert sent["refund_method"] == "all_transaction"
    # What Recurly does with the same refund when no method is named: credit first.
    other = api.add_account("default@example.com")
    second, _ = api.add_purchase(other, "100.00", "USD", paid_with_credit="20.00")
    api.refund_in_dashboard(second, "80.00")  # credit_first, Recurly's default
    assert api.credit_balance(other, "USD") == Decimal("20.00")


async def test_a_refund_is_capped_at_what_its_payment_has_left(
    api: RecurlyEmulator, gateway: RecurlyGateway
) -> None:
    account = api.add_account("cap@example.com")
    _, card = api.add_purchase(account, "100.00", "USD", paid_with_credit="20.00")
    assert card is not None
    with pytest.raises(GatewayError) as over:
        await gateway.refund(card, usd(9000), reason="goodwill", idempotency_key="apr_over")
    assert over.value.code == ErrorCode.amount_too_large and "80.00" in over.value.message
    assert refund_bodies(api) == []


async def test_what_a_refund_sends(
    api: RecurlyEmulator, gateway: RecurlyGateway, seeded: Seeded
) -> None:
    refund = await gateway.refund(
        seeded.charge_id, usd(3000), reason="customer was double charged", idempotency_key="apr_1"
    )
    (sent,) = [e for e in api.requests_to("POST", "/invoices/") if "/refund" in e.path]
    body = json.loads(sent.body)
    assert sent.path == f"/invoices/{seeded.invoice_id}/refund"
    assert body["type"] == "amount" and body["refund_method"] == "all_transaction"
    assert b'"amount": 30.0' in sent.body  # a JSON number, exact
    # The credit invoice carries our reference for retries, never the agent's reason.
    assert "Refund reference cd-" in body["credit_customer_notes"]
    assert "double" not in body["credit_customer_notes"] and "apr_1" not in sent.body.decode()
    (txn,) = api.refunds_of(seeded.charge_id)
    assert (refund.id, refund.status, refund.reason) == (
        txn.id,
        "succeeded",
        "customer was double charged",
    )


async def test_a_refund_retried_after_a_timeout_gives_one_refund(
    api: RecurlyEmulator, seeded: Seeded
) -> None:
    gw = recurly_gateway(api, timeout=0.5, max_retries=0)
    try:
        # Recurly is slow: we stop waiting, look, find nothing yet; then the refund lands.
        api.slow_next(1, 3.0, method="POST", path_prefix="/invoices/")
        with pytest.raises(GatewayError) as lost:
            await gw.refund(seeded.charge_id, usd(2500), reason="goodwill", idempotency_key="apr_t")
        assert lost.value.code == ErrorCode.timeout
        for _ in range(200):
            if api.refunds_of(seeded.charge_id):
                break
            await asyncio.sleep(0.05)
        # The approval is re-run with the same key: the first refund is found, none is added.
        again = await gw.refund(
            seeded.charge_id, usd(2500), reason="goodwill", idempotency_key="apr_t"
        )
    finally:
        await gw.close()
    (txn,) = api.refunds_of(seeded.charge_id)
    assert again.id == txn.id and again.amount == usd(2500)
    assert len(refund_bodies(api)) == 1


async def test_an_answer_that_came_too_late_is_read_back_at_once(
    api: RecurlyEmulator, seeded: Seeded
) -> None:
    gw = recurly_gateway(api, timeout=0.5, max_retries=0)
    try:
        api.slow_next(1, 1.5, after=True, method="POST", path_prefix="/invoices/")
        refund = await gw.refund(seeded.charge_id, usd(2500), reason="x", idempotency_key="apr_s")
    finally:
        await gw.close()
    (txn,) = api.refunds_of(seeded.charge_id)
    assert refund.id == txn.id and len(refund_bodies(api)) == 1


async def test_an_answer_lost_in_flight_is_read_back_not_resent(
    api: RecurlyEmulator, gateway: RecurlyGateway, seeded: Seeded
) -> None:
    api.fail_next(1, 502, after=True, method="POST", path_prefix="/invoices/")
    refund = await gateway.refund(
        seeded.charge_id, usd(1000), reason="x", idempotency_key="apr_lost"
    )
    (txn,) = api.refunds_of(seeded.charge_id)
    assert refund.id == txn.id and len(refund_bodies(api)) == 1


async def test_the_same_key_on_another_refund_is_another_refund(
    api: RecurlyEmulator, gateway: RecurlyGateway, seeded: Seeded
) -> None:
    first = await gateway.refund(seeded.charge_id, usd(1000), reason="x", idempotency_key="apr_a")
    second = await gateway.refund(seeded.charge_id, usd(1000), reason="x", idempotency_key="apr_b")
    assert first.id != second.id
    assert (await gateway.get_charge(seeded.charge_id)).refunded == usd(2000)


async def test_a_refund_made_in_recurly_meanwhile_leaves_what_it_left(
    api: RecurlyEmulator, gateway: RecurlyGateway, seeded: Seeded
) -> None:
    api.refund_in_dashboard(seeded.invoice_id, "55.00", refund_method="all_transaction")
    with pytest.raises(GatewayError) as over:
        await gateway.refund(seeded.charge_id, usd(5000), reason="x", idempotency_key="apr_late")
    assert over.value.code == ErrorCode.amount_too_large and "45.00" in over.value.message


async def test_a_site_without_credit_invoices_refuses_and_says_why() -> None:
    with recurly_api(credit_invoices=False) as api:
        seeded = seed_contract_account(api)
        gw = recurly_gateway(api)
        try:
            with pytest.raises(GatewayError) as refused:
                await gw.refund(seeded.charge_id, usd(500), reason="x", idempotency_key="apr_old")
        finally:
            await gw.close()
        assert (
            api.refunds_of(seeded.charge_id) == []
            and api.credit_balance(seeded.account_id, "USD") == 0
        )
    # Refunding without a method there could give credit instead of money: it is not tried.
    assert refused.value.code == ErrorCode.not_configured
    assert refused.value.raw_code == "missing_feature"
    assert "Credit Invoices" in refused.value.message and "Credit Invoices" in (
        refused.value.raw_message or ""
    )


async def test_an_unsettled_payment_is_not_refunded_until_it_settles(
    api: RecurlyEmulator, gateway: RecurlyGateway
) -> None:
    account = api.add_account("ach@example.com")
    invoice, pending = api.add_purchase(account, "40.00", "USD", status="processing")
    assert pending is not None
    with pytest.raises(GatewayError) as early:
        await gateway.refund(pending, usd(4000), reason="x", idempotency_key="apr_ach")
    assert early.value.code == ErrorCode.not_settled and "settled" in early.value.message
    assert early.value.raw_code == "processing" and refund_bodies(api) == []
    # Settled: the same refund goes through.
    api.transactions[pending].status = "success"
    api.invoices[invoice].state = "paid"
    done = await gateway.refund(pending, usd(4000), reason="x", idempotency_key="apr_ach")
    assert done.amount == usd(4000)


async def test_an_authorization_hold_has_nothing_to_refund(
    api: RecurlyEmulator, gateway: RecurlyGateway, seeded: Seeded
) -> None:
    with pytest.raises(GatewayError) as hold:
        await gateway.refund(seeded.authorized_ids[0], usd(100), reason="x", idempotency_key="k")
    assert hold.value.code == ErrorCode.invalid_state and "took no money" in hold.value.message


async def test_a_refund_transaction_is_not_a_charge(
    api: RecurlyEmulator, gateway: RecurlyGateway, seeded: Seeded
) -> None:
    refund = await gateway.refund(seeded.charge_id, usd(100), reason="x", idempotency_key="k1")
    with pytest.raises(GatewayError) as wrong:
        await gateway.get_charge(refund.id)
    assert wrong.value.code == ErrorCode.not_found and "is a refund" in wrong.value.message


async def test_zero_decimal_currencies_are_whole_units(
    api: RecurlyEmulator, gateway: RecurlyGateway
) -> None:
    account = api.add_account("yen@example.com")
    _, card = api.add_purchase(account, "5000", "JPY")
    assert card is not None
    charge = await gateway.get_charge(card)
    assert charge.amount == Money(minor=5000, currency="JPY")
    await gateway.refund(card, Money(minor=1200, currency="JPY"), reason="x", idempotency_key="y")
    (sent,) = [e for e in api.requests_to("POST", "/invoices/") if "/refund" in e.path]
    assert b'"amount": 1200,' in sent.body  # a whole number, no decimals
    assert (await gateway.get_charge(card)).refundable == Money(minor=3800, currency="JPY")


async def test_three_decimal_currencies_go_in_recurlys_two_decimals(
    api: RecurlyEmulator, gateway: RecurlyGateway
) -> None:
    account = api.add_account("kwd@example.com")
    _, card = api.add_purchase(account, "12.34", "KWD")
    assert card is not None
    assert (await gateway.get_charge(card)).amount == Money(minor=12340, currency="KWD")
    with pytest.raises(GatewayError) as fils:
        await gateway.refund(
            card, Money(minor=1235, currency="KWD"), reason="x", idempotency_key="f"
        )
    assert fils.value.code == ErrorCode.rejected and refund_bodies(api) == []
    refund = await gateway.refund(
        card, Money(minor=1230, currency="KWD"), reason="x", idempotency_key="g"
    )
    assert refund.amount == Money(minor=1230, currency="KWD")


# --- subscriptions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timeframe", "ends"), [("term_end", "term_end"), ("bill_date", "period_end")]
)
async def test_cancel_at_period_end_uses_the_configured_timeframe(
    api: RecurlyEmulator, seeded: Seeded, timeframe: str, ends: str
) -> None:
    sub_id = seeded.subscription_ids[0]
    record = api.subscriptions[sub_id]
    record.term_end = record.period_end.replace(year=record.period_end.year + 1)  # a one-year term
    gw = recurly_gateway(api, cancel_timeframe=timeframe)
    try:
        sub = await gw.cancel_subscription(
            sub_id, at_period_end=True, reason="r", idempotency_key="c"
        )
        again = await gw.cancel_subscription(
            sub_id, at_period_end=True, reason="r", idempotency_key="c"
        )
    finally:
        await gw.close()
    assert sub.status == SubscriptionStatus.active and sub.cancel_at_period_end
    assert sub.current_period_end == getattr(record, ends)
    assert again == sub
    (sent,) = api.requests_to("PUT", f"/subscriptions/{sub_id}/cancel")
    assert json.loads(sent.body) == {"timeframe": timeframe}


@pytest.mark.parametrize(
    ("refund", "money_back"), [("none", None), ("partial", "partial"), ("full", "20.00")]
)
async def test_terminate_now_with_the_refund_the_agent_chose(
    api: RecurlyEmulator,
    gateway: RecurlyGateway,
    seeded: Seeded,
    refund: str,
    money_back: str | None,
) -> None:
    sub_id = seeded.subscription_ids[0]
    paid = next(i for i in api.subscriptions[sub_id].invoice_ids)
    (payment,) = api.invoices[paid].transaction_ids
    sub = await gateway.cancel_subscription(
        sub_id,
        at_period_end=False,
        reason="r",
        idempotency_key="t",
        refund=refund,  # type: ignore[arg-type]
    )
    assert sub.status == SubscriptionStatus.canceled and not sub.cancel_at_period_end
    (sent,) = api.requests_to("DELETE", f"/subscriptions/{sub_id}")
    assert sent.query == {"refund": refund}
    back = [r.amount for r in api.refunds_of(payment)]
    if money_back is None:
        assert back == []
    elif money_back == "partial":
        (part,) = back
        assert Decimal("0") < part < Decimal("20.00")  # the unused two thirds of the month, about
    else:
        assert back == [Decimal(money_back)]


async def test_terminate_refuses_a_refund_choice_recurly_does_not_have(
    gateway: RecurlyGateway, seeded: Seeded
) -> None:
    with pytest.raises(GatewayError) as odd:
        await gateway.cancel_subscription(
            seeded.subscription_ids[0], at_period_end=False, reason="r", idempotency_key="t",
            refund="double",  # type: ignore[arg-type]
        )  # fmt: skip
    assert odd.value.code == ErrorCode.rejected


async def test_a_retried_cancel_finds_it_ended_and_sends_nothing(
    api: RecurlyEmulator, gateway: RecurlyGateway, seeded: Seeded
) -> None:
    sub_id = seeded.subscription_ids[1]
    first = await gateway.cancel_subscription(
        sub_id, at_period_end=False, reason="r", idempotency_key="n"
    )
    again = await gateway.cancel_subscription(
        sub_id, at_period_end=False, reason="r", idempotency_key="n"
    )
    assert first.status == again.status == SubscriptionStatus.canceled
    assert len(api.requests_to("DELETE", f"/subscriptions/{sub_id}")) == 1


async def test_a_lost_cancel_answer_is_read_back(
    api: RecurlyEmulator, gateway: RecurlyGateway, seeded: Seeded
) -> None:
    sub_id = seeded.subscription_ids[1]
    api.fail_next(1, 500, after=True, method="DELETE")
    sub = await gateway.cancel_subscription(
        sub_id, at_period_end=False, reason="r", idempotency_key="l"
    )
    assert sub.status == SubscriptionStatus.canceled
    assert len(api.requests_to("DELETE", f"/subscriptions/{sub_id}")) == 1


async def test_a_failed_cancel_that_did_nothing_says_so(
    api: RecurlyEmulator, gateway: RecurlyGateway, seeded: Seeded
) -> None:
    api.fail_next(1, 503, method="PUT")
    with pytest.raises(GatewayError) as down:
        await gateway.cancel_subscription(
            seeded.subscription_ids[0], at_period_end=True, reason="r", idempotency_key="d"
        )
    assert down.value.code == ErrorCode.unavailable
    assert api.subscriptions[seeded.subscription_ids[0]].state == "active"


# --- coupons -----------------------------------------------------------------------------


async def test_a_coupon_is_applied_once(
    api: RecurlyEmulator, gateway: RecurlyGateway, seeded: Seeded
) -> None:
    api.add_coupon(
        "SPRING", "Spring", fixed={"USD": "5.00"}, duration="temporal", temporal=(3, "month")
    )
    described = await gateway.apply_coupon(seeded.account_id, "SPRING", idempotency_key="c1")
    again = await gateway.apply_coupon(seeded.account_id, "SPRING", idempotency_key="c1")
    assert described == again == "SPRING: $5.00 off, for 3 months"
    (redemption,) = api.redemptions.values()
    assert (redemption.account_id, redemption.currency) == (seeded.account_id, "USD")
    assert len(api.requests_to("POST", f"/accounts/{seeded.account_id}/coupon_redemptions")) == 1
    (profile,) = await gateway.lookup(LookupQuery.parse(EMAIL))
    assert profile.discounts == ("SPRING: $5.00 off, for 3 months",)


async def test_a_subscription_coupon_goes_on_the_subscription(
    api: RecurlyEmulator, gateway: RecurlyGateway, seeded: Seeded
) -> None:
    api.add_coupon("SEATS", "Seats", percent=20, redemption_resource="subscription")
    with pytest.raises(GatewayError) as account_level:
        await gateway.apply_coupon(seeded.account_id, "SEATS", idempotency_key="s1")
    assert account_level.value.code == ErrorCode.invalid_state
    sub_id = seeded.subscription_ids[1]
    assert (
        await gateway.apply_coupon(sub_id, "SEATS", idempotency_key="s2")
        == "SEATS: 20% off, forever"
    )
    (redemption,) = api.redemptions.values()
    assert redemption.subscription_id == sub_id


@pytest.mark.parametrize(
    ("coupon", "code"),
    [
        ("MISSING", ErrorCode.not_found),
        ("OLD", ErrorCode.invalid_state),
        ("EUROS", ErrorCode.currency_mismatch),
    ],
)
async def test_coupons_that_cannot_apply_are_refused(
    api: RecurlyEmulator, gateway: RecurlyGateway, seeded: Seeded, coupon: str, code: ErrorCode
) -> None:
    api.add_coupon("OLD", "Old", percent=5, state="expired")
    api.add_coupon("EUROS", "Euros", fixed={"EUR": "5.00"})
    with pytest.raises(GatewayError) as refused:
        await gateway.apply_coupon(seeded.account_id, coupon, idempotency_key="x")
    assert refused.value.code == code
    assert api.redemptions == {}


async def test_a_coupon_for_nobody_is_not_found(gateway: RecurlyGateway, seeded: Seeded) -> None:
    with pytest.raises(GatewayError) as nobody:
        await gateway.apply_coupon("nosuchaccount", "SPRING", idempotency_key="x")
    assert nobody.value.code == ErrorCode.not_found


# --- links -------------------------------------------------------------------------------


async def test_the_card_update_page_is_recurlys_hosted_page(
    api: RecurlyEmulator, gateway: RecurlyGateway, seeded: Seeded
) -> None:
    url = await gateway.card_update_url(seeded.account_id, return_url="https://x.example/back")
    token = api.accounts[seeded.account_id].hosted_login_token
    assert url == f"https://chargedesk-test.recurly.com/account/billing_info/edit?ht={token}"
    gw = recurly_gateway(api, subdomain=None)
    try:
        with pytest.raises(GatewayError) as unset:
            await gw.card_update_url(seeded.account_id, return_url="https://x.example/back")
    finally:
        await gw.close()
    assert (
        unset.value.code == ErrorCode.not_configured and "recurly.subdomain" in unset.value.message
    )


async def test_dashboard_links_name_what_recurlys_admin_uses(
    api: RecurlyEmulator, gateway: RecurlyGateway, seeded: Seeded
) -> None:
    assert gateway.dashboard_url(seeded.account_id) is None  # not read yet: its code is unknown
    await gateway.lookup(LookupQuery.parse(EMAIL))
    site = "https://chargedesk-test.recurly.com"
    assert gateway.dashboard_url(seeded.account_id) == f"{site}/accounts/jane-doe"
    assert gateway.dashboard_url(seeded.invoice_id) == f"{site}/invoices/1001"
    txn_uuid = api.transactions[seeded.charge_id].uuid
    assert gateway.dashboard_url(seeded.charge_id) == f"{site}/transactions/{txn_uuid}"
    sub_uuid = api.subscriptions[seeded.subscription_ids[0]].uuid
    assert gateway.dashboard_url(seeded.subscription_ids[0]) == f"{site}/subscriptions/{sub_uuid}"
    eu = recurly_gateway(api, subdomain=None, site_url="https://acme.eu.example")
    try:
        await eu.get_charge(seeded.charge_id)
        assert (
            eu.dashboard_url(seeded.charge_id) == f"https://acme.eu.example/transactions/{txn_uuid}"
        )
    finally:
        await eu.close()


async def test_what_recurly_does_not_offer_is_refused_with_its_reason(
    api: RecurlyEmulator, gateway: RecurlyGateway, seeded: Seeded
) -> None:
    before = len(api.exchanges)
    calls = {
        "capture": gateway.capture(seeded.authorized_ids[0], usd(100), idempotency_key="k"),
        "void": gateway.void(seeded.authorized_ids[0], idempotency_key="k"),
        "send invoice": gateway.send_invoice(seeded.invoice_id, idempotency_key="k"),
    }
    for capability, call in calls.items():
        with pytest.raises(Unsupported) as refused:
            await call
        assert refused.value.message.startswith(
            f"the recurly gateway does not support {capability}: "
        )
    assert len(api.exchanges) == before
    assert set(RecurlyGateway.limits) <= RecurlyGateway.capabilities
    row = next(r for r in table([RecurlyGateway]).splitlines() if r.startswith("| Capture"))
    assert row == "| Capture an authorization | no |"


# --- retries and errors ----------------------------------------------------------------------


async def test_reads_are_retried(
    api: RecurlyEmulator, gateway: RecurlyGateway, seeded: Seeded
) -> None:
    api.fail_next(1, 429, method="GET")
    api.fail_next(1, 503, method="GET")
    assert (
        await gateway.get_subscription(seeded.subscription_ids[0])
    ).id == seeded.subscription_ids[0]


@pytest.mark.parametrize(
    ("status", "code", "raw"),
    [
        (500, ErrorCode.unavailable, "internal_server_error"),
        (429, ErrorCode.rate_limited, "rate_limited"),
    ],
)
async def test_retries_give_up_with_recurlys_code(
    api: RecurlyEmulator,
    gateway: RecurlyGateway,
    seeded: Seeded,
    status: int,
    code: ErrorCode,
    raw: str,
) -> None:
    api.fail_next(3, status, method="GET")
    with pytest.raises(GatewayError) as failed:
        await gateway.get_subscription(seeded.subscription_ids[0])
    assert (failed.value.code, failed.value.raw_code) == (code, raw)


async def test_writes_are_never_resent(
    api: RecurlyEmulator, gateway: RecurlyGateway, seeded: Seeded
) -> None:
    api.fail_next(1, 503, method="POST")
    with pytest.raises(GatewayError) as down:
        await gateway.refund(seeded.charge_id, usd(100), reason="x", idempotency_key="w")
    assert down.value.code == ErrorCode.unavailable
    assert len(refund_bodies(api)) == 1 and api.refunds_of(seeded.charge_id) == []


async def test_a_slow_recurly_times_out_and_the_next_call_works(
    api: RecurlyEmulator, seeded: Seeded
) -> None:
    gw = recurly_gateway(api, timeout=0.3, max_retries=0)
    try:
        api.slow_next(1, 1.0, method="GET")
        with pytest.raises(GatewayError) as slow:
            await gw.get_subscription(seeded.subscription_ids[0])
        assert slow.value.code == ErrorCode.timeout
        # The timed-out connection was dropped: a fresh one serves the next call.
        assert (
            await gw.get_subscription(seeded.subscription_ids[0])
        ).id == seeded.subscription_ids[0]
    finally:
        await gw.close()


async def test_a_long_idle_connection_is_not_reused_for_the_next_call(
    gateway: RecurlyGateway, seeded: Seeded
) -> None:
    await gateway.get_subscription(seeded.subscription_ids[0])
    (kept,) = gateway._api._idle
    await gateway.get_subscription(seeded.subscription_ids[0])
    assert gateway._api._idle == [kept]  # a fresh idle connection serves again
    kept.idle_since -= IDLE_SECONDS + 1  # the server may have closed it meanwhile
    await gateway.get_subscription(seeded.subscription_ids[0])
    (used,) = gateway._api._idle
    assert used is not kept and kept.connection.sock is None  # closed, not reused


async def test_not_found_keeps_recurlys_type(gateway: RecurlyGateway) -> None:
    with pytest.raises(GatewayError) as missing:
        await gateway.get_subscription("abcdefghijkl")
    assert missing.value.code == ErrorCode.not_found
    assert missing.value.raw_code == "not_found" and "abcdefghijkl" in (
        missing.value.raw_message or ""
    )


async def test_what_the_gateway_sends_follows_recurlys_description(
    api: RecurlyEmulator, gateway: RecurlyGateway, seeded: Seeded
) -> None:
    api.add_coupon("WELCOME10", "Welcome", percent=10)
    await gateway.lookup(LookupQuery.parse(EMAIL))
    for text in (seeded.account_id, seeded.charge_id, "1001"):
        await gateway.lookup(LookupQuery.parse(text))
    await gateway.refund(seeded.charge_id, usd(1000), reason="x", idempotency_key="r")
    await gateway.apply_coupon(seeded.account_id, "WELCOME10", idempotency_key="c")
    await gateway.cancel_subscription(
        seeded.subscription_ids[0], at_period_end=True, reason="r", idempotency_key="e"
    )
    await gateway.cancel_subscription(
        seeded.subscription_ids[1],
        at_period_end=False,
        reason="r",
        idempotency_key="n",
        refund="partial",
    )
    await gateway.card_update_url(seeded.account_id, return_url="https://x.example")
    problems = schema_problems(api.exchanges, requests=True)
    assert problems == [], "\n".join(problems)
    assert {e.status for e in api.exchanges} <= {200, 201, 404}


def test_recurly_is_enabled_by_its_api_key_from_the_environment(
    api: RecurlyEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.settings import ConfigError, load_settings
    from bot.wiring import configured_gateways

    monkeypatch.setenv("CHARGEDESK_LEDGER__ENABLED", "false")
    assert configured_gateways(load_settings(), None) == []  # type: ignore[arg-type]
    monkeypatch.setenv("CHARGEDESK_RECURLY__API_KEY", api.api_key)
    monkeypatch.setenv("CHARGEDESK_RECURLY__REGION", "eu")
    monkeypatch.setenv("CHARGEDESK_RECURLY__SUBDOMAIN", "acme")
    settings = load_settings()
    (found,) = configured_gateways(settings, None)  # type: ignore[arg-type]
    assert isinstance(found, RecurlyGateway) and found.site_url() == "https://acme.recurly.com"
    assert endpoint(settings.recurly) == ("https", "v3.eu.recurly.com", 443)
    monkeypatch.setenv("CHARGEDESK_RECURLY__SUBDOMAIN", "not a subdomain")
    with pytest.raises(ConfigError, match=r"recurly\.subdomain"):
        load_settings()
