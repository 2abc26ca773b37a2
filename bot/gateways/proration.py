"""Plan-change proration in exact integer minor units, for gateways that compute it themselves.

The rest of the period is charged at the new price and credited at the old one, each line
rounded half away from zero to a whole minor unit (as Stripe rounds proration lines).
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, timedelta


def _rounded(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half away from zero, in integers only."""
    quotient, remainder = divmod(abs(numerator), denominator)
    if 2 * remainder >= denominator:
        quotient += 1
    return quotient if numerator >= 0 else -quotient


def prorated(
    old_total: int, new_total: int, *, start: datetime, end: datetime, at: datetime
) -> int:
    """What changing from `old_total` to `new_total` per period costs at `at` (negative: a
    credit): the unused part of the period credited at the old total, charged at the new."""
    period = int((end - start).total_seconds())
    left = int((end - max(min(at, end), start)).total_seconds())
    if period <= 0 or left <= 0:
        return 0
    return _rounded(new_total * left, period) - _rounded(old_total * left, period)


def prorated_days(old_total: int, new_total: int, *, first: date, last: date, today: date) -> int:
    """The difference for the days left of a period that runs `first`..`last` (both included),
    today included, rounded once: how gateways that prorate by day (Braintree) charge it."""
    days = (last - first).days + 1
    left = (last - max(min(today, last), first)).days + 1
    if days <= 0 or today > last:
        return 0
    return _rounded((new_total - old_total) * left, days)


def period_before(end: datetime, interval: str) -> datetime:
    """The start of the billing period that ends at `end` (a calendar month or year back)."""
    if interval == "day":
        return end - timedelta(days=1)
    if interval == "week":
        return end - timedelta(weeks=1)
    months = 12 if interval == "year" else 1
    year, month = divmod(end.year * 12 + end.month - 1 - months, 12)
    day = min(end.day, calendar.monthrange(year, month + 1)[1])
    return end.replace(year=year, month=month + 1, day=day)


def period_after(start: datetime, interval: str) -> datetime:
    """The end of the billing period that starts at `start`."""
    if interval == "day":
        return start + timedelta(days=1)
    if interval == "week":
        return start + timedelta(weeks=1)
    months = 12 if interval == "year" else 1
    year, month = divmod(start.year * 12 + start.month - 1 + months, 12)
    day = min(start.day, calendar.monthrange(year, month + 1)[1])
    return start.replace(year=year, month=month + 1, day=day)
