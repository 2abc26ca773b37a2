"""Recurly's objects page by page, for the billing index (`Gateway.sync_page`).

The site's lists (`GET /accounts`, `/transactions`, `/invoices`, `/subscriptions`) are read
oldest first (`sort=created_at&order=asc`) from `begin_time`, which Recurly counts
inclusively. The cursor is the creation time of the last object written and the IDs written
with that time: the next page starts at that time again and skips those IDs, so objects
sharing a second (Recurly's timestamps have no finer grain) are neither repeated nor lost,
and a sync after the last page reads only what was created since. Recurly has no disputes.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from bot.gateways.base import SyncPage
from bot.gateways.recurly.client import PAGE_SIZE, RecurlyAPI
from bot.gateways.recurly.mapping import (
    CHARGE_TYPES,
    Json,
    mini_id,
    parse_charge,
    parse_customer,
    parse_invoice,
    parse_refund,
    parse_subscription,
)

PlanReader = Callable[[str | None], Awaitable[Json | None]]
# kind -> (the SDK's list method, its filters)
_LISTS: dict[str, tuple[str, dict[str, str]]] = {
    "customer": ("list_accounts", {}),
    "charge": ("list_transactions", {}),  # payments and authorization holds, kept below
    "refund": ("list_transactions", {"type": "refund"}),
    "invoice": ("list_invoices", {"type": "charge"}),  # credit invoices are refunds' paper
    "subscription": ("list_subscriptions", {}),
}


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def page(
    api: RecurlyAPI,
    kind: str,
    cursor: str | None,
    *,
    since: datetime | None,
    limit: int,
    plan: PlanReader,
) -> SyncPage:
    """The next `limit` objects of `kind` created after `cursor` (or since `since`)."""
    if kind not in _LISTS:
        return SyncPage([], cursor, more=False)  # disputes: Recurly has no dispute API
    method, filters = _LISTS[kind]
    state: dict[str, Any] = json.loads(cursor) if cursor else {"at": None, "seen": []}
    seen = set(state.get("seen") or [])
    size = min(max(limit, 1), PAGE_SIZE)
    params: dict[str, Any] = {"limit": PAGE_SIZE, "sort": "created_at", "order": "asc"}
    params |= filters
    begin = state.get("at") or (_stamp(since) if since is not None else None)
    if begin:
        params["begin_time"] = begin
    wanted = size + len(seen)  # the objects of the cursor's second come again: skipped
    listed = await api.items(
        lambda c: getattr(c, method)(params=params), f"the site's {method[5:]}", wanted
    )
    fresh = [o for o in listed if not (o.get("created_at") == state.get("at") and o["id"] in seen)]
    chosen = fresh[:size]
    more = len(listed) >= wanted
    if not chosen:
        return SyncPage([], cursor, more=False)
    last = str(chosen[-1].get("created_at"))
    same = {str(o["id"]) for o in chosen if o.get("created_at") == last}
    if last == state.get("at"):
        same |= seen
    after = json.dumps({"at": last, "seen": sorted(same)})
    return SyncPage(await _models(api, kind, chosen, plan), after, more=more or len(fresh) > size)


async def _models(api: RecurlyAPI, kind: str, listed: list[Json], plan: PlanReader) -> list[Any]:
    if kind == "customer":
        return [parse_customer(a) for a in listed]
    if kind == "refund":
        return [parse_refund(t) for t in listed]
    if kind == "invoice":
        return [parse_invoice(i) for i in listed]
    if kind == "subscription":
        plans = {p: await plan(p) for p in {mini_id(s.get("plan")) for s in listed} if p}
        return [parse_subscription(s, plans.get(mini_id(s.get("plan")) or "")) for s in listed]
    charges = [t for t in listed if t.get("type") in CHARGE_TYPES]
    # Each payment's invoice says how much of it is left to refund (its refunds are rows of
    # their own): one read of them all by ID, which Recurly takes with no other parameter.
    invoice_ids = sorted({i for t in charges if (i := mini_id(t.get("invoice")))})
    invoices: dict[str, Json] = {}
    if invoice_ids:
        found = await api.items(
            lambda c: c.list_invoices(params={"ids": ",".join(invoice_ids)}),
            "the invoices of the payments",
            len(invoice_ids),
        )
        invoices = {str(i["id"]): i for i in found}
    return [parse_charge(t, (), invoices.get(mini_id(t.get("invoice")) or "")) for t in charges]
