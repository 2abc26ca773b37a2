"""Actions leave a trace in the ticket: one internal note per (helpdesk, ticket, topic), however
often or concurrently it is asked for, found again after a timeout instead of posted twice,
beside the billing note without waiting for it, private on every helpdesk, inert whatever the
card says, and the migration that made room for topics keeps every billing note it found."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from arq.constants import job_key_prefix
from pydantic import SecretStr
from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError

from bot import jobs
from bot.approvals.policy import Policy
from bot.cards.model import Button, Card, Fact, Section, Table
from bot.demo.dataset import load_demo
from bot.helpdesk import ticket_notes
from bot.helpdesk.base import NewTicket
from bot.helpdesk.render import clean
from bot.helpdesk.ticket_trace import trace
from bot.services import Services
from bot.settings import (
    FreshdeskSettings,
    FrontSettings,
    HelpdeskSettings,
    HelpScoutSettings,
    IntercomSettings,
    Settings,
    ZendeskSettings,
)
from bot.store.db import Database, alembic_config
from bot.store.tables import HelpdeskNote
from bot.wiring import open_services
from chargedesk_emulators.freshdesk import FreshdeskEmulator
from chargedesk_emulators.front import FrontEmulator, front_api
from chargedesk_emulators.helpscout import HelpScoutEmulator, helpscout_api
from chargedesk_emulators.intercom import IntercomEmulator, intercom_api, schema_problems
from chargedesk_emulators.zendesk import AGENT_ID, ZendeskEmulator

pytestmark = pytest.mark.storage

JANE = "jane.doe@example.com"
HELPDESKS = ["zendesk", "freshdesk", "helpscout", "intercom", "front"]


def refunded(refund: str = "re_1", amount: str = "€19.00") -> Card:
    """What the panel might say after a refund went through."""
    return Card(
        title="Refund succeeded",
        subtitle=f"{amount} refunded on ch_jane_2 by Alex",
        sections=[Section(facts=[Fact(label="Refund", value=refund)])],
        footer="Requested from the agent panel",
    )


# --- five helpdesks, each behind its emulator ---------------------------------------------


@dataclass
class Desk:
    """One helpdesk as a test sees it: open a ticket, read what the bot put on it."""

    name: str
    api: Any
    open_ticket: Callable[[], str]
    notes: Callable[[str], list[str]]  # the bodies of the ticket's internal notes, oldest first
    public: Callable[[str], list[Any]]  # anything the bot made that the customer could see


@pytest.fixture
def helpscout() -> Iterator[HelpScoutEmulator]:
    with helpscout_api() as api:
        yield api


@pytest.fixture
def intercom() -> Iterator[IntercomEmulator]:
    with intercom_api() as api:
        yield api
    assert schema_problems(api.exchanges) == []


@pytest.fixture
def front() -> Iterator[FrontEmulator]:
    with front_api() as api:
        yield api


@pytest.fixture
def desks(
    zendesk: ZendeskEmulator,
    freshdesk: FreshdeskEmulator,
    helpscout: HelpScoutEmulator,
    intercom: IntercomEmulator,
    front: FrontEmulator,
) -> dict[str, Desk]:
    def comments_posted(ticket: str) -> list[Any]:
        return [
            e for e in front.exchanges if e.method != "GET" and not e.path.endswith("/comments")
        ]

    return {
        "zendesk": Desk(
            "zendesk", zendesk,
            lambda: str(zendesk.ticket("Refund", "Charged twice.", requester_email=JANE)),
            lambda t: [c["html_body"] for c in zendesk.notes(int(t))],
            lambda t: [c for c in zendesk.tickets[int(t)].comments
                       if c["public"] and c["author_id"] == AGENT_ID],
        ),
        "freshdesk": Desk(
            "freshdesk", freshdesk,
            lambda: str(freshdesk.ticket("Refund", "Charged twice.", requester_email=JANE)),
            lambda t: [c["body"] for c in freshdesk.notes(int(t))],
            lambda t: [c for c in freshdesk.tickets[int(t)].conversations if not c["private"]],
        ),
        "helpscout": Desk(
            "helpscout", helpscout,
            lambda: str(helpscout.add_conversation(JANE)),
            lambda t: [n.body for n in helpscout.notes(int(t))],
            lambda t: [th for th in helpscout.conversations[int(t)].threads
                       if th.type != "note" and th.created_by == helpscout.user],
        ),
        "intercom": Desk(
            "intercom", intercom,
            lambda: intercom.add_conversation(JANE),
            lambda t: [p.body or "" for p in intercom.notes(t)],
            lambda t: [p for p in intercom.conversations[t].parts if p.part_type != "note"],
        ),
        "front": Desk(
            "front", front,
            lambda: front.add_conversation(JANE),
            lambda t: [c.body for c in front.comments(t)],  # comments are teammates-only
            comments_posted,  # a reply would be a message, sent through another route
        ),
    }  # fmt: skip


def all_five(desks: dict[str, Desk], settings: Settings, answer_within: float) -> Settings:
    zendesk, freshdesk = desks["zendesk"].api, desks["freshdesk"].api
    helpscout, intercom, front = desks["helpscout"].api, desks["intercom"].api, desks["front"].api
    return settings.model_copy(update={"helpdesk": HelpdeskSettings(
        zendesk=ZendeskSettings(
            base_url=zendesk.base_url, email=zendesk.email, api_token=zendesk.api_token,
            webhook_secret=zendesk.webhook_secret, timeout=answer_within,
        ),
        freshdesk=FreshdeskSettings(
            base_url=freshdesk.base_url, api_key=freshdesk.api_key,
            webhook_secret=freshdesk.webhook_secret, timeout=answer_within,
        ),
        helpscout=HelpScoutSettings(
            app_id=SecretStr(helpscout.app_id), app_secret=SecretStr(helpscout.app_secret),
            base_url=helpscout.base_url, timeout=answer_within,
        ),
        # Our admin named, so a note is one request (no `GET /me` first).
        intercom=IntercomSettings(
            access_token=SecretStr(intercom.access_token), base_url=intercom.base_url,
            admin_id=intercom.me, timeout=answer_within,
        ),
        front=FrontSettings(
            api_token=SecretStr(front.api_token), base_url=front.base_url, timeout=answer_within
        ),
    )})  # fmt: skip


@dataclass
class Bot:
    services: Services

    async def work(self) -> None:
        """Run every queued job (retries included) until the queue is empty."""
        await jobs.run_worker(self.services, burst=True, poll_delay=0.02)

    async def rows(self) -> list[HelpdeskNote]:
        async with self.services.db.read() as session:
            return list(await session.scalars(select(HelpdeskNote).order_by(HelpdeskNote.created)))

    async def age(self, seconds: float) -> None:
        """As if every row had last changed `seconds` ago."""
        past = datetime.now(UTC) - timedelta(seconds=seconds)
        async with self.services.db.write() as session:
            await session.execute(update(HelpdeskNote).values(updated=past, created=past))


@pytest.fixture
def answer_within() -> float:
    """How long the bot waits for a helpdesk's answer (the timeout test shortens it)."""
    return 5.0


