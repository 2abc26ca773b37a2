"""The stretch of time a report covers, as people say it: `2026-11`, `2026-Q4`, `last-month`.

A period is half-open in UTC, [start, end): a document issued at midnight on the first of
the next month belongs to the next month, never to both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from bot.errors import UserError

_MONTH = re.compile(r"(\d{4})-(\d{2})")
_QUARTER = re.compile(r"(\d{4})-[qQ]([1-4])")
_YEAR = re.compile(r"(\d{4})")
_DAYS = re.compile(r"(?:last-)?(\d{1,4})d")
_RANGE = re.compile(r"(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})")
SAYINGS = "2026-11, 2026-Q4, 2026, 2026-11-01..2026-11-15, 30d, this-month, last-month, this-quarter, last-quarter, this-year"


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime  # excluded
    label: str

    def __contains__(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _month(year: int, month: int) -> Period:
    end = date(year + month // 12, month % 12 + 1, 1)
    return Period(_midnight(date(year, month, 1)), _midnight(end), f"{year}-{month:02d}")


def _quarter(year: int, quarter: int) -> Period:
    first = _month(year, 3 * quarter - 2)
    last = _month(year, 3 * quarter)
    return Period(first.start, last.end, f"{year}-Q{quarter}")


def _year(year: int) -> Period:
    return Period(_midnight(date(year, 1, 1)), _midnight(date(year + 1, 1, 1)), str(year))


def parse_period(text: str | None, *, today: date | None = None) -> Period:
    """A period from what an agent typed; this month when nothing was. One-line error otherwise."""
    today = today or datetime.now(UTC).date()
    said = (text or "this-month").strip().lower()
    try:
        return _parse(said, today)
    except ValueError:  # a 13th month, a 30th of February
        pass
    shown = said if len(said) <= 40 else said[:40] + "…"  # an error stays one short line
    raise UserError("invalid_period", f"{shown!r} is not a period: say {SAYINGS}")


def _parse(said: str, today: date) -> Period:
    quarter = (today.month - 1) // 3 + 1
    if said == "this-month":
        return _month(today.year, today.month)
    if said == "last-month":
        return _month(today.year - (today.month == 1), (today.month - 2) % 12 + 1)
    if said == "this-quarter":
        return _quarter(today.year, quarter)
    if said == "last-quarter":
        return _quarter(today.year - (quarter == 1), (quarter - 2) % 4 + 1)
    if said == "this-year":
        return _year(today.year)
    if match := _MONTH.fullmatch(said):
        return _month(int(match.group(1)), int(match.group(2)))
    if match := _QUARTER.fullmatch(said):
        return _quarter(int(match.group(1)), int(match.group(2)))
    if match := _YEAR.fullmatch(said):
        return _year(int(match.group(1)))
    if (match := _DAYS.fullmatch(said)) and int(match.group(1)) > 0:
        end = _midnight(today + timedelta(days=1))
        return Period(end - timedelta(days=int(match.group(1))), end, f"last {match.group(1)} days")
    if match := _RANGE.fullmatch(said):
        first, last = date.fromisoformat(match.group(1)), date.fromisoformat(match.group(2))
        if last >= first:
            return Period(_midnight(first), _midnight(last + timedelta(days=1)), said)
    raise ValueError(said)


def looks_like_period(text: str) -> bool:
    """Is this word a period (so a command can tell it from the other words typed beside it)?"""
    try:
        _parse(text.strip().lower(), date(2000, 1, 1))
    except ValueError:
        return False
    return True
