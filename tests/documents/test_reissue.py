"""A document whose customer details changed is corrected, never edited: a credit note
cancels it and a new one replaces it, numbered gaplessly, emailed, each exactly once."""

from __future__ import annotations

import email
from email import policy
from pathlib import Path

import pytest
from sqlalchemy import select, update

from bot import jobs
from bot.actors import SYSTEM
from bot.documents import on_demand, reissue
from bot.documents.issue import IssuedDocument
from bot.services import Services
from bot.store.tables import DocumentRequest, DocumentRow, LedgerCustomer
from tests.conftest import say
from tests.documents.conftest import pdf_text
from tests.documents.drafts import repo_branding  # noqa: F401 - a fixture

pytestmark = [pytest.mark.storage, pytest.mark.usefixtures("repo_branding")]

MOVED = "address cus_jane Friedrichstraße 68, 10117 Berlin, DE reason: moved to Berlin"


async def issue_invoice(services: Services) -> IssuedDocument:
    return await on_demand.invoice(services, "ledger:in_jane_paid", actor=SYSTEM)


async def documents(services: Services) -> dict[str, list[DocumentRow]]:
    found: dict[str, list[DocumentRow]] = {}
    async with services.db.read() as s:
        for row in await s.scalars(select(DocumentRow).order_by(DocumentRow.seq)):
            found.setdefault(row.kind, []).append(row)
    return found


def sent(services: Services) -> list[email.message.EmailMessage]:
    folder = Path(services.settings.data_dir) / "outbox"
    return [
        email.message_from_bytes(path.read_bytes(), policy=policy.default)  # type: ignore[misc]
        for path in sorted(folder.glob("*.eml"))
    ]


def automatic(services: Services) -> None:
    services.branding = services.branding.model_copy(update={"reissue": "automatic"})


async def test_an_address_change_reissues_this_periods_invoice_with_a_credit_note(services, agent):
    old = await issue_invoice(services)
    automatic(services)
    reply = await say(services, agent, MOVED)
    assert reply.error is None, reply.error
    assert "Re-issuing with the new details" in reply.cards[-1].sections[0].text
    await jobs.run_worker(services, burst=True)
    await jobs.run_worker(services, burst=True)  # a second run issues and sends nothing
    docs = await documents(services)
    [first, new] = docs["invoice"]
    [note] = docs["credit_note"]
    assert first.id == old.id
    assert [d.seq for d in docs["invoice"]] == [1, 2] and note.seq == 1  # gapless series
    assert (note.source_id, note.related_id, note.gross) == (old.id, old.id, old.content.gross)
    assert note.content["related_number"] == old.number
    assert (new.source_id, new.related_id, new.gross) == (old.id, old.id, old.content.gross)
    assert new.content["buyer"]["address"][0] == "Friedrichstraße 68"
    # Moved from Ireland (23 %) to Germany (19 %): the tax rules compute the new invoice.
    assert (old.content.buyer.country, new.country) == ("IE", "DE")
    assert (note.tax, new.tax) == (old.content.tax, 1916)
    mails = sent(services)
    assert sorted(m["X-ChargeDesk-Document"] for m in mails) == sorted([note.number, new.number])
    assert {m["To"] for m in mails} == {"jane.doe@example.com"}
    async with services.db.read() as s:
        [request] = await s.scalars(
            select(DocumentRequest).where(DocumentRequest.kind == "reissue")
        )
    assert (request.state, request.document_id) == ("done", new.id)
    # Asking for the invoice of in_jane_paid now gives the one in force.
    assert (await issue_invoice(services)).id == new.id


async def test_a_vat_id_turns_domestic_vat_into_reverse_charge_when_reissued(services, agent):
    old = await issue_invoice(services)
    assert (old.content.treatment.value, old.content.tax) == ("standard", 2244)
    reply = await say(services, agent, "tax-id cus_jane IE6388047V reason: VAT registered")
    assert reply.error is None, reply.error
    offer = reply.cards[-1]
    assert [b.command for b in offer.actions] == [f"reissue {old.number} reason: "]
    assert list(await documents(services)) == ["invoice"]  # offered, not done
    done = await say(services, agent, f"reissue {old.number} reason: VAT ID added")
    assert done.error is None, done.error
    docs = await documents(services)
    [note], new = docs["credit_note"], docs["invoice"][1]
    assert (new.treatment, new.tax, new.gross) == ("reverse_charge", 0, old.content.gross)
    assert (note.treatment, note.tax) == ("standard", 2244)
    assert done.cards[0].title == f"{old.number} re-issued as {new.number}"
    again = await say(services, agent, f"reissue {old.number} reason: VAT ID added")
    assert again.error is None and again.cards[0].title == done.cards[0].title
    assert sum(len(rows) for rows in (await documents(services)).values()) == 3


