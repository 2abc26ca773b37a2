"""`refund … manual`: a refund the team paid back by hand, recorded at WooCommerce as
“Refund manually” does (`api_refund: false`), behind the same approval policy as any refund,
exactly once, audited, with a credit note; every other gateway refuses it before approval."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import func, select

from bot import jobs
from bot.approvals.executor import recover
from bot.audit.log import AuditFilter, query
from bot.commands.forms import refund_form, submit
from bot.commands.refund import RefundArgs
from bot.commands.router import Context, parse
from bot.gateways.base import Capability, ErrorCode, Gateway, GatewayError, Unsupported
from bot.gateways.braintree.gateway import BraintreeGateway
from bot.gateways.ledger.gateway import LedgerGateway
from bot.gateways.matrix import cell
from bot.gateways.paypal.gateway import PayPalGateway
from bot.gateways.recurly.gateway import RecurlyGateway
from bot.gateways.stripe.gateway import StripeGateway
from bot.gateways.woocommerce.gateway import WooCommerceGateway
from bot.money import Money
from bot.store.tables import ApprovalRow, DocumentRow
from chargedesk_emulators.woocommerce import PREFIX, WooCommerceEmulator, woocommerce_api
from tests.conftest import CHANNEL, refunded, say
from tests.documents.drafts import repo_branding  # noqa: F401 - a fixture
from tests.fakes.emulated_gateway import bot_client, externals
from tests.fakes.woocommerce_env import seed_contract_customer, woocommerce_settings

pytestmark = pytest.mark.approvals


@pytest.fixture
async def shop(services) -> AsyncIterator[tuple[WooCommerceEmulator, int, httpx.AsyncClient]]:  # type: ignore[no-untyped-def]
    """The emulated store beside the bot's gateways, with a $60.00 cash-on-delivery order
    (paid on delivery: its payment method cannot refund through the API), and the bot's
    web app to deliver the store's webhooks to."""
    with woocommerce_api() as api:
        seeded = seed_contract_customer(api)
        cash = api.add_order("60.00", customer_id=seeded.user_id, payment_method="cod")
        gateway = WooCommerceGateway(woocommerce_settings(api, write_timeout=0.5), backoff=0.01)
        async with bot_client(services, gateway) as http:
            try:
                yield api, cash, http
            finally:
                await gateway.close()


@pytest.fixture
def store(
    shop: tuple[WooCommerceEmulator, int, httpx.AsyncClient],
) -> tuple[WooCommerceEmulator, int]:
    return shop[0], shop[1]


def refund_posts(api: WooCommerceEmulator, order: int) -> list[dict[str, object]]:
    return [json.loads(e.body) for e in api.requests_to("POST", f"{PREFIX}/orders/{order}/refunds")]


async def approvals_count(services) -> int:  # type: ignore[no-untyped-def]
    async with services.db.read() as s:
        return int(await s.scalar(select(func.count()).select_from(ApprovalRow)) or 0)


# --- within the limit, above it ---------------------------------------------------------------


async def test_an_agents_manual_refund_within_the_limit_is_recorded_with_api_refund_false(
    services, store, agent
) -> None:
    api, cash = store
    reply = await say(
        services, agent, f"refund woocommerce:{cash} 40.00 manual reason: goodwill paid in cash"
    )
    assert reply.error is None, reply.error
    assert reply.approval is not None and reply.approval.state == "succeeded"
    assert reply.cards[0].title == (
        f"Record a refund of $40.00 on {cash} paid back by hand (no money moves at woocommerce): done"
    )
    assert refund_posts(api, cash) == [{
        "amount": "40.00",
        "reason": f"Refund ref {reply.approval.id}",
        "api_refund": False,
        "meta_data": [{"key": "chargedesk_request", "value": reply.approval.id}],
    }]  # fmt: skip
    (stored,) = api.refunds.values()
    assert (stored.amount, stored.refunded_payment) == (Decimal("40.00"), False)
    assert api.gateway_refunds == []  # the payment plugin was never asked
    (note,) = [n for n in api.notes.values() if n.order_id == cash]
    assert not note.customer_note
    assert note.note == (
        f"Recorded $40.00 as paid back by hand, through ChargeDesk (ref {reply.approval.id}): "
        "goodwill paid in cash"
    )
    entries = await query(services.db, AuditFilter(approval_id=reply.approval.id))
    by_outcome = {e.outcome: e for e in entries}
    assert by_outcome["requested"].detail["params"] == {"method": "manual"}
    assert by_outcome["succeeded"].gateway_request_id == str(stored.id)
    assert (by_outcome["succeeded"].amount, by_outcome["succeeded"].currency) == (4000, "USD")