@pytest.fixture
async def bot(
    desks: dict[str, Desk], settings: Settings, policy: Policy, answer_within: float
) -> AsyncIterator[Bot]:
    services = await open_services(all_five(desks, settings, answer_within), policy=policy)
    await load_demo(services.db)
    try:
        yield Bot(services)
    finally:
        await services.close()


@pytest.fixture(params=HELPDESKS)
def desk(request: pytest.FixtureRequest, desks: dict[str, Desk]) -> Desk:
    return desks[request.param]


# --- once per topic -----------------------------------------------------------------------


async def test_on_every_helpdesk_a_trace_lands_once_as_an_internal_note(bot: Bot, desk: Desk):
    ticket = desk.open_ticket()
    assert await trace(bot.services, desk.name, ticket, "reply:1", refunded())
    [row] = await bot.rows()
    assert row.topic == "reply:1" and row.marker in (row.body or "")  # written when recorded
    await bot.work()
    [note] = desk.notes(ticket)
    assert "Refund succeeded" in note and "re_1" in note
    assert "€19.00 refunded on ch" in note and "Requested from the agent panel" in note
    assert desk.public(ticket) == []  # nothing the customer sees
    [row] = await bot.rows()
    assert (row.state, row.body) == ("posted", None)  # the body goes once the note is out
    assert row.marker in note and row.note_id


