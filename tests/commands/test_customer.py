"""Customers in shared channels: verify by an emailed code, then only their own billing, privately.

The identity flow runs end to end: `verify <email>` queues the code email, the
arq worker sends it to a real SMTP server on 127.0.0.1, the code is read from
what that server received, and `verify <code>` links the chat user. Everything
after that is checked against the demo data: Jane sees Jane's billing, never
John's, and nothing at all before she is verified or after she is unlinked.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from bot import jobs, notify
from bot.actors import Actor, Channel, ChannelKind, Role
from bot.audit.log import AuditFilter, query
from bot.billing_links import open_link
from bot.cards.model import Reply
from bot.commands import Context, dispatch
from bot.commands.router import parse
from bot.gateways.base import Gateway, GatewayError, LookupQuery
from bot.gateways.registry import Gateways
from bot.models import Customer, GatewayProfile
from bot.services import Services
from bot.store.tables import AuditEntry, DocumentRow, VerificationCode
from chargedesk_emulators.smtp import FakeSmtp, smtp_server
from tests.mail.mailtools import with_mail

pytestmark = pytest.mark.storage

JANE_EMAIL, JOHN_EMAIL = "jane.doe@example.com", "john.smith@example.com"
SHARED = Channel(platform="slack", id="C0SHARED001", kind=ChannelKind.shared)
JANE = Actor(platform="slack", id="UJANE00001", name="Jane", roles=frozenset({Role.customer}))
JOHN = Actor(platform="slack", id="UJOHN00001", name="John", roles=frozenset({Role.customer}))
AGENT = Actor(platform="slack", id="UAGENT0001", name="Alex", roles=frozenset({Role.agent}))


@pytest.fixture
async def smtp() -> AsyncIterator[FakeSmtp]:
    async with smtp_server() as server:
        yield server


@pytest.fixture
def mail(services: Services, smtp: FakeSmtp) -> Services:
    """The test's services, sending email over SMTP to the fake server."""
    return with_mail(services, smtp_url=smtp.url())


async def say(services: Services, actor: Actor, line: str, channel: Channel = SHARED) -> Reply:
    return await dispatch(Context(services, actor, channel), line)


def text(reply: Reply) -> str:
    """Everything a person reads in a reply."""
    out = [reply.error.message] if reply.error else []
    for card in reply.cards:
        out += [card.title, card.subtitle or "", card.footer or ""]
        for s in card.sections:
            out += [s.title or "", s.text or ""]
            out += [f"{f.label}: {f.value}" for f in s.facts]
            if s.table:
                out += [" | ".join(row) for row in s.table.rows]
        out += [f"{b.label} -> {b.command or b.url}" for b in card.actions]
    return "\n".join(out)


async def code_from_mail(services: Services, smtp: FakeSmtp, email: str) -> str:
    """Let the worker send what is queued, then read the code from the last email to `email`."""
    await jobs.run_worker(services, burst=True, poll_delay=0.05)
    sent = [r for r in smtp.received if email in r.rcpt_tos]
    assert sent, f"no email reached {email}"
    body = sent[-1].message.get_body(preferencelist=("plain",))
    assert body is not None
    found = re.search(r"\b(\d{6})\b", body.get_content())
    assert found, body.get_content()
    return found.group(1)


async def verified(services: Services, smtp: FakeSmtp, actor: Actor, email: str) -> None:
    asked = await say(services, actor, f"verify {email}")
    assert asked.error is None, asked.error
    code = await code_from_mail(services, smtp, email)
    done = await say(services, actor, f"verify {code}")
    assert done.error is None, done.error


async def actions(services: Services, actor: Actor) -> list[tuple[str, str]]:
    entries = await query(services.db, AuditFilter(actor=actor.key, limit=100))
    return [(e.action, e.outcome) for e in reversed(entries)]


async def count(services: Services, table: type) -> int:
    async with services.db.read() as s:
        return int(await s.scalar(select(func.count()).select_from(table)) or 0)


# --- verification, end to end over SMTP -------------------------------------------------