async def test_a_whole_manual_refund_marks_the_order_refunded(services, store, agent) -> None:
    api, _ = store
    small = api.add_order("30.00", payment_method="bacs")
    reply = await say(services, agent, f"refund woocommerce:{small} manual reason: goodwill sent")
    assert reply.approval is not None and reply.approval.state == "succeeded", reply.error
    assert api.orders[small].status == "refunded" and api.gateway_refunds == []


async def test_a_manual_refund_above_the_agents_limit_waits_for_a_manager(
    services, store, agent, manager
) -> None:
    api, cash = store
    asked = await say(
        services, agent, f"refund woocommerce:{cash} 55.00 manual reason: goodwill bank transfer"
    )
    assert asked.approval is not None and asked.approval.state == "pending", asked.error
    title = asked.cards[0].title
    assert title.startswith(f"Record a refund of $55.00 on {cash} paid back by hand")
    assert title.endswith("waiting for approval")
    assert api.refunds == {}
    done = await say(services, manager, f"approve {asked.approval.id}")
    assert done.approval is not None and done.approval.state == "succeeded", done.error
    (stored,) = api.refunds.values()
    assert (stored.amount, stored.refunded_payment) == (Decimal("55.00"), False)


async def test_manual_refunds_count_against_the_agents_daily_budget(services, store, agent) -> None:
    api, _ = store
    orders = [api.add_order("50.00", payment_method="cod") for _ in range(5)]
    states = []
    for order in orders:
        reply = await say(services, agent, f"refund woocommerce:{order} manual reason: goodwill")
        assert reply.approval is not None, reply.error
        states.append(reply.approval.state)
    # 200.00 a day alone: the fifth $50.00 needs a manager.
    assert states == ["succeeded"] * 4 + ["pending"]


# --- exactly once -----------------------------------------------------------------------------


async def test_a_manual_refund_retried_after_a_timeout_records_once(services, store, agent) -> None:
    api, cash = store
    # WooCommerce records it but answers after we gave up: the outcome is unknown.
    api.slow_next(1, 2.0, after=True, method="POST", path_prefix=f"{PREFIX}/orders/{cash}/refunds")
    asked = await say(
        services, agent, f"refund woocommerce:{cash} 30.00 manual reason: goodwill cash back"
    )
    assert asked.approval is not None and asked.approval.state == "executing", asked.error
    for _ in range(100):
        if api.refunds:
            break
        await asyncio.sleep(0.05)
    (view,) = await recover(services, older_than=timedelta(0))
    (stored,) = api.refunds.values()
    assert view.state.value == "succeeded" and view.result_id == str(stored.id)
    assert await recover(services, older_than=timedelta(0)) == []
    assert len(refund_posts(api, cash)) == 1 and not stored.refunded_payment


async def test_the_same_manual_refund_approved_twice_records_once(
    services, store, agent, manager, other_manager
) -> None:
    api, cash = store
    asked = await say(
        services, agent, f"refund woocommerce:{cash} 58.00 manual reason: duplicate paid twice"
    )
    assert asked.approval is not None
    await asyncio.gather(
        say(services, manager, f"approve {asked.approval.id}"),
        say(services, other_manager, f"approve {asked.approval.id}"),
    )
    (stored,) = api.refunds.values()
    assert stored.amount == Decimal("58.00") and len(refund_posts(api, cash)) == 1


async def test_again_repeats_a_manual_refund_as_a_manual_refund(services, store, agent) -> None:
    api, cash = store
    line = f"refund woocommerce:{cash} 10.00 manual reason: goodwill cash back"
    first = await say(services, agent, line)
    twice = await say(services, agent, line)
    assert twice.error is not None and twice.error.code == "duplicate_request"
    assert first.approval is not None and len(api.refunds) == 1
    again = await say(services, agent, f"again {first.approval.id}")
    assert again.approval is not None and again.approval.state == "succeeded", again.error
    assert [p["api_refund"] for p in refund_posts(api, cash)] == [False, False]
    assert api.refunded(cash) == Decimal("20.00") and api.gateway_refunds == []


# --- refused before anyone approves -----------------------------------------------------------


async def test_a_manual_refund_above_what_remains_is_refused_before_approval(
    services, store, agent
) -> None:
    api, cash = store
    reply = await say(services, agent, f"refund woocommerce:{cash} 70.00 manual reason: goodwill")
    assert reply.error is not None and reply.error.code == "amount_too_large"
    assert "$60.00" in reply.error.message and reply.approval is None
    assert api.refunds == {} and await approvals_count(services) == 0


