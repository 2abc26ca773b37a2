"""`report invoices`: what customers still owe, by how late it is, and what was paid late.

Read from the billing index. An open invoice's outstanding amount is what is due less what
was paid; its age is counted from its due date (from its date when it has none) to the
report's day: not yet due, 1-30, 31-60, 61-90 and over 90 days overdue.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import select

from bot.money import Money
from bot.reports.model import Cell, Report, bars_by_currency
from bot.reports.period import Period
from bot.services import Services
from bot.store.tables import IndexedObject

Which = Literal["open", "overdue", "paid-late"]
BUCKETS = ("not yet due", "1-30 days", "31-60 days", "61-90 days", "over 90 days")
COLUMNS = (
    "Customer",
    "Invoice",
    "Gateway",
    "Status",
    "Due",
    "Days late",
    "Aging",
    "Currency",
    "Outstanding",
)
LISTED = 5_000  # rows a report lists; the totals count every invoice


def aging(days_late: int) -> str:
    if days_late <= 0:
        return BUCKETS[0]
    if days_late <= 30:
        return BUCKETS[1]
    if days_late <= 60:
        return BUCKETS[2]
    return BUCKETS[3] if days_late <= 90 else BUCKETS[4]


async def invoices_report(
    services: Services, period: Period, *, which: Which = "open", now: datetime | None = None
) -> Report:
    """Open (or only overdue) invoices with their aging, or the invoices paid after their due date
    in the period."""
    today = now or datetime.now(UTC)
    query = select(IndexedObject).where(IndexedObject.kind == "invoice")
    if which == "paid-late":
        query = query.where(
            IndexedObject.status == "paid", IndexedObject.paid_at >= period.start,
            IndexedObject.paid_at < period.end, IndexedObject.due.is_not(None),
            IndexedObject.paid_at > IndexedObject.due,
        )  # fmt: skip
    else:
        query = query.where(IndexedObject.status == "open")
    async with services.db.read() as session:
        found = list(
            await session.scalars(query.order_by(IndexedObject.due, IndexedObject.object_id))
        )
    rows: list[tuple[Cell, ...]] = []
    per_bucket: list[tuple[str, Money]] = []
    sums: dict[tuple[str, str], int] = defaultdict(int)
    for inv in found:
        if inv.amount is None or inv.currency is None:
            continue
        due = inv.due or inv.created or today
        if which == "paid-late":
            late = ((inv.paid_at or today) - due).days
            owed = Money(minor=inv.amount_settled or 0, currency=inv.currency)
        else:
            late = (today - due).days
            owed = Money(minor=inv.amount - (inv.amount_settled or 0), currency=inv.currency)
            if which == "overdue" and late <= 0:
                continue
        bucket = aging(late)
        sums[(bucket, inv.currency)] += owed.minor
        per_bucket.append((bucket, owed))
        if len(rows) < LISTED:
            rows.append((
                inv.name or inv.email or inv.customer_id or "—", inv.number or inv.object_id,
                inv.gateway, inv.status, f"{due:%Y-%m-%d}", max(late, 0), bucket, inv.currency, owed,
            ))  # fmt: skip
    totals = tuple(
        (f"Total {bucket} ({cur})", None, None, None, None, None, bucket, cur, Money(minor=v, currency=cur))
        for (bucket, cur), v in sorted(sums.items(), key=lambda kv: (kv[0][1], BUCKETS.index(kv[0][0])))
    )  # fmt: skip
    label = "paid" if which == "paid-late" else "outstanding"
    return Report(
        kind="invoices",
        title={
            "open": "Open invoices by age",
            "overdue": "Overdue invoices by age",
            "paid-late": "Invoices paid after their due date",
        }[which],
        period=period,
        columns=(*COLUMNS[:-1], "Paid" if which == "paid-late" else COLUMNS[-1]),
        rows=tuple(rows),
        totals=totals,
        notes=(
            f"Aged on {today:%Y-%m-%d} from each due date; the {label} amounts per bucket and currency are the totals.",
            "From the billing index: as fresh as the last `chargedesk sync` and the webhooks since.",
        ),
        chart=bars_by_currency(f"{label.capitalize()} by age", per_bucket),
        filters=(which,),
    )
