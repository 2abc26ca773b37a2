"""`report tax`: the tax on the documents we issued, per country, treatment and rate.

Our own invoices, receipts and credit notes are the record: each holds its lines at the rate
and treatment it was issued with. Credit notes count negative, so refunds are netted in the
period they were issued. A sale with both a receipt and an invoice (a charge that paid an
invoice we also issued) counts once, as the invoice.

The treatment column is what a return asks for: `domestic` (the seller's own country),
`one-stop-shop` (EU consumers in another member state, the OSS return's rows), `GST`,
`reverse charge` (EU business customers: no tax, their VAT ID on the document), `exempt`
and `outside scope`.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from sqlalchemy import select

from bot.documents.model import DocumentContent, DocumentKind, TaxTreatment
from bot.money import Money
from bot.reports.model import Cell, Report, bars_by_currency
from bot.reports.period import Period
from bot.services import Services
from bot.store.tables import DocumentRow
from bot.tax_ids import EU

COLUMNS = (
    "Country",
    "Treatment",
    "Tax",
    "Rate %",
    "Currency",
    "Documents",
    "Net",
    "Tax amount",
    "Gross",
)


def treatment_label(content: DocumentContent) -> str:
    """The word a tax return uses for this document's treatment."""
    if content.treatment != TaxTreatment.standard:
        return content.treatment.value.replace("_", " ")
    if content.tax_name.upper() == "GST":
        return "GST"
    seller, buyer = content.seller.country, content.buyer.country or content.seller.country
    if seller in EU and buyer in EU and buyer != seller:
        return "one-stop-shop"
    return "domestic"


async def _documents(services: Services, period: Period) -> list[DocumentContent]:
    async with services.db.read() as session:
        rows = list(await session.scalars(
            select(DocumentRow).where(DocumentRow.issued_at >= period.start, DocumentRow.issued_at < period.end)
            .order_by(DocumentRow.issued_at)
        ))  # fmt: skip
        receipts = [r for r in rows if r.kind == DocumentKind.receipt]
        # Invoices issued at any time: a receipt this month for an invoice issued last month
        # is the same sale, already counted then.
        invoiced: set[tuple[str, str | None]] = set()
        if receipts:
            reference = DocumentRow.content["reference"].as_string()
            found = await session.execute(
                select(DocumentRow.source_gateway, reference)
                .where(DocumentRow.kind == DocumentKind.invoice.value)
            )  # fmt: skip
            invoiced = {(gateway, ref) for gateway, ref in found}
    contents = []
    for row in rows:
        content = DocumentContent.model_validate(row.content)
        if row.kind == DocumentKind.receipt and (row.source_gateway, content.reference) in invoiced:
            continue
        contents.append(content)
    return contents


async def tax_report(services: Services, period: Period) -> Report:
    """Net, tax and gross per country, treatment, tax name, rate and currency."""
    sums: dict[tuple[str, str, str, Decimal, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for doc in await _documents(services, period):
        sign = -1 if doc.kind == DocumentKind.credit_note else 1
        country = doc.buyer.country or doc.seller.country or "—"
        label = treatment_label(doc)
        for number, line in enumerate(doc.lines):
            cell = sums[(country, label, doc.tax_name, line.rate, doc.currency)]
            cell[0] += sign if number == 0 else 0
            cell[1] += sign * line.net
            cell[2] += sign * line.tax
            cell[3] += sign * line.gross
    rows: list[tuple[Cell, ...]] = []
    for (country, label, name, rate, currency), (count, net, tax, gross) in sorted(sums.items()):
        rows.append((
            country, label, name, rate, currency, count,
            Money(minor=net, currency=currency), Money(minor=tax, currency=currency),
            Money(minor=gross, currency=currency),
        ))  # fmt: skip
    totals: list[tuple[Cell, ...]] = []
    for currency in sorted({key[4] for key in sums}):
        mine = [v for k, v in sums.items() if k[4] == currency]
        totals.append((
            f"Total ({currency})", None, None, None, currency, sum(v[0] for v in mine),
            *(Money(minor=sum(v[i] for v in mine), currency=currency) for i in (1, 2, 3)),
        ))  # fmt: skip
    return Report(
        kind="tax",
        title="Tax on issued documents",
        period=period,
        columns=COLUMNS,
        rows=tuple(rows),
        totals=tuple(totals),
        notes=(
            "Documents counts invoices and receipts as +1 and credit notes as -1.",
            "Credit notes are netted in the period they were issued.",
        ),
        chart=bars_by_currency(
            "Tax per country",
            ((str(r[0]), r[7]) for r in rows if isinstance(r[7], Money)),
        ),
    )
