"""A report written out as CSV or XLSX, from the same rows and totals the card shows.

Amounts are exact decimals in the currency's own digits (`12.50`, `500` for JPY, `1.250` for
KWD), never floats; the currency stands in its own column. Text can never become a formula:
CSV cells go through `bot.audit.csv_safe`, XLSX cells are typed as text.
"""

from __future__ import annotations

import io
import re
from decimal import Decimal

from bot.audit.csv_safe import SafeWriter
from bot.money import Money, exponent
from bot.reports.model import Cell, Report

FORMATS = ("csv", "xlsx")
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# Characters XML 1.0 (and so XLSX) cannot hold: a pasted control character would break the file.
_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._=-]+")


def file_name(report: Report, fmt: str) -> str:
    """`refunds-2026-11-agent=alex.csv`: the filters typed, made safe for any file system."""
    stem = "-".join((report.kind, report.period.label, *report.filters))
    return f"{_UNSAFE_NAME.sub('_', stem)[:150]}.{fmt}"


def _plain(cell: Cell) -> str | int | Decimal | None:
    if isinstance(cell, Money):
        return cell.decimal
    return cell


def _lines(report: Report) -> list[list[Cell]]:
    lines: list[list[Cell]] = [list(report.columns), *map(list, report.rows)]
    if report.totals:
        lines += [[], *map(list, report.totals)]
    return lines


def to_csv(report: Report) -> bytes:
    out = io.StringIO()
    writer = SafeWriter(out)
    for line in _lines(report):
        writer.writerow(["" if c is None else str(_plain(c)) for c in line])
    # A BOM, so Excel opens it as UTF-8 and names stay names.
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def to_xlsx(report: Report) -> bytes:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    book = Workbook(write_only=True)
    sheet = book.create_sheet(report.kind[:31])

    def cell(value: Cell) -> WriteOnlyCell:
        if isinstance(value, Money):
            digits = exponent(value.currency)
            out = WriteOnlyCell(sheet, value=value.decimal)
            out.number_format = "#,##0" + ("." + "0" * digits if digits else "")
            return out
        if isinstance(value, str):
            out = WriteOnlyCell(sheet, value=_NOT_XML.sub("", value))
            out.data_type = "s"  # text, even when it starts with `=`
            return out
        return WriteOnlyCell(sheet, value=value)

    for line in _lines(report):
        sheet.append([cell(c) for c in line])
    about = book.create_sheet("About")
    for line in (["Report", report.title], ["Period", report.period.label],
                 *(["Filter", f] for f in report.filters), *(["Note", n] for n in report.notes)):  # fmt: skip
        about.append([cell(c) for c in line])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
