"""PayPal pay links: `request` on a PayPal payer makes an Orders v2 checkout, the buyer
approves it on PayPal, and the bot captures it exactly once (webhook or reminder job)."""

from __future__ import annotations

import asyncio
import email
from collections.abc import AsyncIterator
from datetime import timedelta
from email import policy
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot import jobs
from bot.gateways.base import GatewayError
from bot.gateways.paypal.gateway import PayPalGateway
from bot.models import PayLinkStatus
from bot.money import Money
from bot.payment_requests import reminders
from bot.store.tables import PaymentRequestRow
from bot.webhooks import receive
from chargedesk_emulators.paypal import PayPalEmulator, schema_problems
from tests.conftest import say
from tests.fakes.paypal_env import Seeded, paypal_beside

pytestmark = pytest.mark.storage

WHY = "reason: customer pays by link"


class PayPal:
    def __init__(self, api: PayPalEmulator, seeded: Seeded, gateway: PayPalGateway) -> None:
        self.api, self.seeded, self.gateway = api, seeded, gateway

    def captures_of(self, order_id: str) -> list[Any]:
        return self.api.requests_to("POST", f"/v2/checkout/orders/{order_id}/capture")


@pytest.fixture
async def paypal(services: Any) -> AsyncIterator[PayPal]:
    """Our PayPal gateway on the emulator, beside the services' gateways."""
    async with paypal_beside(services) as beside:
        yield PayPal(*beside)


async def requests(services: Any) -> list[PaymentRequestRow]:
    async with services.db.read() as s:
        return list(await s.scalars(select(PaymentRequestRow)))


def sent(services: Any) -> list[email.message.EmailMessage]:
    folder = Path(services.settings.data_dir) / "outbox"
    return [
        email.message_from_bytes(p.read_bytes(), policy=policy.default)  # type: ignore[misc]
        for p in sorted(folder.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns)
    ]


async def ask(services: Any, agent: Any, paypal: PayPal) -> PaymentRequestRow:
    line = f"request paypal:{paypal.seeded.payer_id} 25.00 USD Order 1042 {WHY}"
    reply = await say(services, agent, line)
    assert reply.error is None, reply.error
    (row,) = [r for r in await requests(services) if r.state == "open"]
    return row


async def deliver(services: Any, api: PayPalEmulator, event_type: str, resource: Any) -> list[str]:
    kind = "checkout-order" if event_type.startswith("CHECKOUT.") else "capture"
    body, headers = api.webhook_delivery(event_type, resource, resource_type=kind)
    return await receive(services, "paypal", body, headers)


async def test_paypal_request_makes_one_order_the_buyer_approves_and_the_webhook_captures_once(
    services, paypal, agent
):
    row = await ask(services, agent, paypal)
    order = paypal.api.orders[row.link_id]
    assert paypal.api.orders_created == 1 and order.status == "PAYER_ACTION_REQUIRED"
    assert (order.custom_id, order.invoice_id) == (f"chargedesk:{row.id}", row.id)
    assert (order.amount, order.currency, order.intent) == (25, "USD", "CAPTURE")
    (made,) = paypal.api.requests_to("POST", "/v2/checkout/orders")
    assert made.headers["paypal-request-id"] == f"{row.id}:link:0"
    await jobs.run_worker(services, burst=True)
    (first,) = sent(services)
    text = first.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert f"https://www.sandbox.paypal.com/checkoutnow?token={row.link_id}" in text
    assert paypal.captures_of(row.link_id) == []  # nobody approved yet: nothing captured

    approved = paypal.api.approve_order(row.link_id, paypal.seeded.payer_id)
    assert await deliver(services, paypal.api, "CHECKOUT.ORDER.APPROVED", approved) == ["processed"]
    (capture_id,) = order.captures
    (closed,) = await requests(services)
    assert closed.state == "paid" and closed.paid_with == capture_id
    assert paypal.api.captures[capture_id].status == "COMPLETED" and order.status == "COMPLETED"
    # PayPal's own capture event, and a redelivery of the approval, change nothing more.
    capture = paypal.api.capture_json(capture_id)
    assert capture["custom_id"] == f"chargedesk:{row.id}"
    assert await deliver(services, paypal.api, "PAYMENT.CAPTURE.COMPLETED", capture) == [
        "processed"
    ]
    await deliver(services, paypal.api, "CHECKOUT.ORDER.APPROVED", approved)
    assert len(paypal.captures_of(row.link_id)) == 1 and len(order.captures) == 1
    assert [r.state for r in await requests(services)] == ["paid"]
    assert schema_problems(paypal.api.exchanges, requests=True) == []


async def test_paypal_pay_link_is_one_order_however_often_retried(paypal):
    gateway, api = paypal.gateway, paypal.api
    usd = Money(minor=2500, currency="USD")
    api.fail_next(1, 500, after=True, method="POST", path_prefix="/v2/checkout/orders")
    links = [
        await gateway.create_pay_link(
            paypal.seeded.payer_id,
            usd,
            description="Order 7",
            reference="pr_00000000000000aa",
            idempotency_key="pr_00000000000000aa:link:0",
        )
        for _ in range(3)
    ]
    assert {link.id for link in links} == {links[0].id} and api.orders_created == 1
    assert links[0].status == PayLinkStatus.open and links[0].url is not None
    assert links[0].expires_at is not None
    other = await gateway.create_pay_link(
        paypal.seeded.payer_id, usd, description="Order 7", reference="pr_00000000000000aa",
        idempotency_key="pr_00000000000000aa:link:1",
    )  # fmt: skip
    assert other.id != links[0].id and api.orders_created == 2


