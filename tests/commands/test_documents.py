"""`invoice pdf|send` and `receipt`: numbered PDFs issued once, emailed at most once, agents only."""

from __future__ import annotations

import io

import pytest
from pypdf import PdfReader
from sqlalchemy import func, select

from bot.cards.model import Reply
from bot.chat.shell.render import to_json
from bot.documents.config import load_tax
from bot.documents.issue import find
from bot.services import Services
from bot.store.tables import DocumentRow, EmailRow
from tests.conftest import REPO, say


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def facts(reply: Reply) -> dict[str, str]:
    return {f.label: f.value for s in reply.cards[0].sections for f in s.facts}


async def count(services: Services, table: type) -> int:
    async with services.db.read() as s:
        return int(await s.scalar(select(func.count()).select_from(table)) or 0)


async def emails(services: Services) -> list[EmailRow]:
    async with services.db.read() as s:
        return list(await s.scalars(select(EmailRow)))


async def test_receipt_comes_as_a_pdf_with_its_number_and_amount(services, agent):
    reply = await say(services, agent, "receipt ch_jane_1")
    assert reply.error is None, reply.error
    [file] = reply.files
    number = reply.cards[0].title.removeprefix("Receipt ")
    assert (file.name, file.mime) == (f"{number}.pdf", "application/pdf")
    assert file.content.startswith(b"%PDF")
    text = pdf_text(file.content)
    assert number in text and "120.00" in text
    assert facts(reply)["Total"] == "€120.00 incl. tax"
    assert facts(reply)["For"] == "ledger:ch_jane_1"
    # The card offers the email; the document is stored as issued.
    assert [b.command for b in reply.cards[0].actions] == ["receipt ledger:ch_jane_1 send"]
    stored = await find(services.db, number)
    assert stored is not None and stored.pdf == file.content


async def test_asking_twice_gives_the_same_document(services, agent, other_agent):
    first = await say(services, agent, "receipt ch_jane_1")
    again = await say(services, other_agent, "receipt ledger:ch_jane_1")
    assert again.cards[0].title == first.cards[0].title
    assert again.files[0].content == first.files[0].content
    assert "the same document as before" in (again.cards[0].subtitle or "")
    assert await count(services, DocumentRow) == 1


async def test_invoice_pdf_shows_totals_tax_lines_and_language(services, agent):
    services.tax = load_tax(REPO / "config")  # the shipped rates: Ireland charges 23% VAT
    reply = await say(services, agent, "invoice pdf in_jane_paid")
    assert reply.error is None, reply.error
    card = reply.cards[0]
    assert card.title.startswith("Invoice ")
    shown = facts(reply)
    assert shown["Customer"] == "Jane Doe <jane.doe@example.com> (ledger:cus_jane)"
    assert shown["Total"] == "€120.00 incl. tax" and shown["Net"] == "€97.56"
    assert shown["VAT 23%"] == "€22.44 on €97.56"
    assert shown["Language"] == "en"
    assert reply.files[0].name == f"{card.title.removeprefix('Invoice ')}.pdf"


async def test_without_a_rate_the_card_says_why_there_is_no_tax(services, agent):
    reply = await say(services, agent, "invoice pdf in_john_paid")
    shown = facts(reply)
    assert shown["Tax"] == "no tax rate configured for the customer's country"
    assert not any(label.startswith("VAT") for label in shown)


async def test_unpaid_charge_has_no_receipt_and_nothing_is_stored(services, agent):
    reply = await say(services, agent, "receipt ch_jane_auth")
    assert reply.error is not None and reply.error.code == "not_paid"
    assert "ch_jane_auth" in reply.error.message and "\n" not in reply.error.message
    assert reply.files == []
    assert await count(services, DocumentRow) == 0


