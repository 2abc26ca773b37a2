"""Finance reports: exact tables, the same totals in every export, a chart beside the card."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from bot.actors import Role
from bot.audit.log import AuditRecord, append
from bot.documents import build
from bot.documents.model import DocumentContent, DocumentKind
from bot.errors import UserError
from bot.models import Address, Customer, Refund
from bot.money import Money
from bot.reports.chart import render_chart
from bot.reports.period import parse_period
from bot.reports.tax import tax_report
from bot.services import Services
from bot.store.tables import DocumentRow
from bot.webhooks import gateway_actor
from tests.conftest import person, say
from tests.documents.drafts import SETTINGS

pytestmark = pytest.mark.storage

CHARGE = "ch_jane_1"  # 120.00 EUR in the demo dataset
TODAY = date(2026, 11, 20)


def test_periods_are_half_open_months_quarters_years_and_ranges() -> None:
    november = parse_period("2026-11")
    assert (november.start, november.end) == (
        datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC),
    )  # fmt: skip
    assert parse_period("2026-q4").start == datetime(2026, 10, 1, tzinfo=UTC)
    assert parse_period("2026-Q4").end == datetime(2027, 1, 1, tzinfo=UTC)
    assert parse_period("last-month", today=date(2026, 1, 15)).label == "2025-12"
    assert parse_period("last-quarter", today=date(2026, 2, 1)).label == "2025-Q4"
    days = parse_period("2026-11-01..2026-11-15")
    assert days.end - days.start == timedelta(days=15)
    assert parse_period("30d", today=TODAY).end == datetime(2026, 11, 21, tzinfo=UTC)


@pytest.mark.parametrize("said", ["2026-13", "2026-02-30..2026-03-01", "yesterdayish", "0d"])
def test_a_period_nobody_can_read_is_one_line_naming_what_to_say(said: str) -> None:
    with pytest.raises(UserError, match="is not a period: say 2026-11") as caught:
        parse_period(said)
    assert "\n" not in caught.value.message


async def test_refunds_report_counts_each_persons_refunds_with_who_approved_them(
    services, agent, other_agent, manager
):
    alone = await say(services, agent, f"refund {CHARGE} 20.00 reason: goodwill late parcel")
    big = await say(services, agent, f"refund {CHARGE} 80.00 reason: duplicate charged twice")
    await say(services, manager, f"approve {big.approval.id}")
    other = await say(services, other_agent, f"refund {CHARGE} 10.00 reason: service_issue slow")
    assert {alone.approval.state, other.approval.state} == {"succeeded"}

    reply = await say(services, manager, "report refunds this-month")
    assert reply.error is None, reply.error
    card = reply.cards[0]
    rows = {tuple(r[:5]) for r in card.sections[1].table.rows}
    assert rows == {
        ("Alex", "duplicate", "EUR", "1", "€80.00"),
        ("Alex", "goodwill", "EUR", "1", "€20.00"),
        ("Sam", "service_issue", "EUR", "1", "€10.00"),
    }
    by_code = {r[1]: r for r in card.sections[1].table.rows}
    assert by_code["duplicate"][5:7] == ["0", "Maria"]  # approved by the manager
    assert by_code["goodwill"][5:7] == ["1", "—"]  # within the agent's own limit
    totals = card.sections[2].table.rows
    assert totals == [["Total (EUR)", "", "", "", "€110.00", "", "", "", ""]]
    assert any(
        n == "policy: agents refund alone up to 50.00 EUR a refund, 200.00 EUR a day"
        for n in card.sections[3].text.splitlines()
    )
    (chart,) = reply.files
    assert chart.mime == "image/png" and chart.content.startswith(b"\x89PNG")

    only = await say(services, manager, "report refunds agent=sam")
    assert [r[0] for r in only.cards[0].sections[1].table.rows] == ["Sam"]
    coded = await say(services, manager, "report refunds code=goodwill csv this-month")
    assert [r[1] for r in coded.cards[0].sections[1].table.rows] == ["goodwill"]


async def test_a_refund_made_in_a_gateway_dashboard_is_in_the_report_as_external(services, manager):
    async with services.db.write() as session:
        await append(session, AuditRecord(
            actor=gateway_actor("stripe"), action="refund", outcome="external", gateway="stripe",
            object_id="re_dash_1", amount=Money(minor=1500, currency="USD"), reason="refunded in Stripe",
        ))  # fmt: skip
    reply = await say(services, manager, "report refunds")
    (row,) = reply.cards[0].sections[1].table.rows
    assert row[:5] == ["stripe (outside ChargeDesk)", "external", "USD", "1", "$15.00"]


async def test_only_managers_and_finance_staff_read_reports(services, agent, customer):
    for who in (agent, customer, person("vera", Role.viewer)):
        reply = await say(services, who, "report refunds")
        assert reply.error is not None and reply.error.code == "forbidden"
    finance = await say(services, person("fin", Role.finance), "report agents")
    assert finance.error is None, finance.error


async def test_csv_and_xlsx_carry_the_cards_exact_totals_and_no_formula(services, manager):
    sly = person('=HYPERLINK("http://evil.example","click")', Role.agent, "shell")
    sly = sly.model_copy(update={"name": sly.id})  # the name as the platform sent it
    for amount in ("0.10", "0.20"):
        reply = await say(services, sly, f"refund {CHARGE} {amount} reason: goodwill tiny")
        assert reply.approval.state == "succeeded"

    as_csv = (await say(services, manager, "report refunds csv")).files[0]
    assert as_csv.name.startswith("refunds-") and as_csv.name.endswith(".csv")
    lines = list(csv.reader(io.StringIO(as_csv.content.decode("utf-8-sig"))))
    assert lines[1][0].startswith("'=HYPERLINK")  # text, never a formula
    assert lines[1][4] == "0.30" and lines[-1][:1] == ["Total (EUR)"] and lines[-1][4] == "0.30"

    as_xlsx = (await say(services, manager, "report refunds xlsx")).files[0]
    sheet = load_workbook(io.BytesIO(as_xlsx.content))["refunds"]
    first = next(iter(sheet.iter_rows(min_row=2, max_row=2)))
    assert first[0].data_type == "s" and first[0].value.startswith("=HYPERLINK")
    assert first[4].value == Decimal("0.3") or first[4].value == pytest.approx(0.3)
    assert first[4].number_format == "#,##0.00"
    total = [row for row in sheet.iter_rows(values_only=True) if row[0] == "Total (EUR)"]
    assert total and str(total[0][4]) in ("0.3", "0.30")


async def test_agents_report_is_each_persons_audited_trail_with_reasons(services, agent, manager):
    await say(services, agent, f"refund {CHARGE} 70.00 reason: duplicate charged twice")
    reply = await say(services, manager, "report agents agent=alex")
    rows = reply.cards[0].sections[1].table.rows
    assert rows and all(r[1].startswith("Alex (") for r in rows)
    assert any(r[2] == "refund" and r[7] == "duplicate charged twice" for r in rows)
    assert not any(r[1].startswith("ChargeDesk") for r in rows)


def _document(content: DocumentContent, number: str, kind: str) -> DocumentRow:
    return DocumentRow(
        id=f"doc_{number}", entity="acme", kind=kind, seq=int(number.rsplit("-", 1)[1]),
        number=number, source_gateway=content.source_gateway, source_id=content.source_id,
        customer_id=content.customer_id, customer_email=None, related_id=None,
        currency=content.currency, net=sum(li.net for li in content.lines),
        tax=sum(li.tax for li in content.lines), gross=sum(li.gross for li in content.lines),
        treatment=content.treatment.value, country=content.buyer.country, language="en",
        issued_at=content.issued_at, content=content.model_dump(mode="json"), pdf=b"", sha256="0" * 64,
    )  # fmt: skip


def _buyer(country: str, tax_id: str | None = None) -> build.Buyer:
    customer = Customer(
        gateway="ledger", id=f"cus_{country}", email="b@example.com", name="B",
        address=Address(line1="1 Street", postal_code="1000", city="Town", country=country),
    )  # fmt: skip
    return build.Buyer(customer, tax_ids=(tax_id,) if tax_id else ())


async def test_tax_report_nets_credit_notes_and_counts_a_sale_with_receipt_and_invoice_once(
    services: Services,
):
    from tests.documents.drafts import WHEN, draft

    german = draft("ch_de", 11900).model_copy(update={"number": "R-0001"})  # 19 % in DE
    french = draft("ch_fr", 12000, country="FR").model_copy(update={"number": "R-0002"})
    refund = Refund(
        gateway="ledger", id="re_fr", charge_id="ch_fr", amount=Money(minor=6000, currency="EUR")
    )
    note = build.credit_note(SETTINGS, refund, french, reason="goodwill", now=WHEN)
    note = note.model_copy(update={"number": "C-0001"})
    # A receipt for a charge that paid an invoice we also issued: one sale, counted as the invoice.
    twin = draft("ch_inv", 11900).model_copy(update={"number": "R-0003", "reference": "INV-7"})
    invoice = twin.model_copy(
        update={"number": "I-0001", "kind": DocumentKind.invoice, "source_id": "in_7"}
    )
    async with services.db.write() as session:
        session.add_all([
            _document(german, "R-0001", "receipt"), _document(french, "R-0002", "receipt"),
            _document(note, "C-0001", "credit_note"), _document(twin, "R-0003", "receipt"),
            _document(invoice, "I-0001", "invoice"),
        ])  # fmt: skip
    report = await tax_report(services, parse_period("2026-11"))
    rows = {(r[0], r[1], r[3]): r for r in report.rows}
    de = rows[("DE", "domestic", Decimal(19))]
    assert de[5] == 2 and de[7] == Money(
        minor=3800, currency="EUR"
    )  # two sales of 119.00: 19.00 tax each
    fr = rows[("FR", "one-stop-shop", Decimal(20))]
    assert fr[5] == 0  # one receipt, one credit note
    assert (fr[6], fr[7], fr[8]) == (
        Money(minor=5000, currency="EUR"), Money(minor=1000, currency="EUR"), Money(minor=6000, currency="EUR"),
    )  # fmt: skip
    (total,) = report.totals
    assert total[7] == Money(minor=4800, currency="EUR")
    assert render_chart(report) == render_chart(report)  # the same report draws the same bytes


def test_a_name_with_tex_or_newlines_is_drawn_as_text() -> None:
    from bot.reports.model import Report, bars_by_currency

    bars = bars_by_currency(
        "Refunded per person",
        [(r"$\frac{1}{0}$ \n", Money(minor=100, currency="EUR")), ("a\nb" * 40, Money(minor=5, currency="JPY"))],
    )  # fmt: skip
    report = Report("refunds", "t", parse_period("2026-11"), ("a",), (), chart=bars)
    png = render_chart(report)
    assert png is not None and png.startswith(b"\x89PNG")


async def test_report_words_come_in_any_order_even_after_a_period(services, manager):
    for line in ("report refunds 2026-11 csv", "report refunds csv 2026-11"):
        reply = await say(services, manager, line)
        assert reply.error is None, reply.error
        assert reply.files[0].name == "refunds-2026-11.csv"
