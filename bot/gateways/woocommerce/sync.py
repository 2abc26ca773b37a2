"""WooCommerce's objects page by page, for the billing index (`Gateway.sync_page`).

- Orders (charges) and WooCommerce Subscriptions are walked in ID order (`orderby=id`,
  `order=asc`, GMT dates). The first walk reads everything (created after `since`, when
  given); each later walk only what was modified since the previous one began
  (`modified_after`). "Began" is the store's own clock, the `Date` of the walk's first
  answer less two seconds (WooCommerce's dates have whole seconds and `modified_after` is
  strict), so a change made while we walked is read again next time. What was read after
  that mark is remembered (the newest twenty or so, with their `date_modified_gmt`) and
  skipped next time if it did not change again: a sync with nothing new writes nothing.
- Refunds come inside their order (`refunds`: ID, reason, total), so an order's page carries
  its refunds; a refund made later modifies the order, which the next walk reads again. A
  guest (no account) is known only from their orders: each order's page carries the guest
  as a customer keyed by their billing e-mail, as lookups know them.
- Customers (accounts) cannot be listed by date or change: they are walked newest ID first
  (`orderby=id`, `order=desc`), down to the highest ID the previous walk saw. A changed
  account reaches the index through lookups and webhooks, not through sync.
- The cursor (JSON) holds the walk's page and its marks; a walk stopped between pages goes on
  from the next page. Pages are numbered, so a new object arriving meanwhile shifts the rest
  by one: read twice (the index keeps one row), never skipped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from bot.gateways.base import GatewayError, SyncPage
from bot.gateways.woocommerce.client import PAGE_SIZE, Reply, WooCommerceAPI
from bot.gateways.woocommerce.mapping import (
    HIDDEN_STATUSES,
    Json,
    billing_email,
    customer_from_orders,
    order_refunds,
    parse_customer,
    parse_order,
    parse_subscription,
    wc_time,
)
from bot.money import MoneyError

log = logging.getLogger(__name__)

# How far before the store's clock a walk's mark is put: the `Date` header has whole seconds
# and may lag the request a little.
_MARGIN = timedelta(seconds=2)
# Without a `Date` header (a proxy dropped it), our clock, allowing for the store's skew.
_NO_DATE_MARGIN = timedelta(minutes=5)
_GMT = "%Y-%m-%dT%H:%M:%S"
# How much of the cursor the objects read after a walk's mark may take (twice, mid-walk),
# remembered to skip them next time if unchanged: the index keeps 500 characters.
_REMEMBERED_CHARS = 200


async def page(
    api: WooCommerceAPI, kind: str, cursor: str | None, *, since: datetime | None, limit: int
) -> SyncPage:
    """The next page of `kind` after `cursor`, as our models."""
    per_page = min(max(limit, 1), PAGE_SIZE)
    if kind == "customer":
        return await _customers(api, cursor, since, per_page)
    if kind == "charge":
        return await _walk(api, "orders", cursor, since, per_page, _order_objects)
    if kind == "subscription":
        try:
            return await _walk(api, "subscriptions", cursor, since, per_page, _subscriptions)
        except GatewayError as exc:
            if exc.raw_code != "rest_no_route":
                raise
            return SyncPage([], cursor, more=False)  # no WooCommerce Subscriptions: none
    # Refunds arrive inside their orders; WooCommerce has no invoices and no disputes.
    return SyncPage([], cursor, more=False)


# --- accounts --------------------------------------------------------------------------------


async def _customers(
    api: WooCommerceAPI, cursor: str | None, since: datetime | None, per_page: int
) -> SyncPage:
    state: dict[str, Any] = json.loads(cursor) if cursor else {}
    top: int | None = state.get("top")  # the highest ID the last finished walk saw
    number = int(state.get("page") or 1)
    highest = max(int(state.get("new_top") or 0), top or 0)
    reply = await api.get(
        "customers",
        {"role": "all", "orderby": "id", "order": "desc", "per_page": per_page, "page": number},
        what="customers",
    )
    batch = [c for c in reply.body if isinstance(c, dict)] if isinstance(reply.body, list) else []
    objects = []
    reached = False  # the walk came down to what the last one saw, or to `since`
    for raw in batch:
        user = int(raw["id"])
        created = wc_time(raw.get("date_created_gmt"))
        if (top is not None and user <= top) or (since and created and created < since):
            reached = True
            break
        highest = max(highest, user)
        objects.append(parse_customer(raw))
    if reached or _last_page(reply, number, len(batch), per_page):
        return SyncPage(objects, json.dumps({"top": highest or top}), more=False)
    state = {"top": top, "new_top": highest, "page": number + 1}
    return SyncPage(objects, json.dumps(state), more=True)


# --- orders and subscriptions ------------------------------------------------------------------


async def _walk(
    api: WooCommerceAPI,
    path: str,
    cursor: str | None,
    since: datetime | None,
    per_page: int,
    objects_of: Callable[[list[Json]], list[Any]],
) -> SyncPage:
    # The cursor, kept short (the index stores 500 characters): `p` the page, `m` the mark
    # this walk reads changes after (epoch seconds; none: everything), `s` what the last walk
    # read after `m` (`id.seconds-after-m`), `n` and `r` the same for the next walk.
    state: dict[str, Any] = json.loads(cursor) if cursor else {}
    number = int(state.get("p") or 1)
    mark: int | None = state.get("m")
    seen = _unpack(state.get("s"))
    params: dict[str, Any] = {
        "orderby": "id", "order": "asc", "dates_are_gmt": "true",
        "per_page": per_page, "page": number,
    }  # fmt: skip
    if since is not None:
        # `after` is strict and WooCommerce's dates have whole seconds.
        params["after"] = _gmt(int(since.timestamp()) - 1)
    if mark is not None:
        params["modified_after"] = _gmt(mark)
    reply = await api.get(path, params, what=path)
    next_mark = int(state["n"]) if "n" in state else _store_clock(reply)
    recent = _unpack(state.get("r"))
    batch = [o for o in reply.body if isinstance(o, dict)] if isinstance(reply.body, list) else []
    fresh = []
    for raw in batch:
        modified = wc_time(raw.get("date_modified_gmt"))
        at = int(modified.timestamp()) if modified else None
        if at is not None and at > next_mark:
            recent[int(raw["id"])] = at - next_mark
        if at is not None and mark is not None and seen.get(int(raw["id"])) == at - mark:
            continue  # read at the end of the last walk and not changed since
        fresh.append(raw)
    objects = objects_of(fresh)
    if _last_page(reply, number, len(batch), per_page):
        return SyncPage(objects, json.dumps({"m": next_mark, "s": _pack(recent)}), more=False)
    going = {"p": number + 1, "m": mark, "s": _pack(seen), "n": next_mark, "r": _pack(recent)}
    return SyncPage(objects, json.dumps(going), more=True)


def _pack(marks: dict[int, int]) -> str:
    """The newest objects read after a mark, as many as fit; one left out is only read again."""
    kept: list[str] = []
    size = 0
    for object_id, after in sorted(marks.items(), reverse=True):
        item = f"{object_id}.{after}"
        size += len(item) + 1
        if size > _REMEMBERED_CHARS:
            break
        kept.append(item)
    return ",".join(kept)


def _unpack(text: str | None) -> dict[int, int]:
    pairs = (item.partition(".") for item in (text or "").split(",") if item)
    return {int(object_id): int(after) for object_id, _, after in pairs}


def _gmt(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime(_GMT)


def _order_objects(orders: list[Json]) -> list[Any]:
    """Each order as a charge with its refunds, and each guest among them as a customer."""
    objects: list[Any] = []
    guests: dict[str, list[Json]] = {}
    for order in orders:
        if order.get("status") in HIDDEN_STATUSES:
            continue
        try:
            objects.append(parse_order(order))
            objects.extend(order_refunds(order))
        except MoneyError as exc:  # a plugin's currency outside ISO 4217: left out
            log.warning("woocommerce order %s not indexed: %s", order.get("id"), exc)
            continue
        email = billing_email(order)
        if not order.get("customer_id") and email:
            guests.setdefault(email, []).append(order)
    objects.extend(customer_from_orders(email, found) for email, found in guests.items())
    return objects


def _subscriptions(subscriptions: list[Json]) -> list[Any]:
    found = []
    for raw in subscriptions:
        try:
            found.append(parse_subscription(raw))
        except (MoneyError, GatewayError) as exc:
            log.warning("woocommerce subscription %s not indexed: %s", raw.get("id"), exc)
    return found


# --- paging ------------------------------------------------------------------------------------


def _last_page(reply: Reply, number: int, count: int, per_page: int) -> bool:
    return number >= reply.total_pages or count < per_page


def _store_clock(reply: Reply) -> int:
    """When the store answered, by its own clock, less a margin (epoch seconds); ours if it
    did not say."""
    try:
        answered = parsedate_to_datetime(reply.headers["date"]) - _MARGIN
    except (KeyError, TypeError, ValueError):
        answered = datetime.now(UTC) - _NO_DATE_MARGIN
    return int(answered.timestamp())
