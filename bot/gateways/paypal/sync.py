"""PayPal's objects page by page, for the billing index (`Gateway.sync_page`).

PayPal lists no customers and no subscriptions. What it can give:

- Charges, refunds and the payers behind them come from Transaction Search
  (`GET /v1/reporting/transactions`), which covers three years in windows of at most 31
  days and takes up to 3 hours to show a new transaction. Each kind walks the windows from
  `since` (three years back by default) up to 3 hours ago, a page at a time; the cursor is
  the window and its page (`{"from", "to", "page"}`), and the next window starts one second
  after the last one ended, so a row is read once. A later sync goes on from there.
  Customers are the payers the rows name (payer ID, e-mail, name); a charge's row says
  whether it was refunded in full, and its partial refunds are mirrored as refunds.
- Invoices come from Invoicing v2's search by creation date, the range's end fixed when a
  walk begins (pages stay put while new invoices arrive); they are indexed under the
  recipient's e-mail, as PayPal addresses them.
- Disputes come from the disputes list (newest first, `next_page_token`) by
  `update_time_after`: the first walk from `since` but at most 180 days back (how far
  PayPal's list reaches), later walks from the newest change seen, so decided disputes are
  refreshed too. Each is read whole (the list names no payment).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from bot.gateways.base import SyncPage
from bot.gateways.paypal import disputes
from bot.gateways.paypal.client import PayPalAPI
from bot.gateways.paypal.mapping import (
    NAME,
    UNKNOWN_PAYER,
    Json,
    parse_invoice,
    parse_refund,
    parse_row_charge,
    paypal_time,
    recipient_email,
    refund_json_from_row,
    row_info,
    row_payer,
)
from bot.models import ChargeStatus, Customer

SEARCH_WINDOW = timedelta(days=31) - timedelta(seconds=1)
SEARCH_HISTORY = timedelta(days=3 * 365)  # Transaction Search covers three years
SEARCH_LAG = timedelta(hours=3)  # new transactions reach the search within 3 hours
DISPUTE_HISTORY = timedelta(days=180)  # the disputes list's `start_time` limit
MAX_SEARCH_PAGE = 500
MAX_INVOICE_PAGE = 100
_SECOND = timedelta(seconds=1)


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def default_since(now: datetime) -> datetime:
    """Where a first sync starts without `since`: as far back as Transaction Search goes
    (three years; from the start of the day after, as older dates are refused)."""
    day = now - SEARCH_HISTORY + timedelta(days=1)
    return day.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


async def search_page(
    api: PayPalAPI, start: datetime, end: datetime, *, page: int, page_size: int,
    transaction_id: str | None = None,
) -> Json:  # fmt: skip
    """One page of Transaction Search rows from start to end (at most 31 days)."""
    options: Json = {
        "start_date": stamp(start),
        "end_date": stamp(end),
        "fields": "all",
        # Authorizations do not move the balance: without N they are left out.
        "balance_affecting_records_only": "N",
        "page_size": page_size,
        "page": page,
    }
    if transaction_id:
        options["transaction_id"] = transaction_id
    reply = await api.sdk(
        api.sdk_client.transaction_search.search_transactions,
        options,
        verb="search",
        what=f"transactions from {start:%Y-%m-%d} to {end:%Y-%m-%d}",
    )
    return dict(reply.body or {})


# --- what one search row is, per kind (pure) ----------------------------------------------


def _code(row: Json) -> str:
    return str(row_info(row).get("transaction_event_code") or "")


def row_objects(kind: str, rows: list[Json]) -> list[Any]:
    """The customers, charges or refunds that search rows are (each once)."""
    found: dict[str, Any] = {}
    for row in rows:
        info, code = row_info(row), _code(row)
        payer = row_payer(row)
        if kind == "customer" and payer.id:
            found.setdefault(payer.id, Customer(gateway=NAME, id=payer.id, email=payer.email,
                                                name=payer.name))  # fmt: skip
        elif kind == "charge" and info.get("transaction_id"):
            value = str((info.get("transaction_amount") or {}).get("value", ""))
            if code.startswith("T00") and not value.startswith("-"):
                found[info["transaction_id"]] = parse_row_charge(row, payer.id)
            elif code in ("T1300", "T1301"):  # an authorization: nothing taken yet
                charge = parse_row_charge(row, payer.id)
                held = info.get("transaction_status") in ("P", "S")
                found[info["transaction_id"]] = charge.model_copy(update={
                    "status": ChargeStatus.authorized if held else ChargeStatus.voided,
                    "amount_captured": 0, "amount_refunded": 0,
                })  # fmt: skip
        elif kind == "refund" and code.startswith("T11") and info.get("paypal_reference_id"):
            refund = parse_refund(refund_json_from_row(row), str(info["paypal_reference_id"]))
            found[refund.id] = refund
    return list(found.values())


# --- the walks --------------------------------------------------------------------------


async def transactions_page(
    api: PayPalAPI, kind: str, cursor: str | None, *, since: datetime | None, limit: int,
    now: datetime,
) -> SyncPage:  # fmt: skip
    """The next page of Transaction Search rows as `kind`, window after window."""
    oldest = default_since(now)
    state = json.loads(cursor) if cursor else {"from": stamp(max(since or oldest, oldest))}
    start = max(_time(state["from"]), oldest)
    settled = (now - SEARCH_LAG).replace(microsecond=0)  # what the search shows for good
    if start > settled:
        return SyncPage([], cursor, more=False)  # nothing settled since the last sync
    end = _time(state["to"]) if state.get("to") else min(start + SEARCH_WINDOW, settled)
    page = int(state.get("page") or 1)
    body = await search_page(
        api, start, end, page=page, page_size=min(max(limit, 1), MAX_SEARCH_PAGE)
    )
    objects = row_objects(kind, list(body.get("transaction_details") or []))
    if page < int(body.get("total_pages") or 1):
        after = {"from": stamp(start), "to": stamp(end), "page": page + 1}
        return SyncPage(objects, json.dumps(after), more=True)
    after = {"from": stamp(end + _SECOND)}
    return SyncPage(objects, json.dumps(after), more=end < settled)


async def invoices_page(
    api: PayPalAPI, cursor: str | None, *, since: datetime | None, limit: int, now: datetime
) -> SyncPage:
    """The next page of invoices created in the walk's range (newest first within it)."""
    state = json.loads(cursor) if cursor else {"from": stamp(since or default_since(now))}
    start = _time(state["from"])
    end = _time(state["to"]) if state.get("to") else now.replace(microsecond=0)
    if start > end:
        return SyncPage([], cursor, more=False)
    page = int(state.get("page") or 1)
    size = min(max(limit, 1), MAX_INVOICE_PAGE)
    reply = await api.rest(
        "POST", "/v2/invoicing/search-invoices",
        params={"page": str(page), "page_size": str(size), "total_required": "true"},
        json_body={"creation_date_range": {"start": stamp(start), "end": stamp(end)}},
        verb="search", what="invoices for the billing index",
    )  # fmt: skip
    body = reply.body or {}
    objects = [
        parse_invoice(i, (recipient_email(i) or UNKNOWN_PAYER).lower())
        for i in body.get("items") or []
    ]
    if page < int(body.get("total_pages") or 1):
        after = {"from": stamp(start), "to": stamp(end), "page": page + 1}
        return SyncPage(objects, json.dumps(after), more=True)
    return SyncPage(objects, json.dumps({"from": stamp(end + _SECOND)}), more=False)


