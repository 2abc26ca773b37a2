"""Receipts, invoices and credit notes for the demo customers: tax, language, references."""

from __future__ import annotations

import pytest
from pypdf import PdfReader
from sqlalchemy import func, select

from bot.actors import SYSTEM
from bot.documents import on_demand
from bot.documents.model import DocumentKind, TaxTreatment
from bot.errors import UserError
from bot.store.tables import DocumentRow
from tests.documents.drafts import repo_branding  # noqa: F401 - a fixture

pytestmark = [pytest.mark.storage, pytest.mark.usefixtures("repo_branding")]


def text(document) -> str:  # type: ignore[no-untyped-def]
    import io

    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(document.pdf)).pages)


async def documents(services) -> int:  # type: ignore[no-untyped-def]
    async with services.db.read() as s:
        return await s.scalar(select(func.count()).select_from(DocumentRow)) or 0


async def test_irish_consumer_pays_irish_vat_through_the_one_stop_shop(services):
    receipt = await on_demand.receipt(services, "ch_jane_1", actor=SYSTEM)
    content = receipt.content
    assert (content.kind, content.treatment, content.language) == (
        DocumentKind.receipt,
        TaxTreatment.standard,
        "en",
    )
    assert (content.gross, content.tax, content.net) == (12000, 2244, 9756)  # 23% inside 120.00
    assert content.seller.tax_id == "DE136695976"
    assert content.reference == "JANE-0001"  # the gateway invoice it paid
    assert receipt.number in text(receipt) and "€120.00" in text(receipt)


async def test_polish_business_gets_a_reverse_charge_invoice_in_polish(services):
    invoice = await on_demand.invoice(services, "in_kowalski_paid", actor=SYSTEM)
    content = invoice.content
    assert (content.treatment, content.language, content.locale) == (
        TaxTreatment.reverse_charge,
        "pl",
        "pl_PL",
    )
    assert [(line.description, line.quantity, line.gross, line.tax) for line in content.lines] == [
        ("Team plan, annual (12 seats)", 12, 108000, 0),
        ("Onboarding workshop", 1, 36000, 0),
    ]
    assert content.buyer.tax_id == "PL5260250274"
    assert content.paid_at is not None
    assert "Odwrotne obciążenie" in text(invoice)


async def test_japanese_customer_gets_consumption_tax_in_japanese(services):
    receipt = await on_demand.receipt(services, "ch_yuki_1", actor=SYSTEM)
    content = receipt.content
    assert (content.language, content.currency, content.gross, content.tax) == (
        "ja",
        "JPY",
        5500,
        500,
    )
    assert "5,500" in text(receipt)


async def test_customer_outside_any_taxed_country_pays_no_tax(services):
    receipt = await on_demand.receipt(services, "ch_john_2", actor=SYSTEM)
    assert (receipt.content.treatment, receipt.content.tax) == (TaxTreatment.outside_scope, 0)


async def test_a_charge_that_took_no_money_gets_no_receipt_and_no_number(services):
    with pytest.raises(UserError) as refused:
        await on_demand.receipt(services, "ch_jane_failed", actor=SYSTEM)
    assert refused.value.code == "not_paid"
    assert await documents(services) == 0


async def test_unknown_invoice_is_named_in_the_error(services):
    with pytest.raises(UserError) as refused:
        await on_demand.invoice(services, "in_nope", actor=SYSTEM)
    assert "in_nope" in refused.value.message


async def test_open_invoice_carries_its_due_date_and_is_not_marked_paid(services):
    invoice = await on_demand.invoice(services, "in_jane_open", actor=SYSTEM)
    assert invoice.content.due_date is not None and invoice.content.paid_at is None


async def test_credit_note_corrects_the_invoice_at_its_rates(services):
    from bot.gateways.ledger.gateway import LedgerGateway
    from bot.money import Money

    ledger: LedgerGateway = services.gateways.get("ledger")  # type: ignore[assignment]
    refund = await ledger.refund(
        "ch_kowalski_1", Money(minor=14400, currency="EUR"), reason="Two seats unused",
        idempotency_key="test-refund-1",
    )  # fmt: skip
    note = await on_demand.credit_note(services, "ch_kowalski_1", refund.id, actor=SYSTEM)
    invoice = await on_demand.invoice(services, "in_kowalski_paid", actor=SYSTEM)
    assert not invoice.new  # issued first, for the credit note to name it
    content = note.content
    assert (content.kind, content.related_number, content.treatment) == (
        DocumentKind.credit_note,
        invoice.number,
        TaxTreatment.reverse_charge,
    )
    assert [line.gross for line in content.lines] == [10800, 3600]  # 1080 : 360 of 144.00
    assert content.gross == 14400
    assert invoice.number in text(note)


async def test_credit_note_for_a_charge_without_invoice_corrects_its_receipt(services):
    note = await on_demand.credit_note(services, "ch_jane_2", "re_jane_2", actor=SYSTEM)
    receipt = await on_demand.receipt(services, "ch_jane_2", actor=SYSTEM)
    assert (note.content.related_kind, note.content.related_number) == (
        DocumentKind.receipt,
        receipt.number,
    )
    assert note.content.reason == "Goodwill credit for a day-long outage"
    assert f"Credit note for receipt {receipt.number}" in text(note)
