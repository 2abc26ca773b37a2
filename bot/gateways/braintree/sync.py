"""Braintree's objects page by page, for the billing index (`Gateway.sync_page`).

Customers, transactions and subscriptions are searched by `created_at >= t`: Braintree
answers their IDs (newest first) and the objects are fetched by ID in batches of 50, from
the oldest end, until a page is full. A page is ordered by (created_at, id) and starts
strictly after the cursor's, so objects created in the same second are told apart by ID
and a page never repeats or skips one. The cursor is the last object's `created_at|id`.
Refunds are transactions of type `credit`, charges those of type `sale`. Disputes have no
`created_at` search: they are searched by the day they were received, then ordered the
same way. Braintree has no invoices: that kind is always one empty page.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import braintree

from bot.gateways.braintree.client import SDK, BraintreeAPI
from bot.gateways.braintree.mapping import as_utc, field

BATCH = 50  # what one Braintree `advanced_search` fetch returns
_SEP = "|"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_BEFORE_BRAINTREE = datetime(2000, 1, 1, tzinfo=UTC)
Key = tuple[datetime, str]


def _key(obj: Any) -> Key:
    return (as_utc(field(obj, "created_at")) or _EPOCH, str(obj.id))


def _parse_cursor(cursor: str | None) -> Key | None:
    if not cursor:
        return None
    at, _, last = cursor.partition(_SEP)
    return datetime.fromisoformat(at), last


def _cursor_of(key: Key) -> str:
    return f"{key[0].isoformat()}{_SEP}{key[1]}"


def _searched(kind: str) -> tuple[Callable[[SDK], Any], Any, list[Any]]:
    """The SDK's search of `kind`, its search class, and the criteria it always has."""
    if kind == "customer":
        return (lambda sdk: sdk.customer), braintree.CustomerSearch, []
    if kind == "subscription":
        return (lambda sdk: sdk.subscription), braintree.SubscriptionSearch, []
    found = braintree.TransactionSearch
    wanted = "credit" if kind == "refund" else "sale"
    return (lambda sdk: sdk.transaction), found, [found.type == wanted]


def _oldest_after(
    ids: list[str], fetch: Callable[[list[str]], Iterable[Any]], after: Key | None, limit: int
) -> tuple[list[Any], bool]:
    """Up to `limit` objects after `after`, oldest first, fetching from the oldest end of
    `ids` (newest first, as Braintree lists them); whether more may follow."""
    oldest_first = list(reversed(ids))
    found: list[Any] = []
    fetched = 0
    while fetched < len(oldest_first) and len(found) < limit:
        batch = oldest_first[fetched : fetched + BATCH]
        fetched += len(batch)
        found += [o for o in fetch(batch) if after is None or _key(o) > after]
    found.sort(key=_key)
    return found[:limit], len(found) > limit or fetched < len(oldest_first)


def _from(since: datetime | None, after: Key | None) -> datetime:
    """The earliest creation time a page can hold, in UTC to the second (the SDK sends no
    zone and no fraction: rounding down keeps the object of that very second). Without one,
    a time before Braintree: its searches need a criterion."""
    start = after[0] if after is not None else since or _BEFORE_BRAINTREE
    return start.astimezone(UTC).replace(microsecond=0, tzinfo=None)


async def raw_page(
    api: BraintreeAPI, kind: str, cursor: str | None, *, since: datetime | None, limit: int
) -> tuple[list[Any], str | None, bool]:
    """The SDK objects of the next page of `kind`, the cursor after them, and whether more
    follow."""
    after = _parse_cursor(cursor)
    start = _from(since, after)
    if kind == "invoice":
        return [], cursor, False
    if kind == "dispute":
        return await _disputes(api, start, after, cursor, limit)
    service, search, always = _searched(kind)

    def run(sdk: SDK) -> tuple[list[Any], bool]:
        ids = [str(i) for i in service(sdk).search(*always, search.created_at >= start).ids]

        def fetch(batch: list[str]) -> Iterable[Any]:
            return service(sdk).search(*always, search.ids.in_list(batch)).items

        return _oldest_after(ids, fetch, after, limit)

    objects, more = await api.read(run, verb="search", what=f"{kind}s for the billing index")
    return objects, _cursor_of(_key(objects[-1])) if objects else cursor, more


async def _disputes(
    api: BraintreeAPI, start: datetime, after: Key | None, cursor: str | None, limit: int
) -> tuple[list[Any], str | None, bool]:
    """Disputes received since the cursor's day, in (created_at, id) order after it."""

    def run(sdk: SDK) -> list[Any]:
        found = sdk.dispute.search(braintree.DisputeSearch.received_date >= start.date())
        return list(found.disputes.items)

    found = await api.read(run, verb="search", what="disputes for the billing index")
    newer = sorted((d for d in found if after is None or _key(d) > after), key=_key)
    page = newer[:limit]
    return page, _cursor_of(_key(page[-1])) if page else cursor, len(newer) > limit
