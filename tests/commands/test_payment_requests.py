"""`request`: a pay link emailed to the customer, reminded on schedule, closed by the webhook."""

from __future__ import annotations

import email
import io
import logging
from datetime import datetime, timedelta
from email import policy
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot import jobs
from bot.audit.log import export
from bot.commands.router import COMMANDS, Context, run
from bot.gateways.base import LookupQuery, WebhookRejected
from bot.mail.message import HeaderRefused
from bot.money import Money
from bot.payment_requests import create, lifetime, reminder_steps, reminders
from bot.portal.redact import RedactLinks
from bot.store.tables import AuditEntry, EmailRow, PaymentRequestRow
from bot.webhooks import receive
from tests.conftest import CHANNEL, say
from tests.fakes.stripe_env import WEBHOOK_SECRET, FakeStripe

pytestmark = pytest.mark.storage

WHY = "reason: customer pays by link"


def sent(services: Any) -> list[email.message.EmailMessage]:
    folder = Path(services.settings.data_dir) / "outbox"
    return [
        email.message_from_bytes(p.read_bytes(), policy=policy.default)  # type: ignore[misc]
        for p in sorted(folder.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns)
    ]


def body(message: email.message.EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return part.get_content()


async def requests(services: Any) -> list[PaymentRequestRow]:
    async with services.db.read() as s:
        return list(await s.scalars(select(PaymentRequestRow)))


async def ask(services: Any, agent: Any, fake: FakeStripe, what: str = "25.00 EUR Order 1042"):
    reply = await say(services, agent, f"request stripe:{fake.env.customer_id} {what} {WHY}")
    assert reply.error is None, reply.error
    (row,) = [r for r in await requests(services) if r.state == "open"][-1:]
    return reply, row


def session(fake: FakeStripe, link_id: str) -> dict[str, Any]:
    return fake.emulator.get(link_id)


async def deliver(services: Any, fake: FakeStripe, event: dict[str, Any]) -> list[str]:
    payload, headers = fake.emulator.delivery(event, WEBHOOK_SECRET)
    return await receive(services, "stripe", payload, headers)


def later(row: PaymentRequestRow, **delta: float) -> datetime:
    return row.created + timedelta(**delta)


async def test_a_request_emails_its_pay_link_once_and_reminds_until_the_webhook_says_paid(
    services, stripe, agent
):
    reply, row = await ask(services, agent, stripe)
    url = session(stripe, row.link_id)["url"]
    (card,) = reply.cards
    assert reply.ephemeral and [b.url for b in card.actions if b.url] == [url]  # agent sees it
    await jobs.run_worker(services, burst=True)
    await jobs.run_worker(services, burst=True)
    (first,) = sent(services)
    assert first["To"] == stripe.env.email and url in body(first)
    assert first["Subject"] == "Payment request: €25.00 for Order 1042"

    assert await reminders.run(services, now=later(row, days=2)) == 0
    assert await reminders.run(services, now=later(row, days=3, minutes=1)) == 1
    assert await reminders.run(services, now=later(row, days=3, minutes=2)) == 0  # once
    await jobs.run_worker(services, burst=True)
    assert [m["Subject"].split(":")[0] for m in sent(services)] == [
        "Payment request", "Reminder"
    ]  # fmt: skip

    paid = stripe.emulator.pay_checkout_session(row.link_id)
    assert await deliver(services, stripe, paid) == ["processed"]
    assert await deliver(services, stripe, paid) == ["duplicate"]
    (closed,) = await requests(services)
    assert closed.state == "paid" and closed.paid_with == paid["data"]["object"]["payment_intent"]
    assert await reminders.run(services, now=later(row, days=7, minutes=1)) == 0
    await jobs.run_worker(services, burst=True)
    assert len(sent(services)) == 2
    async with services.db.read() as s:
        outcomes = list(
            await s.scalars(select(AuditEntry.outcome).where(AuditEntry.action == "request"))
        )
    assert outcomes == ["open", "paid"]


async def test_the_payment_intent_webhook_alone_also_marks_it_paid(services, stripe, agent):
    _, row = await ask(services, agent, stripe)
    completed = stripe.emulator.pay_checkout_session(row.link_id)
    intent = stripe.emulator.get(completed["data"]["object"]["payment_intent"])
    await deliver(services, stripe, stripe.emulator.event("payment_intent.succeeded", intent))
    assert [r.state for r in await requests(services)] == ["paid"]


async def test_cancel_expires_the_checkout_session_and_no_reminder_follows(services, stripe, agent):
    _, row = await ask(services, agent, stripe)
    await jobs.run_worker(services, burst=True)
    assert await reminders.run(services, now=later(row, days=3, minutes=1)) == 1  # queued ...
    reply = await say(services, agent, f"request cancel {row.id}")  # ... then cancelled
    assert reply.error is None and "cancelled" in str(reply.cards[0])
    assert session(stripe, row.link_id)["status"] == "expired"
    await jobs.run_worker(services, burst=True)
    assert len(sent(services)) == 1  # the queued reminder is not sent
    assert await reminders.run(services, now=later(row, days=7, minutes=1)) == 0
    again = await say(services, agent, f"request cancel {row.id}")
    assert again.error is not None and again.error.code == "invalid_state"


async def test_a_forged_webhook_changes_nothing(services, stripe, agent):
    _, row = await ask(services, agent, stripe)
    paid = stripe.emulator.event(
        "checkout.session.completed", {**session(stripe, row.link_id), "status": "complete",
                                       "payment_status": "paid"},
    )  # fmt: skip
    payload, headers = stripe.emulator.delivery(paid, "whsec_not_ours")
    with pytest.raises(WebhookRejected):
        await receive(services, "stripe", payload, headers)
    assert [r.state for r in await requests(services)] == ["open"]


async def test_a_webhook_for_another_amount_does_not_mark_it_paid(services, stripe, agent):
    _, row = await ask(services, agent, stripe)
    forged = {**session(stripe, row.link_id), "status": "complete", "payment_status": "paid",
              "amount_total": 100}  # fmt: skip
    await deliver(services, stripe, stripe.emulator.event("checkout.session.completed", forged))
    assert [r.state for r in await requests(services)] == ["open"]


async def test_an_expired_checkout_link_is_replaced_before_the_reminder(services, stripe, agent):
    _, row = await ask(services, agent, stripe)
    await stripe.gateway.cancel_pay_link(row.link_id)  # Stripe's 24 hours are over
    assert await reminders.run(services, now=later(row, days=3, minutes=1)) == 1
    (moved,) = await requests(services)
    assert moved.link_id != row.link_id and moved.state == "open"
    await jobs.run_worker(services, burst=True)
    reminder = sent(services)[-1]
    assert session(stripe, moved.link_id)["url"] in body(reminder)


async def test_an_unpaid_request_expires_and_its_link_is_cancelled(services, stripe, agent):
    _, row = await ask(services, agent, stripe)
    assert await reminders.run(services, now=later(row, days=15)) == 1
    assert [r.state for r in await requests(services)] == ["expired"]
    assert session(stripe, row.link_id)["status"] == "expired"


async def test_the_pay_link_is_in_no_log_line_no_stored_email_and_no_audit_export(
    services, stripe, agent, caplog
):
    caplog.set_level(logging.DEBUG)
    caplog.handler.addFilter(RedactLinks())  # as on the bot's own log handlers
    _, row = await ask(services, agent, stripe)
    await jobs.run_worker(services, burst=True)
    await reminders.run(services, now=later(row, days=3, minutes=1))
    await jobs.run_worker(services, burst=True)
    url = session(stripe, row.link_id)["url"]
    secret = url.split("#", 1)[1]
    assert len(sent(services)) == 2 and all(url in body(m) for m in sent(services))
    assert secret not in caplog.text
    await assert_not_at_rest(services, secret)


async def assert_not_at_rest(services: Any, secret: str) -> None:
    """`secret` is in no stored email and no audit export (the emails exist, the requests
    are audited)."""
    async with services.db.read() as s:
        stored = list(await s.scalars(select(EmailRow.message)))
    assert stored and not any(secret.encode() in m for m in stored)
    for fmt in ("jsonl", "csv"):
        out = io.StringIO()
        await export(services.db, fmt, out)
        assert "request" in out.getvalue() and secret not in out.getvalue()


async def test_a_description_with_a_line_break_cannot_add_an_email_header(services, stripe, agent):
    evil = "Order\r\nBcc: x@evil.example"
    # Typed, the words are joined again with spaces: one line, no new header.
    line = f"request stripe:{stripe.env.customer_id} 5.00 EUR {evil} {WHY}"
    assert (await say(services, agent, line)).error is None
    await jobs.run_worker(services, burst=True)
    (message,) = sent(services)
    assert message["Bcc"] is None and "\n" not in message["Subject"]
    assert message["Subject"] == "Payment request: €5.00 for Order Bcc: x@evil.example"
    # From a form, the text comes whole: refused in one line before anything is made.
    raw = {"customer": f"stripe:{stripe.env.customer_id}", "amount": "5.00 EUR",
           "description": evil, "reason": "pays by link"}  # fmt: skip
    reply = await run(Context(services, agent, CHANNEL), COMMANDS["request"], raw)
    assert reply.error is not None and "\n" not in reply.error.message
    # And the email itself refuses it, whoever calls.
    gateway = services.gateways.get("stripe")
    (profile,) = await gateway.lookup(LookupQuery("email", stripe.env.email))
    with pytest.raises(HeaderRefused):
        await create(
            services, agent, gateway, profile.customer, Money(minor=500, currency="EUR"),
            description=evil, reason="pays by link",
        )  # fmt: skip
    assert len(await requests(services)) == 1 and len(stripe.emulator._of("checkout.session")) == 1


@pytest.mark.parametrize("amount", ["12.345 EUR", "12.50", "0 EUR", "-3 EUR"])
async def test_a_bad_amount_is_a_one_line_error_and_nothing_changes(
    services, stripe, agent, amount
):
    reply = await say(
        services, agent, f"request stripe:{stripe.env.customer_id} {amount} Order 9 {WHY}"
    )
    assert reply.error is not None and "\n" not in reply.error.message
    assert await requests(services) == [] and stripe.emulator._of("checkout.session") == []


async def test_open_requests_show_on_the_customer_card_until_paid(services, stripe, agent):
    _, row = await ask(services, agent, stripe)
    card = (await say(services, agent, f"lookup {stripe.env.email}")).cards[0]
    (section,) = [s for s in card.sections if s.title == "Open payment requests"]
    assert section.table is not None
    ((request_id, amount, what, status),) = section.table.rows
    assert (request_id, amount, what) == (row.id, "€25.00", "Order 1042")
    assert status.startswith("open until") and "0 of 2 reminders" in status
    assert "checkout.stripe.com" not in str(card)  # the card never carries the link
    await deliver(services, stripe, stripe.emulator.pay_checkout_session(row.link_id))
    card = (await say(services, agent, f"lookup {stripe.env.email}")).cards[0]
    assert not [s for s in card.sections if s.title == "Open payment requests"]


async def test_a_customer_may_not_send_payment_requests(services, stripe, customer):
    reply = await say(services, customer, f"request stripe:{stripe.env.customer_id} 5 EUR x {WHY}")
    assert reply.error is not None
    assert await requests(services) == []


def test_the_default_reminders_come_after_the_request_and_before_it_expires(services) -> None:
    steps = reminder_steps(services.settings)
    assert steps == (timedelta(days=3), timedelta(days=7))
    assert all(step > timedelta(0) for step in steps)
    assert max(steps) < lifetime(services.settings) == timedelta(days=14)


async def test_invoice_send_of_an_unpaid_stripe_invoice_has_stripe_send_its_own(
    services, stripe, agent
):
    invoice = stripe.emulator.add_invoice(stripe.env.customer_id, 4200, finalize=True)
    for _ in range(2):  # twice the same day: Stripe sends it once
        reply = await say(services, agent, f"invoice send stripe:{invoice['id']}")
        assert reply.error is None and "sent by stripe" in reply.cards[0].title
    assert stripe.emulator.sent_invoices == [invoice["id"]]
    assert not reply.files and "hosted" not in str(reply.cards[0])
    await jobs.run_worker(services, burst=True)
    assert sent(services) == []  # Stripe emails it, not us


async def test_invoice_send_of_a_paid_invoice_is_still_our_document(services, stripe, agent):
    paid = stripe.emulator.add_invoice(stripe.env.customer_id, 4200, pay=True)
    reply = await say(services, agent, f"invoice send stripe:{paid['id']}")
    assert stripe.emulator.sent_invoices == []
    assert reply.error is None or reply.error.code != "unsupported"


async def test_a_description_holding_a_placeholder_is_refused(services, stripe, agent):
    line = f"request stripe:{stripe.env.customer_id} 5 EUR {{{{chargedesk:pay:pr_x}}}} {WHY}"
    reply = await say(services, agent, line)
    assert reply.error is not None and reply.error.code == "invalid_arguments"
    assert await requests(services) == []