async def test_verify_by_emailed_code_then_me_shows_only_janes_billing(mail, smtp):
    asked = await say(mail, JANE, f"verify {JANE_EMAIL}")
    assert asked.error is None and asked.ephemeral
    assert "a code is on its way" in text(asked) and "verify <code>" in text(asked)
    assert smtp.received == []  # the worker sends it, not the command

    code = await code_from_mail(mail, smtp, JANE_EMAIL)
    [email] = smtp.received
    # In the body only: a subject shows on lock screens and in mail logs.
    assert email.rcpt_tos == [JANE_EMAIL] and code not in email.message["Subject"]

    done = await say(mail, JANE, f"verify {code}")
    assert done.error is None and done.ephemeral
    assert done.cards[0].title == f"You are verified as {JANE_EMAIL}"
    assert [b.command for b in done.cards[0].actions] == ["me", "portal", "ask"]

    mine = await say(mail, JANE, "me")
    assert mine.error is None and mine.ephemeral
    shown = text(mine)
    assert "ch_jane_1" in shown and "sub_jane_pro" in shown and "in_jane_paid" in shown
    assert "re_jane_2" in shown and JANE_EMAIL in shown and "only you can see this" in shown
    assert "john" not in shown.lower()
    # Nothing internal: no customer IDs, no lifetime value, no agent actions.
    assert "cus_jane" not in shown and "Lifetime" not in shown
    commands = [b.command for b in mine.cards[0].actions]
    assert commands[-2:] == ["portal", "ask"]
    assert all(c.startswith(("me pdf ledger:in_jane", "portal", "ask")) for c in commands)
    assert not any(c.startswith(("refund", "cancel", "capture", "void")) for c in commands)

    assert await actions(mail, JANE) == [
        ("verification_requested", "requested"),
        ("customer_verified", "linked"),
        ("customer_viewed_billing", "shown"),
    ]


async def test_an_email_not_on_file_gets_the_same_answer_and_no_email(mail, smtp):
    known = await say(mail, JANE, f"verify {JANE_EMAIL}")
    unknown = await say(mail, JOHN, "verify Nobody@Example.com")
    assert unknown.error is None and unknown.ephemeral
    assert text(unknown).replace("nobody@example.com", JANE_EMAIL) == text(known)
    await jobs.run_worker(mail, burst=True, poll_delay=0.05)
    assert [r.rcpt_tos for r in smtp.received] == [[JANE_EMAIL]]  # only the one on file
    # Nor can John finish with a code he could not have.
    attempt = await say(mail, JOHN, "verify 123456")
    assert attempt.error is not None and attempt.error.code == "no_code"


async def test_a_wrong_code_says_how_many_tries_are_left_and_the_right_one_still_works(mail, smtp):
    await say(mail, JANE, f"verify {JANE_EMAIL}")
    code = await code_from_mail(mail, smtp, JANE_EMAIL)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    refused = await say(mail, JANE, f"verify {wrong}")
    assert refused.error is not None and refused.error.code == "wrong_code"
    assert refused.error.message == "that code is not right: 4 tries left"
    assert refused.cards == []
    assert (await say(mail, JANE, f"verify {code}")).error is None
    assert ("customer_verified", "refused") in await actions(mail, JANE)


async def test_five_wrong_codes_use_the_code_up(mail, smtp):
    await say(mail, JANE, f"verify {JANE_EMAIL}")
    code = await code_from_mail(mail, smtp, JANE_EMAIL)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(4):
        await say(mail, JANE, f"verify {wrong}")
    last = await say(mail, JANE, f"verify {wrong}")
    assert last.error is not None and last.error.code == "code_used_up"
    late = await say(mail, JANE, f"verify {code}")  # even the right code is spent now
    assert late.error is not None and late.error.code == "no_code"


