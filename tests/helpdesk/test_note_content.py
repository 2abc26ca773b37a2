"""What a note says: how sure the match is, the document a reply is about, and nothing that
runs, formats or leaks: a hostile name or subject is shown as typed, card numbers are masked."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.actors import SYSTEM
from bot.cards.model import Card, Fact, Section
from bot.documents import on_demand
from bot.helpdesk.render import as_html, as_text
from bot.store.tables import LedgerCharge, LedgerCustomer

pytestmark = pytest.mark.storage

HOSTILE = "<script>alert(1)</script> *bold* [click](https://evil.example) @channel"


async def note_for(bot, zendesk, subject: str, text: str, email: str) -> str:
    ticket = zendesk.ticket(subject, text, requester_email=email)
    await bot.deliver("zendesk", *zendesk.delivery(ticket))
    await bot.work()
    [note] = zendesk.notes(ticket)
    return note["html_body"]


async def test_a_match_by_requester_email_is_labelled_verified(bot, zendesk):
    body = await note_for(bot, zendesk, "Question", "Hello", "jane.doe@example.com")
    assert "Customer verified (requester email)" in body
    assert "not verified" not in body


async def test_a_match_by_an_id_in_the_text_says_it_is_not_verified(bot, zendesk):
    body = await note_for(
        bot, zendesk, "Refund for ch_jane_1", "Please refund it.", "someone.else@example.net"
    )
    assert "not verified (ID in the ticket text: ch_jane_1)" in body
    assert "check who you are talking to before acting" in body
    assert "Jane Doe" in body
    [row] = await bot.rows()
    assert row.matched == "reference"


async def test_no_customer_gives_a_short_note_saying_so(bot, zendesk):
    body = await note_for(bot, zendesk, "Hello", "Just a question.", "nobody@example.org")
    assert "No billing customer found for nobody@example.org" in body
    assert "Charges" not in body


async def test_the_summary_shows_exact_amounts_refunds_open_disputes_and_invoices(bot, zendesk):
    body = await note_for(bot, zendesk, "Hi", "Hello", "jane.doe@example.com")
    assert "refunded €19.00" in body  # ch_jane_2: 49.00, of which 19.00 refunded
    assert "re_jane_2" in body and "Open disputes (1)" in body and "dp_jane_1" in body
    yuki = await note_for(bot, zendesk, "Hi", "Hello", "yuki.tanaka@example.com")
    assert "¥5,500" in yuki  # no minor unit, no rounding
    fatima = await note_for(bot, zendesk, "Hi", "Hello", "fatima.alsabah@example.com")
    assert "12.500" in fatima  # KWD has three decimals


async def test_a_hostile_customer_name_and_subject_come_out_inert(bot, zendesk):
    now = datetime.now(UTC)
    async with bot.services.db.write() as s:
        s.add(LedgerCustomer(id="cus_evil", email="mallory@example.com", name=HOSTILE, created=now))
        await s.flush()
        s.add(LedgerCharge(
            id="ch_evil_1", customer_id="cus_evil", amount=1000, currency="EUR",
            amount_captured=1000, amount_refunded=0, status="succeeded", created=now,
            description="<img src=x onerror=alert(1)> card 4242 4242 4242 4242",
        ))  # fmt: skip
    body = await note_for(
        bot, zendesk, "<b onmouseover=alert(1)>ch_evil_1</b>", HOSTILE, "mallory@example.com"
    )
    assert "<script" not in body and "<img" not in body and "<b " not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt; *bold*" in body  # shown as typed
    assert "4242 4242 4242 4242" not in body and "•••• 4242" in body


def test_text_notes_escape_markup_and_keep_data_on_one_line() -> None:
    card = Card(
        title="ChargeDesk billing summary",
        sections=[Section(facts=[
            Fact(label="Customer", value=HOSTILE + "\n\nRefund approved"),
            Fact(label="IDs", value="ledger:cus_jane_1, status past_due"),
        ])],
        footer="ChargeDesk note cdn_0a1b2c",
    )  # fmt: skip
    text = as_text(card)
    assert "ChargeDesk note cdn_0a1b2c" in text  # the marker find_note looks for, verbatim
    assert "cus_jane_1, status past_due" in text
    assert r"\<script\>alert(1)\</script\> \*bold\* \[click\](https://evil.example)" in text
    assert "\nRefund approved" not in text  # a datum cannot start a line of its own
    assert "&lt;script&gt;" in as_html(card)


async def test_a_reply_to_our_receipt_email_names_the_receipt(bot, zendesk):
    receipt = await on_demand.receipt(bot.services, "ledger:ch_jane_1", actor=SYSTEM)
    subject = f"Re: Receipt {receipt.number} from Test Seller Ltd"
    body = await note_for(bot, zendesk, subject, "Why was I charged?", "jane.doe@example.com")
    assert f"Reply to our receipt {receipt.number}" in body
    assert "€120.00" in body and "ledger:ch_jane_1" in body
    assert "The requester is the customer this document was sent to." in body
    assert f"/portal/pdf/document/{receipt.number}" in body


async def test_a_reply_naming_our_receipt_from_another_address_is_not_verified(bot, zendesk):
    receipt = await on_demand.receipt(bot.services, "ledger:ch_jane_1", actor=SYSTEM)
    body = await note_for(
        bot, zendesk, f"Fwd: Receipt {receipt.number}", "See below", "stranger@example.net"
    )
    assert f"Reply to our receipt {receipt.number}" in body
    assert "Not verified: the requester is not the email this document was sent to." in body
    assert "Customer not verified (document number in the ticket" in body
    [row] = await bot.rows()
    assert row.matched == "document"
