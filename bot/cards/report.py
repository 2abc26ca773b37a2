"""A report as a card: its first rows, the totals per currency and what the numbers rest on."""

from __future__ import annotations

from decimal import Decimal

from bot.cards.model import Card, Fact, Section, Table
from bot.money import Money
from bot.reports.model import Cell, Report

# A card is read in chat: the first rows; the export holds every one.
SHOWN_ROWS = 15


def cell_text(cell: Cell, locale: str) -> str:
    """A cell as a person reads it: amounts with their currency in the reader's locale."""
    if cell is None:
        return "—"
    if isinstance(cell, Money):
        return cell.format(locale)
    if isinstance(cell, Decimal):
        return format(cell.normalize(), "f")
    return str(cell)


def report_card(report: Report, *, locale: str, attached: list[str] | None = None) -> Card:
    """The report's card; `attached` names the files sent beside it (chart, export)."""
    facts = [Fact(label="Period", value=f"{report.period.label} ({report.period.start:%Y-%m-%d} "
                                          f"to {report.period.end:%Y-%m-%d}, end excluded, UTC)")]  # fmt: skip
    if report.filters:
        facts.append(Fact(label="Filters", value=", ".join(report.filters)))
    if attached:
        facts.append(Fact(label="Files", value=", ".join(attached)))
    sections = [Section(facts=facts)]
    if report.rows:
        shown = report.rows[:SHOWN_ROWS]
        sections.append(Section(table=Table(
            columns=list(report.columns),
            rows=[[cell_text(c, locale) for c in row] for row in shown],
            more=len(report.rows) - len(shown),
        )))  # fmt: skip
    else:
        sections.append(Section(text="Nothing in this period.", tone="muted"))
    if report.totals:
        sections.append(Section(title="Totals", table=Table(
            columns=list(report.columns),
            rows=[[cell_text(c, locale) if c is not None else "" for c in row] for row in report.totals],
        )))  # fmt: skip
    if report.notes:
        sections.append(Section(text="\n".join(report.notes), tone="muted"))
    return Card(title=f"{report.title} · {report.period.label}", sections=sections)