async def test_an_expired_code_is_refused(mail, smtp):
    await say(mail, JANE, f"verify {JANE_EMAIL}")
    code = await code_from_mail(mail, smtp, JANE_EMAIL)
    async with mail.db.write() as s:
        await s.execute(
            update(VerificationCode).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    refused = await say(mail, JANE, f"verify {code}")
    assert refused.error is not None and refused.error.code == "code_expired"
    assert "ask for a new one with `verify <email>`" in refused.error.message
    assert (await say(mail, JANE, "me")).error.code == "not_verified"


async def test_a_code_works_once(mail, smtp):
    await verified(mail, smtp, JANE, JANE_EMAIL)
    code = await code_from_mail(mail, smtp, JANE_EMAIL)  # the same email, read again
    again = await say(mail, JOHN, f"verify {code}")
    assert again.error is not None and again.error.code == "no_code"  # John never asked
    again = await say(mail, JANE, f"verify {code}")
    assert again.error is not None and again.error.code == "no_code"


async def test_codes_are_rate_limited_after_three_sends(mail, smtp):
    for _ in range(3):
        assert (await say(mail, JANE, f"verify {JANE_EMAIL}")).error is None
    fourth = await say(mail, JANE, f"verify {JANE_EMAIL}")
    assert fourth.error is not None and fourth.error.code == "rate_limited"
    assert "try again in" in fourth.error.message
    await jobs.run_worker(mail, burst=True, poll_delay=0.05)
    assert len(smtp.received) == 3


@pytest.mark.parametrize(
    ("line", "code", "words"),
    [
        ("verify", "usage", "give your email, or the six-digit code"),
        ("verify jane@", "invalid_email", "is not an email address"),
        ("verify 12345", "invalid_code", "a code is six digits"),
        ("verify abcdef", "invalid_code", "a code is six digits"),
        ("verify a@b.co 123456", "usage", "too many arguments"),
    ],
)
async def test_bad_verify_input_gets_one_precise_line(mail, line, code, words):
    reply = await say(mail, JANE, line)
    assert reply.error is not None and (reply.error.code, words in reply.error.message) == (
        code,
        True,
    ), reply.error
    assert "\n" not in reply.error.message


# --- what an unverified or unlinked user sees: nothing --------------------------------


@pytest.mark.parametrize(
    "line", ["me", "me pdf in_jane_paid", "portal", "ask where is my invoice?"]
)
async def test_unverified_users_see_nothing(services, line):
    reply = await say(services, JANE, line)
    assert reply.error is not None and reply.error.code == "not_verified"
    assert reply.error.message == "verify your email first: `verify <email>`"
    assert reply.cards == [] and reply.files == []
    assert await notify.pending(services.db) == []


async def test_an_unlinked_user_sees_nothing_again(mail, smtp):
    await verified(mail, smtp, JANE, JANE_EMAIL)
    listed = await say(mail, AGENT, f"links {JANE_EMAIL}")
    assert f"Jane ({JANE.key}) | {JANE_EMAIL} | " in text(listed)
    assert [b.command for b in listed.cards[0].actions] == [f"unlink {JANE.key} reason: "]

    done = await say(mail, AGENT, f"unlink {JANE.key} reason: chat account taken over")
    assert done.error is None and done.cards[0].title == f"Unlinked {JANE.key}"
    refused = await say(mail, JANE, "me")
    assert refused.error is not None and refused.error.code == "not_verified"
    assert "No verified links" in text(await say(mail, AGENT, f"links {JANE.key}"))
    again = await say(mail, AGENT, f"unlink {JANE_EMAIL} reason: twice")
    assert again.error is not None
    assert again.error.message == f"no verified link or billing page link for {JANE_EMAIL}"
    assert ("customer_unlinked", "revoked") in await actions(mail, AGENT)


async def test_agents_name_users_by_mention_too(mail, smtp):
    await verified(mail, smtp, JANE, JANE_EMAIL)
    listed = await say(mail, AGENT, f"links <@{JANE.id}|jane>")
    assert listed.cards[0].title == f"Verified links for {JANE.key}"
    bad = await say(mail, AGENT, "links jane")
    assert bad.error is not None and "neither an email nor a chat user" in bad.error.message


async def test_customers_cannot_list_or_revoke_links(services):
    for line in (f"links {JANE_EMAIL}", f"unlink {JANE_EMAIL} reason: not me"):
        reply = await say(services, JANE, line)
        assert reply.error is not None and reply.error.code == "forbidden"


async def test_customers_see_only_their_commands_in_help(services):
    reply = await say(services, JANE, "help")
    rows = reply.cards[0].sections[0].table.rows
    assert [row[0].split()[0] for row in rows] == ["help", "verify", "me", "portal", "ask"]


# --- documents: their own, or the same refusal as for nothing ---------------------------


async def test_me_pdf_gives_janes_invoice_receipt_and_credit_note(mail, smtp):
    await verified(mail, smtp, JANE, JANE_EMAIL)
    for line, title in (
        ("me pdf in_jane_paid", "Invoice INV-"),
        ("me pdf ledger:ch_jane_1", "Receipt RCT-"),
        ("me pdf re_jane_2", "Credit note "),
    ):
        reply = await say(mail, JANE, line)
        assert reply.error is None, (line, reply.error)
        assert reply.ephemeral and reply.cards[0].title.startswith(title)
        [file] = reply.files
        assert file.mime == "application/pdf" and file.content.startswith(b"%PDF")
        assert "cus_jane" not in text(reply)  # the customer's card, not the agents'
    assert await actions(mail, JANE) == [
        ("verification_requested", "requested"),
        ("customer_verified", "linked"),
        *[("issue_invoice", "issued"), ("customer_document", "sent")],
        *[("issue_receipt", "issued"), ("customer_document", "sent")],
        # A credit note names the document it corrects: ch_jane_2's receipt is issued first.
        *[("issue_receipt", "issued"), ("issue_credit_note", "issued")],
        ("customer_document", "sent"),
    ]


@pytest.mark.parametrize("other", ["in_john_paid", "ledger:ch_john_2", "re_john_1", "in_nope"])
async def test_another_customers_document_is_refused_like_an_unknown_one(mail, smtp, other):
    await verified(mail, smtp, JANE, JANE_EMAIL)
    reply = await say(mail, JANE, f"me pdf {other}")
    assert reply.error is not None and reply.error.code == "not_found"
    assert reply.error.message == f"no invoice, payment or refund {other} on your account"
    assert reply.cards == [] and reply.files == []
    assert await count(mail, DocumentRow) == 0  # nothing issued on the way
    assert (await actions(mail, JANE))[-1] == ("customer_document", "refused")


# --- fail closed --------------------------------------------------------------------------


class Sloppy(Gateway):
    """A gateway whose email search also returns near matches (as full-text search does)."""

    name = "sloppy"

    async def lookup(self, query: LookupQuery) -> list[GatewayProfile]:
        twin = Customer(gateway=self.name, id="cus_twin", email="jane.doe@example.com.evil.test")
        return [GatewayProfile(gateway=self.name, customer=twin)]


class Down(Gateway):
    name = "down"

    async def lookup(self, query: LookupQuery) -> list[GatewayProfile]:
        raise GatewayError("unavailable", "connection refused by 10.0.0.7", gateway=self.name)


async def test_near_matches_never_show_and_a_failing_gateway_says_so(mail, smtp):
    await verified(mail, smtp, JANE, JANE_EMAIL)
    mail.gateways = Gateways([*mail.gateways, Sloppy(), Down()], timeout=5)
    mine = await say(mail, JANE, "me")
    shown = text(mine)
    assert "ch_jane_1" in shown and "cus_twin" not in shown and "evil" not in shown
    assert "down: unavailable right now" in shown
    assert "10.0.0.7" not in shown  # the gateway's own words are for agents
    refused = await say(mail, JANE, "me pdf in_nope")
    assert refused.error.message == (
        "no invoice, payment or refund in_nope on your account (down could not be asked: try again later)"
    )


# --- billing page and questions ---------------------------------------------------------


async def test_portal_link_opens_janes_billing_page(mail, smtp):
    await verified(mail, smtp, JANE, JANE_EMAIL)
    reply = await say(mail, JANE, "portal")
    assert reply.error is None and reply.ephemeral
    [button] = reply.cards[0].actions
    assert button.url is not None and button.url.startswith("http://localhost:8000/portal/l/")
    assert await open_link(mail, button.url.rsplit("/", 1)[1]) == JANE_EMAIL
    assert button.url in text(reply)
    [entry] = [
        e
        for e in await query(mail.db, AuditFilter(actor=JANE.key))
        if e.action == "portal_link_issued"
    ]
    assert entry.detail["email"] == JANE_EMAIL and entry.detail["grant"].startswith("pg_")
    assert button.url.rsplit("/", 1)[1] not in str(entry.detail)  # the link itself is a key


async def test_ask_queues_the_question_with_janes_card_for_the_agents(mail, smtp):
    mail.settings.questions_channel = "slack:C0HELPDESK1"
    await verified(mail, smtp, JANE, JANE_EMAIL)
    reply = await say(mail, JANE, "ask why was I charged twice? reason: no idea")
    assert reply.error is None and reply.ephemeral and reply.cards[0].title == "Question sent"
    [(_, kind, card)] = await notify.pending(mail.db)
    assert kind == "question"
    assert card.title == "Billing question from Jane Doe"
    assert card.sections[0].text == "why was I charged twice? reason: no idea"  # as typed
    assert "ch_jane_1" in str(card.model_dump()) and "ch_john" not in str(card.model_dump())
    assert ("customer_question", "queued") in await actions(mail, JANE)


def test_a_question_is_the_rest_of_the_line():
    spec, raw = parse("ask  is 12.50 EUR right?  reason: none")
    assert spec.name == "ask" and raw == {"question": "is 12.50 EUR right?  reason: none"}


async def test_an_agent_who_is_not_verified_sees_no_billing_through_me(services):
    reply = await say(services, AGENT, "me")
    assert reply.error is not None and reply.error.code == "not_verified"


async def test_the_audit_chain_holds_after_customer_actions(mail, smtp):
    from bot.audit.log import verify as verify_chain

    await verified(mail, smtp, JANE, JANE_EMAIL)
    await say(mail, JANE, "me")
    await say(mail, JANE, "portal")
    assert await count(mail, AuditEntry) >= 4
    result = await verify_chain(mail.db)
    assert result.ok, result
