"""Braintree's customer search for what a customer quotes: a name, part of an email.

Braintree searches fields one by one and ANDs the conditions of one search, so a name is
asked as a few searches: `Doe` as first name, last name or company; `Jane Doe` as first
name `Jane` with last name `Doe`, or as company. Matching is case-insensitive, not
Unicode-normalised. Guests (a payment without a stored customer) are not searched.
"""

from __future__ import annotations

import itertools
from typing import Any

import braintree

from bot.gateways.base import LookupQuery
from bot.gateways.braintree.client import SDK, BraintreeAPI
from bot.gateways.readings import MAX_MATCHES


def _searches(query: LookupQuery) -> list[list[Any]]:
    found = braintree.CustomerSearch
    if query.kind == "partial_email":
        local, _, domain = query.value.partition("@")
        if not domain:
            return [[found.email.starts_with(query.value)]]
        if not local:
            return [[found.email.ends_with(query.value)]]
        return [[found.email.contains(query.value)]]
    first, *rest = query.value.split()
    searches = [[found.company.contains(query.value)]]
    if rest:
        searches.append(
            [found.first_name.contains(first), found.last_name.contains(" ".join(rest))]
        )
    else:
        searches += [[found.first_name.contains(first)], [found.last_name.contains(first)]]
    return searches


async def customers(api: BraintreeAPI, query: LookupQuery) -> list[Any]:
    """Stored customers matching the name or part of an email, at most MAX_MATCHES + 1."""

    def search(sdk: SDK) -> list[Any]:
        found: dict[str, Any] = {}
        for criteria in _searches(query):
            for customer in itertools.islice(sdk.customer.search(*criteria).items, MAX_MATCHES + 1):
                found.setdefault(str(customer.id), customer)
        return list(found.values())[: MAX_MATCHES + 1]

    return await api.read(search, verb="search", what=f"customers matching {query.value}")