async def test_two_traces_on_one_ticket_are_two_notes(bot: Bot, desks: dict[str, Desk]):
    zendesk = desks["zendesk"]
    ticket = zendesk.open_ticket()
    assert await trace(bot.services, "zendesk", ticket, "reply:1", refunded("re_1"))
    assert await trace(bot.services, "zendesk", ticket, "decided:apr_1", refunded("re_2"))
    await bot.work()  # one run: each topic has its own job
    notes = zendesk.notes(ticket)
    assert len(notes) == 2 and {"re_1", "re_2"} == {n.split("Refund:</b> ")[1][:4] for n in notes}
    assert sorted((r.topic, r.state) for r in await bot.rows()) == [
        ("decided:apr_1", "posted"), ("reply:1", "posted"),
    ]  # fmt: skip


async def test_the_same_topic_traced_twice_is_one_note(bot: Bot, desks: dict[str, Desk]):
    """A double click, or a redraw run by two processes one after the other."""
    front = desks["front"]
    ticket = front.open_ticket()
    assert await trace(bot.services, "front", ticket, "decided:apr_7", refunded())
    assert not await trace(bot.services, "front", ticket, "decided:apr_7", refunded())
    await bot.work()
    assert not await trace(bot.services, "front", ticket, "decided:apr_7", refunded())
    await bot.work()
    assert len(front.notes(ticket)) == 1
    assert len(await bot.rows()) == 1


async def test_the_same_topic_traced_concurrently_is_one_note(bot: Bot, desks: dict[str, Desk]):
    zendesk = desks["zendesk"]
    ticket = zendesk.open_ticket()
    recorded = await asyncio.gather(
        *(trace(bot.services, "zendesk", ticket, "reply:9", refunded()) for _ in range(6))
    )
    await bot.work()
    assert sorted(recorded) == [False] * 5 + [True]
    assert len(zendesk.notes(ticket)) == 1
    assert len(await bot.rows()) == 1


@pytest.mark.parametrize("answer_within", [0.5])
async def test_a_trace_whose_post_timed_out_is_found_on_the_ticket_not_posted_again(
    bot: Bot, desk: Desk, answer_within: float
):
    """The helpdesk took the note but answered too late: the retry finds it by its marker."""
    ticket = desk.open_ticket()
    assert await trace(bot.services, desk.name, ticket, "reply:5", refunded())
    desk.api.slow_next(1, answer_within * 3)
    with pytest.raises(ticket_notes.RetryLater):
        await ticket_notes.deliver(bot.services, desk.name, ticket, "reply:5")
    [row] = await bot.rows()
    assert (row.state, row.attempts, row.last_error) == ("pending", 1, "timed out")
    for _ in range(200):  # the helpdesk stores the note once its answer is sent
        if desk.notes(ticket):
            break
        await asyncio.sleep(0.05)
    await bot.work()  # the queued job: its second attempt asks the helpdesk first
    [note] = desk.notes(ticket)
    [row] = await bot.rows()
    assert (row.state, row.attempts) == ("posted", 2)
    assert row.marker in note


async def test_a_trace_whose_job_was_lost_is_posted_by_the_sweep(bot: Bot, desks: dict[str, Desk]):
    intercom = desks["intercom"]
    ticket = intercom.open_ticket()
    assert await trace(bot.services, "intercom", ticket, "reply:3", refunded())
    settings = bot.services.settings
    job = (
        job_key_prefix + settings.redis_prefix + ticket_notes.job_id("intercom", ticket, "reply:3")
    )
    assert await bot.services.redis.delete(jobs.queue_name(settings), job) == 2  # Redis lost it
    await bot.work()
    assert intercom.notes(ticket) == []  # fresh rows are left to their own job
    await bot.age(ticket_notes.SWEEP_GRACE.total_seconds() + 1)
    await bot.work()
    assert len(intercom.notes(ticket)) == 1
    assert [(r.topic, r.state) for r in await bot.rows()] == [("reply:3", "posted")]


# --- beside the billing note ---------------------------------------------------------------


def new_ticket(ticket: str) -> NewTicket:
    return NewTicket("zendesk", ticket, JANE, "Refund", "Charged twice.")


async def test_a_ticket_s_billing_note_and_a_trace_each_get_their_note_and_their_job(
    bot: Bot, desks: dict[str, Desk]
):
    zendesk = desks["zendesk"]
    ticket = zendesk.open_ticket()
    assert await ticket_notes.receive(bot.services, new_ticket(ticket))
    assert await trace(bot.services, "zendesk", ticket, "reply:1", refunded())
    assert not await ticket_notes.receive(bot.services, new_ticket(ticket))  # still once
    await bot.work()  # both jobs were queued: neither waits for the sweep
    notes = zendesk.notes(ticket)  # in the order the jobs finished
    [billing] = [n for n in notes if "ChargeDesk billing summary" in n]
    [traced] = [n for n in notes if "Refund succeeded" in n]
    assert "Jane Doe" in billing and "Jane Doe" not in traced and len(notes) == 2
    rows = {r.topic: r for r in await bot.rows()}
    assert (rows["billing"].state, rows["billing"].matched) == ("posted", "email")
    assert (rows["reply:1"].state, rows["reply:1"].matched) == ("posted", None)


