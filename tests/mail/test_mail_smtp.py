"""Emails queued in SQL and delivered to a real SMTP server (aiosmtpd on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from sqlalchemy import func, select

from bot.mail.message import build_message
from bot.mail.outbox import FAILED, SENT, RetryLater, deliver, queue, status
from bot.store.tables import EmailRow
from chargedesk_emulators.smtp import smtp_server
from tests.mail.mailtools import PDF, queue_receipt, with_mail

pytestmark = pytest.mark.storage


async def test_a_queued_email_arrives_with_its_pdf_and_billing_headers(services, smtp):
    mail = with_mail(services, smtp_url=smtp.url(), from_name="Shop Billing")
    email_id = await queue_receipt(mail)
    async with mail.db.read() as session:
        built_id = (await session.get(EmailRow, email_id)).message.split(b"Message-ID: ")[1]

    assert await deliver(mail, email_id) == SENT

    [received] = smtp.received
    assert received.mail_from == "billing@example.com"
    assert received.rcpt_tos == ["jane@example.com"]
    message = received.message
    assert message["From"] == "Shop Billing <billing@example.com>"
    assert message["To"] == "jane@example.com"
    assert message["Subject"] == "Your receipt R-2026-0001"
    assert message["Reply-To"] == "help@shop.example"
    assert message["X-ChargeDesk-Customer"] == "ledger:cus_jane"
    assert message["X-ChargeDesk-Document"] == "R-2026-0001"
    assert message["X-ChargeDesk-Kind"] == "receipt"
    assert built_id.startswith(message["Message-ID"].encode())  # the id built at queue time
    [attachment] = list(message.iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_filename() == "R-2026-0001.pdf"
    assert attachment.get_content() == PDF
    assert "Receipt R-2026-0001 is attached" in message.get_body(("plain",)).get_content()

    done = await status(mail.db, email_id)
    assert (done.state, done.attempts, done.last_error) == (SENT, 1, None)
    assert done.sent_at is not None
    # Delivering again sends nothing.
    assert await deliver(mail, email_id) == SENT
    assert len(smtp.received) == 1


async def test_one_purpose_queues_one_email(services):
    email_id = await queue_receipt(services)
    message = build_message(
        settings=services.settings,
        sender_name="Shop",
        to="jane@example.com",
        subject="Again",
        text="x",
    )
    async with services.db.write() as session:
        again = await queue(
            session,
            purpose="receipt:R-2026-0001",
            recipient="jane@example.com",
            subject="Again",
            message=message,
        )
    assert again is None
    async with services.db.read() as session:
        assert await session.scalar(select(func.count()).select_from(EmailRow)) == 1
    assert (await status(services.db, email_id)).subject == "Your receipt R-2026-0001"


async def test_two_transactions_queueing_one_purpose_make_one_email(services):
    message = build_message(
        settings=services.settings, sender_name="Shop", to="jane@example.com", subject="S", text="x"
    )

    async def issue_and_queue() -> str | None:
        async with services.db.write() as session:
            email_id = await queue(
                session,
                purpose="receipt:R-9",
                recipient="jane@example.com",
                subject="S",
                message=message,
            )
            await asyncio.sleep(0.1)  # the other transaction meanwhile tries the same purpose
            # The transaction goes on (and commits) whether or not this one won.
            await session.execute(select(1))
            return email_id

    ids = await asyncio.gather(issue_and_queue(), issue_and_queue())

    assert sum(email_id is not None for email_id in ids) == 1
    async with services.db.read() as session:
        assert await session.scalar(select(func.count()).select_from(EmailRow)) == 1


async def test_queueing_rolls_back_with_its_cause(services):
    message = build_message(
        settings=services.settings, sender_name="Shop", to="jane@example.com", subject="S", text="x"
    )
    with pytest.raises(RuntimeError):
        async with services.db.write() as session:
            await queue(
                session,
                purpose="receipt:X",
                recipient="jane@example.com",
                subject="S",
                message=message,
            )
            raise RuntimeError("the receipt failed to issue")
    async with services.db.read() as session:
        assert await session.scalar(select(func.count()).select_from(EmailRow)) == 0


async def test_a_permanent_refusal_fails_the_email_without_retry(services, smtp, caplog):
    mail = with_mail(services, smtp_url=smtp.url())
    email_id = await queue_receipt(mail)
    smtp.data_answers = ["550 5.7.1 Message rejected as spam"]

    with caplog.at_level(logging.ERROR, logger="bot.mail.outbox"):
        assert await deliver(mail, email_id) == FAILED

    done = await status(mail.db, email_id)
    assert (done.state, done.attempts) == (FAILED, 1)
    assert "550" in done.last_error and "rejected as spam" in done.last_error
    assert smtp.received == []
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert email_id in record.getMessage() and "receipt:R-2026-0001" in record.getMessage()
    # A failed email stays failed: no further attempt reaches the server.
    assert await deliver(mail, email_id) == FAILED
    assert smtp.rcpt_attempts == 1


async def test_a_refused_recipient_is_permanent(services, smtp):
    mail = with_mail(services, smtp_url=smtp.url())
    email_id = await queue_receipt(mail)
    smtp.rcpt_answers = ["550 5.1.1 No such user"]
    assert await deliver(mail, email_id) == FAILED
    assert "No such user" in (await status(mail.db, email_id)).last_error


async def test_a_temporary_refusal_puts_the_email_back(services, smtp):
    mail = with_mail(services, smtp_url=smtp.url(), retry_seconds=30)
    email_id = await queue_receipt(mail)
    smtp.rcpt_answers = ["451 4.3.0 Try again later", "451 4.3.0 Try again later"]

    with pytest.raises(RetryLater) as first:
        await deliver(mail, email_id)
    assert first.value.delay == 30
    with pytest.raises(RetryLater) as second:
        await deliver(mail, email_id)
    assert second.value.delay == 60
    waiting = await status(mail.db, email_id)
    assert (waiting.state, waiting.attempts) == ("pending", 2)
    assert "451" in waiting.last_error

    assert await deliver(mail, email_id) == SENT
    assert len(smtp.received) == 1
    assert (await status(mail.db, email_id)).attempts == 3


async def test_the_last_allowed_attempt_fails_the_email(services, smtp):
    mail = with_mail(services, smtp_url=smtp.url(), max_attempts=2)
    email_id = await queue_receipt(mail)
    smtp.rcpt_answers = ["451 4.3.0 Try again later"] * 2
    with pytest.raises(RetryLater):
        await deliver(mail, email_id)
    assert await deliver(mail, email_id) == FAILED
    assert (await status(mail.db, email_id)).attempts == 2


async def test_a_server_that_is_down_is_temporary(services, smtp):
    async with smtp_server() as gone:
        url = gone.url()
    mail = with_mail(services, smtp_url=url)
    email_id = await queue_receipt(mail)
    with pytest.raises(RetryLater):
        await deliver(mail, email_id)
    assert (await status(mail.db, email_id)).state == "pending"


async def test_required_starttls_that_the_server_lacks_is_temporary(services, smtp):
    mail = with_mail(services, smtp_url=smtp.url("smtp+starttls"))
    email_id = await queue_receipt(mail)
    with pytest.raises(RetryLater):
        await deliver(mail, email_id)
    waiting = await status(mail.db, email_id)
    assert waiting.state == "pending" and "STARTTLS" in waiting.last_error.upper()
    assert smtp.rcpt_attempts == 0


async def test_two_deliverers_at_once_send_it_once(services, smtp):
    mail = with_mail(services, smtp_url=smtp.url())
    email_id = await queue_receipt(mail)
    smtp.data_delay = 0.2  # the first is still sending when the second arrives

    states = await asyncio.gather(*(deliver(mail, email_id) for _ in range(2)))

    assert sorted(states) == ["busy", SENT]
    assert len(smtp.received) == 1
    assert (await status(mail.db, email_id)).attempts == 1


async def test_the_smtp_password_never_reaches_the_logs(services, caplog):
    password = "pw-Zq8-never-log-me"
    async with smtp_server(login=("shop", "the-right-one")) as server:
        mail = with_mail(services, smtp_url=server.url(userinfo=f"shop:{password}"))
        email_id = await queue_receipt(mail)
        with caplog.at_level(logging.DEBUG), pytest.raises(RetryLater):
            await deliver(mail, email_id)
        assert server.failed_logins >= 1  # each mechanism the client tried

        waiting = await status(mail.db, email_id)
        assert "login rejected: 535" in waiting.last_error
        assert f"smtp://shop:***@127.0.0.1:{server.port}" in waiting.last_error
        assert password not in waiting.last_error
        assert caplog.records and password not in caplog.text

        # With the right password, it goes out (and still is not logged).
        server.login = ("shop", password)
        caplog.clear()
        with caplog.at_level(logging.DEBUG):
            assert await deliver(mail, email_id) == SENT
        assert len(server.received) == 1
        assert "shop:***@" in caplog.text and password not in caplog.text