async def test_a_manual_refund_raced_past_what_remains_goes_stale_and_records_nothing(
    services, store, agent, manager
) -> None:
    api, cash = store
    asked = await say(services, agent, f"refund woocommerce:{cash} 55.00 manual reason: goodwill")
    assert asked.approval is not None and asked.approval.state == "pending"
    api.refund_in_dashboard(cash, "20.00", api_refund=False)  # someone recorded part of it
    done = await say(services, manager, f"approve {asked.approval.id}")
    assert done.approval is not None and done.approval.state == "stale"
    assert api.refunded(cash) == Decimal("20.00") and refund_posts(api, cash) == []


async def test_manual_on_the_ledger_is_unsupported_with_the_reason_before_approval(
    services, agent
) -> None:
    reply = await say(services, agent, "refund ledger:ch_jane_1 10 manual reason: goodwill cash")
    assert reply.error is not None and reply.error.code == "unsupported"
    assert reply.error.message == (
        "the ledger gateway does not support manual refund: a ledger refund is a record "
        "already, sent to your system when a forward URL is set: use refund without manual"
    )
    assert reply.approval is None and await approvals_count(services) == 0
    assert await refunded(services, "ch_jane_1") == 0


@pytest.mark.parametrize(
    "gateway",
    [StripeGateway, PayPalGateway, BraintreeGateway, RecurlyGateway],
    ids=lambda g: g.name,
)
async def test_other_gateways_refuse_manual_refunds_saying_why(gateway: type[Gateway]) -> None:
    # Never connected: the refusal needs nothing from the gateway's account.
    gw = object.__new__(gateway)
    reason = "refunds go back through the gateway: use refund without manual"
    with pytest.raises(Unsupported) as checked:
        gw.require(Capability.manual_refund)  # what the refund command asks before approval
    with pytest.raises(Unsupported) as recorded:
        await gw.record_manual_refund(
            "ch_1", Money(minor=100, currency="USD"), reason="x", idempotency_key="k"
        )
    for info in (checked, recorded):
        assert info.value.reason == reason and info.value.capability == Capability.manual_refund
        assert str(info.value.message) == (
            f"the {gateway.name} gateway does not support manual refund: {reason}"
        )


def test_the_matrix_says_only_woocommerce_records_manual_refunds() -> None:
    assert cell(WooCommerceGateway, Capability.manual_refund).startswith("as “Refund manually”")
    for gateway in (LedgerGateway, StripeGateway, PayPalGateway, BraintreeGateway, RecurlyGateway):
        assert cell(gateway, Capability.manual_refund) == "no"


# --- the refusal that offers it, and a method that could refund itself ------------------------


async def test_a_method_that_cannot_refund_offers_the_manual_command_which_then_works(
    services, store, agent
) -> None:
    api, cash = store
    refused = await say(services, agent, f"refund woocommerce:{cash} 10.00 reason: goodwill lid")
    assert refused.error is not None and refused.error.code == "unsupported"
    assert refused.approval is None and api.refunds == {}
    offered = f"refund woocommerce:{cash} 10.00 manual reason: …"
    assert f"`{offered}`" in refused.error.message
    assert len(refused.error.message) <= 300
    typed = offered.replace("…", "goodwill broken lid, cash back")
    done = await say(services, agent, typed)
    assert done.approval is not None and done.approval.state == "succeeded", done.error
    assert api.refunded(cash) == Decimal("10.00") and api.gateway_refunds == []


async def test_manual_on_an_order_whose_method_refunds_itself_records_without_asking_it(
    services, store, agent
) -> None:
    api, _ = store
    card = api.add_order("45.00", payment_method="stripe")  # its plugin could refund
    reply = await say(
        services, agent, f"refund woocommerce:{card} 45.00 manual reason: goodwill paid by transfer"
    )
    assert reply.approval is not None and reply.approval.state == "succeeded", reply.error
    (stored,) = api.refunds.values()
    assert not stored.refunded_payment and api.gateway_refunds == []
    assert api.orders[card].status == "refunded"


# --- credit note ------------------------------------------------------------------------------


@pytest.mark.usefixtures("repo_branding")
async def test_a_manual_refund_gets_one_credit_note(services, shop, agent) -> None:
    api, cash, http = shop
    reply = await say(services, agent, f"refund woocommerce:{cash} 25.00 manual reason: goodwill")
    assert reply.approval is not None and reply.approval.state == "succeeded", reply.error
    (stored,) = api.refunds.values()
    # WooCommerce tells us of the order change too: our own refund, no second document.
    answer = await http.post(
        "/webhooks/woocommerce", content=(sent := api.webhook("order.updated", cash))[0],
        headers=sent[1],
    )  # fmt: skip
    assert answer.status_code == 200
    assert await externals(services) == []  # known as the agent's request, not a dashboard's
    await jobs.run_worker(services, burst=True)
    await jobs.run_worker(services, burst=True)
    async with services.db.read() as session:
        notes = [d for d in await session.scalars(select(DocumentRow)) if d.kind == "credit_note"]
    (note,) = notes
    assert (note.source_gateway, note.source_id, note.gross) == (
        "woocommerce",
        str(stored.id),
        2500,
    )