async def test_the_billing_note_and_a_trace_post_at_once_without_blocking_each_other(
    bot: Bot, desks: dict[str, Desk]
):
    zendesk = desks["zendesk"]
    ticket = zendesk.open_ticket()
    assert await ticket_notes.record(bot.services, new_ticket(ticket))
    assert await trace(bot.services, "zendesk", ticket, "decided:apr_2", refunded())
    zendesk.api.slow_next(1, 1.0)  # whichever posts first holds its claim a while
    states = await asyncio.gather(
        ticket_notes.deliver(bot.services, "zendesk", ticket),
        ticket_notes.deliver(bot.services, "zendesk", ticket, "decided:apr_2"),
    )
    assert states == ["posted", "posted"]
    assert len(zendesk.notes(ticket)) == 2


# --- nothing runs, nothing opens, nothing leaks ---------------------------------------------


HOSTILE = Card(
    title="<script>alert(1)</script> Refund **done**",
    subtitle="[click](javascript:alert(1)) <img src=x onerror=alert(1)> @channel",
    sections=[
        Section(
            title="# not a heading",
            text="Pay here: https://pay.example/p/tok_secret123?sig=abc\n# second line",
            facts=[Fact(label="Portal", value="www.billing.example/s/LINKTOKEN")],
            table=Table(columns=["a"], rows=[["`code` | ~strike~ <b>x</b>"]]),
        )
    ],
    actions=[Button(label="Open refund", url="https://dashboard.example/re_1?key=BUTTONKEY")],
    footer='"><a href="https://evil.example">x</a>',
)
LEAKS = ["tok_secret123", "LINKTOKEN", "BUTTONKEY", "https://", "evil.example", "javascript:"]


async def test_markup_in_a_trace_card_is_shown_not_run_and_links_are_left_out(
    bot: Bot, desks: dict[str, Desk]
):
    zendesk, front = desks["zendesk"], desks["front"]
    html_ticket, text_ticket = zendesk.open_ticket(), front.open_ticket()
    assert await trace(bot.services, "zendesk", html_ticket, "reply:1", HOSTILE)
    assert await trace(bot.services, "front", text_ticket, "reply:1", HOSTILE)
    await bot.work()
    [html_note] = zendesk.notes(html_ticket)
    [text_note] = front.notes(text_ticket)
    for leak in LEAKS:
        assert leak not in html_note and leak not in text_note
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html_note and "<script" not in html_note
    assert "<img" not in html_note and "<a " not in html_note and 'href="' not in html_note
    assert "&lt;b&gt;x&lt;/b&gt;" in html_note and "(link left out)" in html_note
    assert "\\*\\*done\\*\\*" in text_note and "\\[click\\]" in text_note
    assert "\\# not a heading" in text_note and "\\`code\\` \\| \\~strike\\~" in text_note
    assert "\\<script\\>" in text_note and "\n# " not in text_note  # no line starts markup


# --- refused without a fuss ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("helpdesk", "ticket", "topic"),
    [
        ("zendesk", "", "reply:1"),  # no ticket
        ("zendesk", "../users/me", "reply:1"),  # not a ticket ID
        ("zendesk", "1" * 65, "reply:1"),  # longer than any we keep
        ("zendesk", "42", ""),  # no topic
        ("zendesk", "42", "billing"),  # the billing note's own
        ("zendesk", "42", "reply:1\nforged log line"),  # not one line
        ("zendesk", "42", "r" * 121),
        ("kayako", "42", "reply:1"),  # not a helpdesk
        ("", "42", "reply:1"),
    ],
)
async def test_a_trace_that_cannot_be_is_refused_quietly_and_records_nothing(
    bot: Bot, helpdesk: str, ticket: str, topic: str, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.WARNING)
    assert await trace(bot.services, helpdesk, ticket, topic, refunded()) is False
    assert await bot.rows() == []
    assert "no trace" in caplog.text and "\nforged log line" not in caplog.text


