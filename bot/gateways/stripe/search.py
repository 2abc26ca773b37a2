"""Stripe's Search API for what a customer quotes: a name, part of an email, an invoice number.

Values go into the query language quoted, with backslash and quote escaped
(docs.stripe.com/search#search-query-language), so nothing typed can add a clause.
Search lags writes by up to a minute: a customer made seconds ago is not found by name yet.
"""

from __future__ import annotations

from typing import Any

from bot.gateways.base import ErrorCode, GatewayError, LookupQuery
from bot.gateways.readings import MAX_MATCHES
from bot.gateways.stripe.client import StripeAPI
from bot.gateways.stripe.mapping import NAME, expandable_id, parse_customer
from bot.models import GatewayProfile


def quoted(value: str) -> str:
    """A string literal of Stripe's search language: `O'Brien` -> `'O\\'Brien'`."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


async def customers(api: StripeAPI, query: LookupQuery) -> list[GatewayProfile]:
    """Customers whose name (or email) contains the value: the customer alone, no charges;
    at most MAX_MATCHES + 1."""
    field = "name" if query.kind == "name" else "email"
    found = await api.get(
        lambda: api.v1.customers.search_async(
            {"query": f"{field}~{quoted(query.value)}", "limit": MAX_MATCHES + 1}
        ),
        f"customers with {field} like {query.value}",
    )
    return [
        GatewayProfile(gateway=NAME, customer=parse_customer(c["id"], c))
        for c in found.get("data") or []
        if not c.get("deleted")
    ]


async def invoice_customers(api: StripeAPI, number: str) -> list[str]:
    """The customers of the invoices numbered `number` (`JANE-0003`), oldest invoice first."""
    try:
        found = await api.get(
            lambda: api.v1.invoices.search_async(
                {"query": f"number:{quoted(number)}", "limit": MAX_MATCHES}
            ),
            f"invoice number {number}",
        )
    except GatewayError as exc:
        # Search is missing on some accounts: no invoice number is found there.
        if exc.code in (ErrorCode.not_found, ErrorCode.rejected):
            return []
        raise
    invoices: list[dict[str, Any]] = found.get("data") or []
    owners = (expandable_id(i.get("customer")) for i in invoices)
    return list(dict.fromkeys(o for o in owners if o))