# --- what is typed ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "amount", "method"),
    [
        ("refund woocommerce:1234 manual reason: goodwill", None, "manual"),
        ("refund woocommerce:1234 12.50 manual reason: goodwill", "12.50", "manual"),
        ("refund woocommerce:1234 manual 12.50 reason: goodwill", "12.50", "manual"),
        ("refund woocommerce:1234 12.50 USD Manual reason: goodwill", "12.50 USD", "manual"),
        ("refund woocommerce:1234 12.50 reason: goodwill", "12.50", "gateway"),
    ],
)
def test_manual_is_typed_after_the_charge_or_the_amount(
    line: str, amount: str | None, method: str
) -> None:
    _, raw = parse(line)
    args = RefundArgs.model_validate(raw)
    assert (args.amount, args.method) == (amount, method)


@pytest.mark.parametrize(
    ("typed", "code", "says"),
    [
        ("10.00 by-hand reason: goodwill cash", "invalid_arguments", "method"),
        ("10.00 manual reason: ab", "invalid_arguments", "reason"),
        ("manual manual reason: goodwill cash", "invalid_amount", "manual"),
        ("10.00 manual extra reason: goodwill cash", "usage", "too many arguments"),
        ("ten manual reason: goodwill cash", "invalid_amount", "ten"),
    ],
)
async def test_bad_input_is_one_line_and_changes_nothing(
    services, store, agent, typed: str, code: str, says: str
) -> None:
    api, cash = store
    reply = await say(services, agent, f"refund woocommerce:{cash} {typed}")
    assert reply.error is not None and reply.error.code == code, reply.error
    assert says in reply.error.message and "\n" not in reply.error.message
    assert len(reply.error.message) <= 300
    assert reply.approval is None and api.refunds == {} and refund_posts(api, cash) == []
    assert await approvals_count(services) == 0


async def test_the_refund_form_asks_how_only_where_manual_refunds_are_recorded(
    services, store, agent
) -> None:
    api, cash = store
    ctx = Context(services, agent, CHANNEL)
    woo = await refund_form(ctx, f"woocommerce:{cash}")
    (how,) = [f for f in woo.fields if f.name == "method"]
    assert (how.kind, how.default, [c.value for c in how.choices]) == (
        "select", "gateway", ["gateway", "manual"],
    )  # fmt: skip
    ledger = await refund_form(ctx, "ledger:ch_jane_1")
    assert "method" not in [f.name for f in ledger.fields]
    reply = await submit(ctx, woo, {
        "amount": "15.00", "method": "manual", "reason_code": "goodwill", "reason_text": "cash",
    })  # fmt: skip
    assert reply.approval is not None and reply.approval.state == "succeeded", reply.error
    assert [p["api_refund"] for p in refund_posts(api, cash)] == [False]


# --- the gateway alone --------------------------------------------------------------------------


async def test_a_manual_record_whose_answer_was_lost_is_found_by_its_key(store) -> None:
    api, cash = store
    gw = WooCommerceGateway(woocommerce_settings(api), backoff=0.01)
    usd = Money(minor=2000, currency="USD")
    try:
        api.fail_next(1, 502, after=True, method="POST")
        with pytest.raises(GatewayError) as info:
            await gw.record_manual_refund(str(cash), usd, reason="cash", idempotency_key="apr_lost")
        assert info.value.code == ErrorCode.unavailable  # unknown: the executor runs it again
        again = await gw.record_manual_refund(
            str(cash), usd, reason="cash", idempotency_key="apr_lost"
        )
    finally:
        await gw.close()
    (stored,) = api.refunds.values()
    assert again.id == str(stored.id) and not stored.refunded_payment


async def test_a_manual_record_raced_by_the_dashboard_says_what_remains(store) -> None:
    api, _ = store
    card = api.add_order("60.00", payment_method="stripe")  # the race refunds through its plugin
    gw = WooCommerceGateway(woocommerce_settings(api), backoff=0.01)
    try:
        api.race_next_refund("50.00")
        with pytest.raises(GatewayError) as info:
            await gw.record_manual_refund(
                str(card), Money(minor=4000, currency="USD"), reason="cash", idempotency_key="k1"
            )
    finally:
        await gw.close()
    assert info.value.code == ErrorCode.amount_too_large and "only $10.00" in info.value.message
    assert api.refunded(card) == Decimal("50.00")
