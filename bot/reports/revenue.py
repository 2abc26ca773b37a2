"""`report revenue`: money taken, given back and lost to disputes, per currency and period.

Read from the billing index (`chargedesk sync` and the webhooks keep it), summed in SQL so
a year of a million charges is one grouped query. Gross is what charges took (captured),
refunds are counted when they were made, lost disputes when they were opened; net is gross
less both. Currencies are never added together.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.sql.elements import ColumnElement

from bot.money import Money
from bot.reports.model import Bars, Cell, Report
from bot.reports.period import Period
from bot.services import Services
from bot.store.tables import IndexedObject

By = Literal["day", "week", "month"]
COLUMNS = ("Period", "Currency", "Charges", "Gross", "Refunds", "Disputes lost", "Net")
TAKEN = ("succeeded", "partially_refunded", "refunded", "disputed")


def bucket(column: Any, by: By, dialect: str) -> ColumnElement[str]:
    """The day, the Monday of the week, or the month (`2026-11`) a UTC time falls in."""
    if dialect == "postgresql":
        utc = func.timezone("UTC", column)
        unit = {"day": "day", "week": "week", "month": "month"}[by]
        shape = "YYYY-MM" if by == "month" else "YYYY-MM-DD"
        return func.to_char(func.date_trunc(unit, utc), shape)
    # SQLite keeps UTC times as text, `YYYY-MM-DD HH:MM:SS…`: cutting the text is the
    # cheapest way to a day or a month (a million rows' strftime costs seconds).
    if by == "month":
        return func.substr(column, 1, 7)
    day = func.substr(column, 1, 10)
    if by == "week":  # the Monday on or before the day
        return func.date(day, "weekday 0", "-6 days")
    return day


async def revenue_report(
    services: Services, period: Period, *, by: By = "month", gateway: str | None = None,
    currency: str | None = None,
) -> Report:  # fmt: skip
    """Gross, refunds, disputes lost and net per period bucket and currency."""
    dialect = "sqlite" if services.db.is_sqlite else "postgresql"
    # Per (bucket, currency): [charges, gross, refunds, lost disputes], read in one snapshot.
    sums: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    when = bucket(IndexedObject.created, by, dialect).label("bucket")
    async with services.db.read() as session:
        for kind, column in (("charge", 1), ("refund", 2), ("dispute", 3)):
            query = (
                select(when, IndexedObject.currency, func.count(), func.sum(IndexedObject.amount))
                .where(IndexedObject.kind == kind, IndexedObject.created >= period.start,
                       IndexedObject.created < period.end, IndexedObject.amount.is_not(None))
                .group_by(when, IndexedObject.currency)
            )  # fmt: skip
            if kind == "charge":
                query = query.where(IndexedObject.status.in_(TAKEN))
            if kind == "dispute":
                query = query.where(IndexedObject.status == "lost")
            if gateway:
                query = query.where(IndexedObject.gateway == gateway)
            if currency:
                query = query.where(IndexedObject.currency == currency.upper())
            for label, cur, count, total in await session.execute(query):
                cell = sums[(str(label), cur)]
                cell[column] += int(total or 0)
                if kind == "charge":
                    cell[0] += count
    rows: list[tuple[Cell, ...]] = []
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for (label, cur), (count, gross, refunds, lost) in sorted(sums.items()):
        money = [
            Money(minor=v, currency=cur) for v in (gross, refunds, lost, gross - refunds - lost)
        ]
        rows.append((label, cur, count, *money))
        for i, v in enumerate((count, gross, refunds, lost)):
            totals[cur][i] += v
    total_rows = tuple(
        (f"Total ({cur})", cur, c, *(Money(minor=v, currency=cur) for v in (g, r, d, g - r - d)))
        for cur, (c, g, r, d) in sorted(totals.items())
    )
    labels = tuple(sorted({label for label, _ in sums}))
    series: dict[str | None, tuple[int, ...]] = {
        cur: tuple(sums[(lb, cur)][1] - sums[(lb, cur)][2] - sums[(lb, cur)][3] if (lb, cur) in sums else 0
                   for lb in labels)
        for cur in sorted({cur for _, cur in sums})
    }  # fmt: skip
    filters = tuple(
        f for f in (f"by={by}", gateway and f"gateway={gateway}", currency and f"currency={currency.upper()}") if f
    )  # fmt: skip
    return Report(
        kind="revenue",
        title="Revenue",
        period=period,
        columns=COLUMNS,
        rows=tuple(rows),
        totals=total_rows,
        notes=(
            "From the billing index: as fresh as the last `chargedesk sync` and the webhooks since.",
            "Refunds count when they were made and lost disputes when they were opened, whatever the charge's date.",
        ),
        chart=Bars(f"Net per {by}", labels, series) if labels else None,
        filters=filters,
    )