async def test_a_trace_for_a_helpdesk_not_configured_is_refused_quietly(
    services: Services, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.WARNING)
    assert await trace(services, "zendesk", "42", "reply:1", refunded()) is False
    assert "zendesk is not configured" in caplog.text
    async with services.db.read() as session:
        assert list(await session.scalars(select(HelpdeskNote))) == []


async def test_a_trace_when_the_database_is_gone_returns_false_instead_of_raising(
    bot: Bot, desks: dict[str, Desk], caplog: pytest.LogCaptureFixture
):
    ticket = desks["zendesk"].open_ticket()
    async with bot.services.db.write() as session:  # the store refuses every note from now on
        await session.execute(text("DROP TABLE helpdesk_notes"))
    assert await trace(bot.services, "zendesk", ticket, "reply:1", refunded()) is False
    assert "no trace 'reply:1'" in caplog.text


# --- the migration ----------------------------------------------------------------------------


async def test_the_topic_migration_keeps_billing_notes_and_their_uniqueness(database_url: str):
    db = Database(database_url)

    def to(revision: str):  # type: ignore[no-untyped-def]
        return lambda conn: command.upgrade(alembic_config(conn), revision)

    def back(revision: str):  # type: ignore[no-untyped-def]
        return lambda conn: command.downgrade(alembic_config(conn), revision)

    now = datetime(2026, 12, 1, tzinfo=UTC)
    insert = text(
        "INSERT INTO helpdesk_notes (id, helpdesk, ticket_id, state, attempts, marker, text,"
        " created, updated) VALUES (:id, 'zendesk', :ticket, :state, 1, :marker, :said, :t, :t)"
    )
    async with db.engine.begin() as conn:
        await conn.run_sync(to("0008"))
        for note_id, ticket, state in [("cdn_a", "1", "posted"), ("cdn_b", "2", "pending")]:
            await conn.execute(insert, {"id": note_id, "ticket": ticket, "state": state,
                                        "marker": f"ChargeDesk note {note_id}",
                                        "said": "Charged twice", "t": now})  # fmt: skip
        await conn.run_sync(to("0009"))
    async with db.engine.connect() as conn:
        kept = (await conn.execute(text(
            "SELECT id, ticket_id, topic, state, marker, text, body FROM helpdesk_notes ORDER BY id"
        ))).all()  # fmt: skip
    assert [tuple(r) for r in kept] == [
        ("cdn_a", "1", "billing", "posted", "ChargeDesk note cdn_a", "Charged twice", None),
        ("cdn_b", "2", "billing", "pending", "ChargeDesk note cdn_b", "Charged twice", None),
    ]
    add = text(
        "INSERT INTO helpdesk_notes (id, helpdesk, ticket_id, topic, state, attempts, marker,"
        " created, updated) VALUES (:id, 'zendesk', '1', :topic, 'pending', 0, 'm', :t, :t)"
    )
    with pytest.raises(IntegrityError):  # a second billing note on ticket 1
        async with db.engine.begin() as conn:
            await conn.execute(add, {"id": "cdn_c", "topic": "billing", "t": now})
    async with db.engine.begin() as conn:  # a trace beside it
        await conn.execute(add, {"id": "cdn_d", "topic": "reply:1", "t": now})
    with pytest.raises(IntegrityError):  # and only one
        async with db.engine.begin() as conn:
            await conn.execute(add, {"id": "cdn_e", "topic": "reply:1", "t": now})

    async with db.engine.begin() as conn:
        await conn.run_sync(back("0008"))  # the billing notes go back; the traces cannot
    async with db.engine.connect() as conn:
        left = (await conn.execute(text("SELECT id FROM helpdesk_notes ORDER BY id"))).scalars()
        assert list(left) == ["cdn_a", "cdn_b"]
    await db.close()


def test_a_note_marker_survives_the_card_number_mask() -> None:
    """A marker masked as a card number in the note could never be found again after a lost
    answer (`find_note`), and the note would be posted twice."""
    for _ in range(10000):
        row = ticket_notes.draft("zendesk", "1", "billing")
        assert clean(row.marker) == row.marker
    # What the mask does to a marker with a Luhn-valid run of digits, as hex IDs could have.
    assert clean("ChargeDesk note cdn_d3ec24775457941150a1") != (
        "ChargeDesk note cdn_d3ec24775457941150a1"
    )
