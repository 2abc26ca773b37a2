"""A report as every output shows it: a table of exact cells, totals, notes and a chart.

Cells are text, whole numbers, exact `Money` or `Decimal` rates: the card, CSV and XLSX
write them from the same rows, so an export's totals are the card's. A chart is a view of
some columns, per currency: amounts in different currencies are never added together.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from bot.money import Money
from bot.reports.period import Period

Cell = str | int | Decimal | Money | None


@dataclass(frozen=True)
class Bars:
    """Bars per category, one group per currency (or one group of counts, `currency` None)."""

    title: str
    categories: tuple[str, ...]
    series: dict[str | None, tuple[int, ...]]  # currency -> minor units per category (or counts)


@dataclass(frozen=True)
class Report:
    kind: str
    title: str
    period: Period
    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    totals: tuple[tuple[Cell, ...], ...] = ()
    notes: tuple[str, ...] = ()
    chart: Bars | None = None
    # Filters the report was made with, as `agent=alex`: shown on the card and in file names.
    filters: tuple[str, ...] = field(default_factory=tuple)


def totals_by_currency(
    amounts: Iterable[Money], *, label: str, width: int, at: int
) -> tuple[tuple[Cell, ...], ...]:
    """One total row per currency: `label (EUR)` first, the sum in column `at`."""
    sums: dict[str, int] = defaultdict(int)
    for amount in amounts:
        sums[amount.currency] += amount.minor
    rows = []
    for currency in sorted(sums):
        row: list[Cell] = [None] * width
        row[0] = f"{label} ({currency})"
        row[at] = Money(minor=sums[currency], currency=currency)
        rows.append(tuple(row))
    return tuple(rows)


def bars_by_currency(
    title: str, pairs: Iterable[tuple[str, Money]], *, limit: int = 12
) -> Bars | None:
    """Sum amounts per (category, currency); the `limit` largest categories by their largest sum."""
    sums: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for category, amount in pairs:
        sums[category][amount.currency] += amount.minor
    if not sums:
        return None
    ranked = sorted(sums, key=lambda c: (-max(sums[c].values()), c))[:limit]
    currencies = sorted({cur for per in sums.values() for cur in per})
    series: dict[str | None, tuple[int, ...]] = {
        cur: tuple(sums[c].get(cur, 0) for c in ranked) for cur in currencies
    }
    return Bars(title, tuple(ranked), series)