@pytest.mark.parametrize(
    ("line", "code", "words"),
    [
        ("invoice pdf in_nope", "not_found", "no invoice in_nope in any gateway"),
        ("receipt ch_nope", "not_found", "no charge ch_nope in any gateway"),
        ("invoice mail in_jane_paid", "invalid_arguments", "'mail' is not pdf or send"),
        ("invoice in_jane_paid", "invalid_arguments", "is not pdf or send"),
        ("invoice pdf", "invalid_arguments", "invoice is required"),
        ("invoice pdf 'in;drop", "invalid_arguments", "is malformed"),
        ("receipt ch_jane_1 twice", "invalid_arguments", "'twice' is not pdf or send"),
        ("invoice pdf in_jane_paid extra", "usage", "too many arguments"),
    ],
)
async def test_bad_document_requests_get_one_precise_line(services, agent, line, code, words):
    reply = await say(services, agent, line)
    assert reply.error is not None, reply
    assert (reply.error.code, words in reply.error.message) == (code, True), reply.error.message
    assert "\n" not in reply.error.message
    assert await count(services, DocumentRow) == 0


async def test_draft_or_void_invoices_are_not_issued(services, agent):
    from sqlalchemy import update

    from bot.store.tables import LedgerInvoice

    async with services.db.write() as s:
        await s.execute(
            update(LedgerInvoice).where(LedgerInvoice.id == "in_jane_open").values(status="void")
        )
    reply = await say(services, agent, "invoice pdf in_jane_open")
    assert reply.error is not None and reply.error.code == "invalid_state"
    assert await count(services, DocumentRow) == 0


async def test_invoice_send_queues_one_email_to_the_customer(services, agent):
    sent = await say(services, agent, "invoice send in_jane_paid")
    assert sent.error is None, sent.error
    assert sent.files == []  # emailed, not shown
    emailed = next(s for s in sent.cards[0].sections if s.title == "Emailed")
    assert "jane.doe@example.com" in (emailed.text or "")
    [email] = await emails(services)
    assert email.recipient == "jane.doe@example.com"
    number = sent.cards[0].title.removeprefix("Invoice ")
    assert number in email.subject
    again = await say(services, agent, "invoice send in_jane_paid")
    assert again.error is None
    assert "already" in next(s.text for s in again.cards[0].sections if s.title == "Emailed")
    assert len(await emails(services)) == 1


async def test_receipt_send_issues_and_emails_it(services, agent):
    reply = await say(services, agent, "receipt ch_john_2 send")
    assert reply.error is None, reply.error
    [email] = await emails(services)
    assert email.recipient == "john.smith@example.com"
    assert await count(services, DocumentRow) == 1


async def test_without_an_email_on_file_send_says_so_and_queues_nothing(services, agent):
    from sqlalchemy import update

    from bot.store.tables import LedgerCustomer

    async with services.db.write() as s:
        await s.execute(
            update(LedgerCustomer).where(LedgerCustomer.id == "cus_john").values(email=None)
        )
    shown = await say(services, agent, "invoice pdf in_john_paid")
    assert shown.error is None and shown.cards[0].actions == []  # no email button either
    reply = await say(services, agent, "invoice send in_john_paid")
    assert reply.error is not None and reply.error.code == "no_email"
    assert "no email address on file" in reply.error.message
    assert await emails(services) == []


async def test_customers_are_refused_documents_here(services, customer):
    for line in ("receipt ch_jane_1", "invoice pdf in_jane_paid", "invoice send in_jane_paid"):
        reply = await say(services, customer, line)
        assert reply.error is not None
        assert reply.error.code == "forbidden" and "needs the agent role" in reply.error.message
    assert await count(services, DocumentRow) == 0
    assert await emails(services) == []


async def test_json_form_of_a_reply_carries_the_file_size_not_its_bytes(services, agent):
    reply = await say(services, agent, "receipt ch_jane_1")
    text = to_json(reply)
    assert '"size": ' in text and reply.files[0].name in text
    assert "%PDF" not in text and len(text) < len(reply.files[0].content)