async def disputes_page(
    api: PayPalAPI, cursor: str | None, *, since: datetime | None, limit: int, now: datetime
) -> SyncPage:
    """The next page of the disputes list, each dispute read whole."""
    state: dict[str, Any] = json.loads(cursor) if cursor else {}
    query: dict[str, str] = {"page_size": str(min(max(limit, 1), disputes.PAGE_SIZE))}
    if state.get("token"):
        query |= dict(parse_qsl(urlsplit(str(state["token"])).query))
    else:
        # `start_time` is deprecated at PayPal; the first walk too asks by last change.
        oldest = (now - DISPUTE_HISTORY + timedelta(hours=1)).replace(microsecond=0)
        query["update_time_after"] = str(
            state.get("updated_after") or stamp(max(since or oldest, oldest))
        )
    body = (
        await api.rest("GET", disputes.PATH, params=query, verb="list",
                       what="disputes for the billing index")
    ).body or {}  # fmt: skip
    listed = list(body.get("items") or [])
    found = await asyncio.gather(*(disputes.get(api, str(d["dispute_id"])) for d in listed))
    times = [t for d in listed if (t := paypal_time(d.get("update_time") or d.get("create_time")))]
    newest = max([*times, *([_time(state["newest"])] if state.get("newest") else [])],
                 default=None)  # fmt: skip
    following = next((lk for lk in body.get("links") or [] if lk.get("rel") == "next"), None)
    if following is not None:
        after = {"token": str(following["href"]), "newest": stamp(newest) if newest else None,
                 "updated_after": state.get("updated_after")}  # fmt: skip
        return SyncPage(list(found), json.dumps(after), more=True)
    # The walk is over: the next one asks what changed after the newest change seen.
    since_change = stamp(newest + _SECOND) if newest else state.get("updated_after")
    return SyncPage(list(found), json.dumps({"updated_after": since_change}), more=False)


async def page(
    api: PayPalAPI, kind: str, cursor: str | None, *, since: datetime | None, limit: int,
    now: datetime,
) -> SyncPage:  # fmt: skip
    """The next page of `kind` (subscriptions: always one empty page, PayPal lists none)."""
    if kind in ("customer", "charge", "refund"):
        return await transactions_page(api, kind, cursor, since=since, limit=limit, now=now)
    if kind == "invoice":
        return await invoices_page(api, cursor, since=since, limit=limit, now=now)
    if kind == "dispute":
        return await disputes_page(api, cursor, since=since, limit=limit, now=now)
    return SyncPage([], cursor, more=False)