async def test_rerunning_the_correction_after_a_crash_issues_nothing_twice(
    services, agent, monkeypatch
):
    old = await issue_invoice(services)
    assert (await say(services, agent, MOVED)).error is None
    real, calls = reissue._issue, []

    async def crash_after_the_credit_note(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("killed between the credit note and the new invoice")
        return await real(*args, **kwargs)

    monkeypatch.setattr(reissue, "_issue", crash_after_the_credit_note)
    async with services.db.write() as s:
        assert await reissue.request(s, "ledger", old.id, reason=None)
        assert not await reissue.request(s, "ledger", old.id, reason=None)
    with pytest.raises(RuntimeError):
        await reissue.fulfil(services, "ledger", old.id)
    docs = await documents(services)
    assert (len(docs["credit_note"]), len(docs["invoice"])) == (1, 1)
    monkeypatch.setattr(reissue, "_issue", real)
    assert await reissue.sweep(services) == 1  # still pending: the sweep finds it
    assert await reissue.fulfil(services, "ledger", old.id) == "done"
    assert await reissue.fulfil(services, "ledger", old.id) == "done"
    await jobs.run_worker(services, burst=True)
    docs = await documents(services)
    assert [d.seq for d in docs["invoice"]] == [1, 2]
    assert [d.seq for d in docs["credit_note"]] == [1]
    assert len(sent(services)) == 2


async def test_a_document_that_would_say_the_same_is_not_reissued(services, agent):
    old = await issue_invoice(services)
    reply = await say(services, agent, f"reissue {old.number} reason: just because")
    assert reply.error is not None and reply.error.code == "not_reissued"
    assert "already shows the customer's current name, address and tax ID" in reply.error.message
    assert list(await documents(services)) == ["invoice"]
    assert (await say(services, agent, MOVED)).error is None
    assert (await say(services, agent, f"reissue {old.number} reason: moved")).error is None
    [note] = (await documents(services))["credit_note"]
    refused = await say(services, agent, f"reissue {note.number} reason: moved")
    assert refused.error is not None and "only invoices and receipts" in refused.error.message
    unknown = await say(services, agent, "reissue INV-1999-000001 reason: moved")
    assert (
        unknown.error is not None
        and unknown.error.message == "no document numbered INV-1999-000001"
    )


async def test_hostile_details_are_harmless_in_the_pdf_and_the_email_headers(services, agent):
    old = await issue_invoice(services)
    async with services.db.write() as s:  # what a gateway may hold, whatever we would accept
        await s.execute(
            update(LedgerCustomer)
            .where(LedgerCustomer.id == "cus_jane")
            .values(
                name="*mrkdwn* <script>alert(1)</script>",
                address={"line1": "Main St 1\r\nBcc: victim@example.com", "city": "Dublin",
                         "country": "IE"},
            )
        )  # fmt: skip
    reply = await say(services, agent, f"reissue {old.number} reason: details corrected")
    assert reply.error is None, reply.error
    await jobs.run_worker(services, burst=True)
    new = (await documents(services))["invoice"][1]
    assert "*mrkdwn* <script>alert(1)</script>" in pdf_text(new.pdf)
    mails = sent(services)
    assert len(mails) == 2
    for mail in mails:
        assert mail["Bcc"] is None
        assert all("\r" not in v and "\n" not in v for _, v in mail.items())
        assert [a for a in mail.get_all("To")] == ["jane.doe@example.com"]


async def test_a_refund_after_the_correction_credits_the_new_invoice(services, agent):
    old = await issue_invoice(services)
    automatic(services)
    assert (await say(services, agent, MOVED)).error is None
    await jobs.run_worker(services, burst=True)
    refund = await say(services, agent, "refund ch_jane_1 8.00 reason: goodwill late delivery")
    assert refund.error is None, refund.error
    await jobs.run_worker(services, burst=True)
    docs = await documents(services)
    new = docs["invoice"][1]
    [correction, refunded] = docs["credit_note"]
    assert correction.related_id == old.id
    assert (refunded.related_id, refunded.gross) == (new.id, 800)
    assert refunded.content["related_number"] == new.number
