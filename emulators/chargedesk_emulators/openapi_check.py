"""Holding an emulator's recorded exchanges to its provider's published OpenAPI description."""

from __future__ import annotations

import warnings

from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from chargedesk_emulators.traffic import Exchange


def exchange_problems(
    api: OpenAPI, exchange: Exchange, server: str, *, request: bool = False
) -> list[str]:
    """How the answer (and, with `request`, the request) of one exchange breaks `api`,
    the description of the API at `server`; empty when it holds."""
    sent = MockRequest(
        server,
        exchange.method.lower(),
        exchange.path,
        args=exchange.query,
        headers=exchange.headers,
        data=exchange.body or None,
        content_type="application/json",
    )
    answer = MockResponse(
        exchange.response,
        status_code=exchange.status,
        content_type="application/json" if exchange.response else None,
    )
    label = f"{exchange.method} {exchange.path} -> {exchange.status}"
    problems: list[str] = []
    with warnings.catch_warnings():
        # openapi-core cannot check the providers' authentication itself; the emulators do.
        warnings.simplefilter("ignore", UserWarning)
        try:
            api.validate_response(sent, answer)
        except Exception as exc:
            problems.append(f"{label}: {exc.__cause__ or exc}")
        if request:
            try:
                api.validate_request(sent)
            except Exception as exc:
                problems.append(f"request {label}: {exc.__cause__ or exc}")
    return problems