async def test_a_lost_approval_webhook_is_caught_by_the_reminder_job_capturing_once(
    services, paypal, agent
):
    row = await ask(services, agent, paypal)
    paypal.api.approve_order(row.link_id, paypal.seeded.payer_id)  # its webhook never came
    # Readers at once (the placeholder, the reminder job, an agent): one capture.
    links = await asyncio.gather(*(paypal.gateway.get_pay_link(row.link_id) for _ in range(3)))
    assert {link.status for link in links} == {PayLinkStatus.paid}
    assert len(paypal.api.orders[row.link_id].captures) == 1
    due = row.created + timedelta(days=3, minutes=1)
    assert await reminders.run(services, now=due) == 1
    (closed,) = await requests(services)
    assert closed.state == "paid" and closed.reminders_sent == 0
    assert closed.paid_with == paypal.api.orders[row.link_id].captures[0]
    assert await reminders.run(services, now=due + timedelta(days=4)) == 0
    assert len(paypal.api.orders[row.link_id].captures) == 1


async def test_a_cancelled_paypal_request_is_never_captured_even_if_the_buyer_approves(
    services, paypal, agent
):
    row = await ask(services, agent, paypal)
    reply = await say(services, agent, f"request cancel {row.id}")
    assert reply.error is None and "cancelled" in str(reply.cards[0])
    order = paypal.api.orders[row.link_id]
    assert order.custom_id == f"chargedesk-cancelled:{row.id}"
    await jobs.run_worker(services, burst=True)
    assert sent(services) == []  # the queued request email is refused once cancelled
    approved = paypal.api.approve_order(row.link_id, paypal.seeded.payer_id)  # too late
    assert await deliver(services, paypal.api, "CHECKOUT.ORDER.APPROVED", approved) == ["processed"]
    link = await paypal.gateway.get_pay_link(row.link_id)
    assert link.status == PayLinkStatus.expired and link.url is None
    assert paypal.captures_of(row.link_id) == [] and order.captures == []
    assert [r.state for r in await requests(services)] == ["cancelled"]


async def test_an_approved_order_of_the_merchants_own_site_is_never_captured_by_the_bot(
    services, paypal
):
    theirs = paypal.api.add_checkout_order("40.00", custom_id="shop-order-55")
    approved = paypal.api.approve_order(theirs, paypal.seeded.payer_id)
    assert await deliver(services, paypal.api, "CHECKOUT.ORDER.APPROVED", approved) == ["processed"]
    link = await paypal.gateway.get_pay_link(theirs)
    assert link.status == PayLinkStatus.open and paypal.captures_of(theirs) == []


async def test_an_unpaid_paypal_request_expires_and_its_order_is_marked_cancelled(
    services, paypal, agent
):
    row = await ask(services, agent, paypal)
    assert await reminders.run(services, now=row.created + timedelta(days=15)) == 1
    assert [r.state for r in await requests(services)] == ["expired"]
    assert paypal.api.orders[row.link_id].custom_id == f"chargedesk-cancelled:{row.id}"


async def test_the_paypal_emulator_captures_an_order_only_once_approved_and_only_once(paypal):
    link = await paypal.gateway.create_pay_link(
        paypal.seeded.payer_id, Money(minor=900, currency="USD"), description="Order 8",
        reference="pr_00000000000000bb", idempotency_key="pr_00000000000000bb:link:0",
    )  # fmt: skip
    client = paypal.gateway._api  # PayPal's own answers, below our gateway's rules

    async def capture(key: str) -> str | None:
        try:
            await client.sdk(
                client.sdk_client.orders.capture_order, {"id": link.id, "paypal_request_id": key},
                verb="capture", what=f"order {link.id}",
            )  # fmt: skip
        except GatewayError as exc:
            return exc.raw_code
        return None

    assert await capture("a") == "ORDER_NOT_APPROVED"
    paypal.api.approve_order(link.id, paypal.seeded.payer_id)
    assert await capture("b") is None and await capture("b") is None  # a replay
    assert await capture("c") == "ORDER_ALREADY_CAPTURED"
    assert len(paypal.api.orders[link.id].captures) == 1
    with pytest.raises(GatewayError) as refused:
        await paypal.gateway.cancel_pay_link(link.id)  # paid: left as it is, no error
        await client.sdk(
            client.sdk_client.orders.patch_order,
            {"id": link.id, "body": [{"op": "replace", "path": "/purchase_units/@reference_id=="
                                      "'default'/custom_id", "value": "x"}]},
            verb="patch", what="order",
        )  # fmt: skip
    assert refused.value.raw_code == "ORDER_ALREADY_COMPLETED"
    assert schema_problems(paypal.api.exchanges, requests=True) == []
