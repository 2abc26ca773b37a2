"""Every new ticket gets one billing note: however often or however concurrently it is delivered,
whatever fails on the way, and after a worker dies with the outcome unknown."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from bot.helpdesk import ticket_notes
from bot.helpdesk.registry import open_helpdesk
from bot.store.tables import HelpdeskNote

pytestmark = pytest.mark.storage

JANE = "jane.doe@example.com"


def open_ticket(desk, subject="Refund please", text="I was charged twice.", email=JANE):
    return desk.ticket(subject, text, requester_email=email)


@pytest.fixture(params=["zendesk", "freshdesk"])
def desk(request, zendesk, freshdesk):
    """Each behaviour, once per helpdesk: (name, emulator)."""
    return request.param, {"zendesk": zendesk, "freshdesk": freshdesk}[request.param]


async def age(bot, seconds: float) -> None:
    """As if every row had last changed `seconds` ago (a lease or a grace period passing)."""
    past = datetime.now(UTC) - timedelta(seconds=seconds)
    async with bot.services.db.write() as session:
        await session.execute(update(HelpdeskNote).values(updated=past, created=past))


async def test_a_new_ticket_gets_one_private_note_with_the_billing_summary(bot, desk):
    name, api = desk
    ticket = open_ticket(api)
    answer = await bot.deliver(name, *api.delivery(ticket))
    assert (answer.status_code, answer.json()) == (200, {"received": "recorded"})
    await bot.work()
    [note] = api.notes(ticket)
    body = note["html_body"] if name == "zendesk" else note["body"]
    assert "Jane Doe" in body and "verified (requester email)" in body
    assert "€120.00" in body and "ch_jane_1" in body
    [row] = await bot.rows()
    assert (row.state, row.matched, row.note_id) == ("posted", "email", str(note["id"]))
    assert row.marker in body and row.text is None  # the ticket's text is not kept once posted


async def test_a_ticket_delivered_three_times_gets_one_note(bot, desk):
    name, api = desk
    ticket = open_ticket(api)
    answers = [await bot.deliver(name, *api.delivery(ticket)) for _ in range(3)]
    await bot.work()
    await bot.deliver(name, *api.delivery(ticket))  # a retry after the note went out
    await bot.work()
    assert [a.json()["received"] for a in answers] == ["recorded", "duplicate", "duplicate"]
    assert len(api.notes(ticket)) == 1
    assert len(await bot.rows()) == 1


async def test_five_concurrent_deliveries_of_one_ticket_get_one_note(bot, desk):
    name, api = desk
    ticket = open_ticket(api)
    answers = await asyncio.gather(*(bot.deliver(name, *api.delivery(ticket)) for _ in range(5)))
    await bot.work()
    assert sorted(a.json()["received"] for a in answers) == ["duplicate"] * 4 + ["recorded"]
    assert len(api.notes(ticket)) == 1


async def test_five_concurrent_jobs_for_one_ticket_post_one_note(bot, zendesk):
    """Two workers holding the same job (a re-enqueue, a sweep): one claim wins."""
    ticket = open_ticket(zendesk)
    await bot.deliver("zendesk", *zendesk.delivery(ticket))
    states = await asyncio.gather(
        *(ticket_notes.deliver(bot.services, "zendesk", str(ticket)) for _ in range(5))
    )
    assert sorted(states) == ["busy"] * 4 + ["posted"]
    assert len(zendesk.notes(ticket)) == 1


@pytest.mark.parametrize("status", [500, 429])
async def test_a_failing_notes_api_is_retried_and_posts_once(bot, desk, status):
    name, api = desk
    ticket = open_ticket(api)
    api.fail_next(2, status, path_prefix="/api/v2/tickets")
    await bot.deliver(name, *api.delivery(ticket))
    await bot.work()
    assert len(api.notes(ticket)) == 1
    [row] = await bot.rows()
    assert (row.state, row.attempts) == ("posted", 3)


async def test_a_note_taken_by_the_helpdesk_whose_answer_was_lost_is_found_not_posted_again(
    bot, desk
):
    name, api = desk
    ticket = open_ticket(api)
    api.fail_next(1, 502, after=True, path_prefix="/api/v2/tickets")  # stored, answer lost
    await bot.deliver(name, *api.delivery(ticket))
    await bot.work()
    [note] = api.notes(ticket)
    [row] = await bot.rows()
    assert (row.state, row.note_id, row.attempts) == ("posted", str(note["id"]), 2)


async def test_a_worker_dying_after_the_helpdesk_took_the_note_is_recovered_without_a_second(
    bot, desk, monkeypatch
):
    """The note is out, the worker dies before writing `posted`: the row stays `posting`.
    Once its lease has passed, the sweep re-runs it, and the marker finds the note."""
    name, api = desk
    ticket = open_ticket(api)
    finish = ticket_notes._finish

    async def die_before_recording(services, row_id, state, **values):
        if state == ticket_notes.POSTED:
            raise asyncio.CancelledError  # the process is gone: nothing after this runs
        return await finish(services, row_id, state, **values)

    monkeypatch.setattr(ticket_notes, "_finish", die_before_recording)
    await bot.deliver(name, *api.delivery(ticket))
    with pytest.raises(asyncio.CancelledError):
        await ticket_notes.deliver(bot.services, name, str(ticket))
    monkeypatch.setattr(ticket_notes, "_finish", finish)
    [row] = await bot.rows()
    assert row.state == "posting" and len(api.notes(ticket)) == 1

    await bot.work()  # within the lease: the claim is left alone
    assert (await bot.rows())[0].state == "posting"

    await age(bot, ticket_notes.LEASE.total_seconds() + 1)
    await bot.work()  # the sweep re-enqueues it; the job finds the note by its marker
    [note] = api.notes(ticket)
    [row] = await bot.rows()
    assert (row.state, row.note_id) == ("posted", str(note["id"]))


async def test_a_note_whose_job_was_lost_is_sent_by_the_sweep(bot, desk):
    name, api = desk
    ticket = open_ticket(api)
    helpdesk = open_helpdesk(bot.services.settings, name)
    new = helpdesk.read_delivery(*api.delivery(ticket), now=time.time()).ticket
    await helpdesk.close()
    assert await ticket_notes.record(bot.services, new)  # recorded, never enqueued: Redis lost it
    await bot.work()
    assert api.notes(ticket) == []  # fresh rows are left to their own job
    await age(bot, ticket_notes.SWEEP_GRACE.total_seconds() + 1)
    await bot.work()
    assert len(api.notes(ticket)) == 1


async def test_refused_credentials_fail_the_note_at_once(bot, zendesk):
    ticket = open_ticket(zendesk)
    zendesk.api_token = "rotated-in-zendesk"  # the token we hold no longer works
    await bot.deliver("zendesk", *zendesk.delivery(ticket))
    await bot.work()
    [row] = await bot.rows()
    assert (row.state, row.attempts) == ("failed", 1)
    assert "401" in row.last_error
    assert zendesk.notes(ticket) == []


async def test_no_secret_reaches_the_logs_or_the_note(bot, desk, caplog):
    name, api = desk
    caplog.set_level(logging.DEBUG)
    ticket = open_ticket(api)
    await bot.deliver(name, *api.delivery(ticket, secret="wrong-" + api.webhook_secret))
    api.fail_next(1, 500, path_prefix="/api/v2/tickets")
    await bot.deliver(name, *api.delivery(ticket))
    await bot.work()
    [note] = api.notes(ticket)
    token = api.api_token if name == "zendesk" else api.api_key
    secrets = [token, api.webhook_secret, bot.services.settings.portal.secret.get_secret_value()]
    for secret in secrets:
        assert secret not in caplog.text
        assert secret not in str(note)
    assert "refused" in caplog.text  # the forged delivery was logged, without its secret
