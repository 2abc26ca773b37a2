"""Stripe's objects page by page, for the billing index (`Gateway.sync_page`).

Stripe lists newest first. A first sync walks back through history with `starting_after`;
it remembers the newest object it saw (`top`). Later syncs walk forward from `top` with
`ending_before`, page by page, so each sync reads only what is new. The cursor holds both.
An object named by the cursor that Stripe no longer has (a deleted customer) starts the
walk back again: nothing is skipped, and rows already in the index are simply refreshed.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from bot.gateways.base import ErrorCode, GatewayError, SyncPage
from bot.gateways.stripe.client import StripeAPI
from bot.gateways.stripe.mapping import (
    parse_charge,
    parse_customer,
    parse_dispute,
    parse_invoice,
    parse_refund,
    parse_subscription,
)

# kind -> (the list call, one item as our model, extra parameters)
_LISTS: dict[str, tuple[str, Callable[[dict[str, Any]], Any], dict[str, Any]]] = {
    "customer": ("customers", lambda raw: parse_customer(raw["id"], raw), {}),
    "charge": ("charges", parse_charge, {}),
    "refund": ("refunds", parse_refund, {}),
    "invoice": ("invoices", parse_invoice, {}),
    "subscription": ("subscriptions", parse_subscription, {"status": "all"}),
    "dispute": ("disputes", parse_dispute, {}),
}


async def page(
    api: StripeAPI, kind: str, cursor: str | None, *, since: datetime | None, limit: int
) -> SyncPage:
    """The next page of `kind`: further back while the first walk lasts, then forward."""
    resource, parse, extra = _LISTS[kind]
    state: dict[str, str | None] = json.loads(cursor) if cursor else {"after": None, "top": None}
    params: dict[str, Any] = {"limit": min(max(limit, 1), 100), **extra}
    if since is not None:
        params["created"] = {"gte": int(since.timestamp())}
    forward = state.get("top") is not None and state.get("after") is None
    if forward:
        params["ending_before"] = state["top"]
    elif state.get("after"):
        params["starting_after"] = state["after"]
    fetch: Callable[[dict[str, Any]], Awaitable[Any]] = getattr(api.v1, resource).list_async
    try:
        listed = await api.get(lambda: fetch(params), f"the {resource} list")
    except GatewayError as exc:
        if exc.code != ErrorCode.not_found:
            raise
        # The object the cursor names is gone: walk back through history again.
        return SyncPage([], None, more=True)
    data: list[dict[str, Any]] = listed.get("data") or []
    more = bool(listed.get("has_more"))
    if forward:
        # `ending_before` gives the page just newer than `top`, newest first.
        state["top"] = data[0]["id"] if data else state["top"]
    else:
        if state.get("top") is None and data:
            state["top"] = data[0]["id"]  # the newest object when the first walk began
        state["after"] = data[-1]["id"] if data and more else None
    return SyncPage([parse(raw) for raw in data], json.dumps(state), more=more)
