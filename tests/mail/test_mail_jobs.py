"""Sending through the job queue: a real arq worker (burst mode) on the test Redis."""

from __future__ import annotations

import asyncio

import pytest
from arq.constants import job_key_prefix

from bot import jobs
from bot.mail.outbox import SENT, deliver, status
from tests.mail.mailtools import queue_receipt, with_mail

pytestmark = pytest.mark.storage


async def test_a_temporary_failure_is_retried_by_the_worker_then_sent_once(services, smtp):
    mail = with_mail(services, smtp_url=smtp.url(), retry_seconds=0.05)
    email_id = await queue_receipt(mail)
    smtp.rcpt_answers = ["451 4.3.0 Greylisted, try again later"] * 2

    assert await jobs.enqueue_email(mail, email_id) is True
    assert await jobs.enqueue_email(mail, email_id) is False  # already queued: one job
    worker = await jobs.run_worker(mail, burst=True, poll_delay=0.05)

    assert worker.jobs_retried == 2  # arq ran the job again after each 451
    assert smtp.rcpt_attempts == 3
    assert len(smtp.received) == 1
    done = await status(mail.db, email_id)
    assert (done.state, done.attempts) == (SENT, 3)
    assert "451" not in (done.last_error or "")


async def test_the_sweeper_sends_an_email_whose_job_was_lost(services, smtp):
    mail = with_mail(services, smtp_url=smtp.url())
    email_id = await queue_receipt(mail)
    await jobs.enqueue_email(mail, email_id)
    # Redis lost the job (a restart without persistence, an eviction).
    await services.redis.delete(
        jobs.queue_name(mail.settings),
        f"{job_key_prefix}{mail.settings.redis_prefix}email:{email_id}",
    )

    await jobs.run_worker(mail, burst=True, poll_delay=0.05)

    assert len(smtp.received) == 1
    assert (await status(mail.db, email_id)).state == SENT


async def test_the_sweeper_enqueues_only_what_waits(services, smtp):
    mail = with_mail(services, smtp_url=smtp.url())
    waiting = await queue_receipt(mail, "R-1")
    sent = await queue_receipt(mail, "R-2")
    assert await deliver(mail, sent) == SENT

    async with jobs._arq(mail) as redis:
        assert await jobs.sweep_emails({"services": mail, "redis": redis}) == 1
        assert await jobs.sweep_emails({"services": mail, "redis": redis}) == 0  # already queued
        assert await redis.exists(f"{job_key_prefix}{mail.settings.redis_prefix}email:{waiting}")

    await jobs.run_worker(mail, burst=True, poll_delay=0.05)
    assert [r.message["X-ChargeDesk-Document"] for r in smtp.received] == ["R-2", "R-1"]


async def test_the_in_process_worker_sends_what_is_enqueued(services, smtp):
    mail = with_mail(services, smtp_url=smtp.url())
    task = jobs.start_in_process_worker(mail)
    try:
        email_id = await queue_receipt(mail)
        await jobs.enqueue_email(mail, email_id)
        # Wait for the row, not the SMTP server: the server has the message a moment
        # before the worker records it as sent, and cancelling in between leaves "sending".
        for _ in range(200):
            if (await status(mail.db, email_id)).state == SENT:
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert len(smtp.received) == 1
    assert (await status(mail.db, email_id)).state == SENT
