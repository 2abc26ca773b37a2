"""What the helpdesk API emulators share: the provider's answers and how it checks a caller.

Each helpdesk emulator (helpscout, intercom, front, ...) subclasses `HelpdeskEmulator`,
lists its routes and says how the provider checks a caller and words its errors. Requests
are recorded and switched as every emulator's are (`chargedesk_emulators.traffic`:
`exchanges`, `fail_next`, `slow_next`); requests to a route marked `api=False` (a token
endpoint) are never failed or delayed, and are not subject to the bearer check.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

# Exchange, command and running are re-exported: the helpdesk emulators import them from here.
from chargedesk_emulators.serve import command as command
from chargedesk_emulators.serve import running as running
from chargedesk_emulators.traffic import EmulatedAPI, Refused
from chargedesk_emulators.traffic import Exchange as Exchange

Json = dict[str, Any]


@dataclass
class Answer:
    status: int
    body: Json | None = None
    headers: dict[str, str] = field(default_factory=dict)


class ApiError(Exception):
    """An error answer: the status and the provider's own error body."""

    def __init__(self, status: int, body: Json, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status}")
        self.answer = Answer(status, body, headers or {})


Handler = Callable[[Request, bytes], Answer]


class HelpdeskEmulator(EmulatedAPI):
    """A provider's API, in memory; subclasses give `routes`, `authorized` and error shapes."""

    name = "helpdesk"

    # --- what each provider says ------------------------------------------------------

    def routes(self) -> list[tuple[str, str, Handler, bool]]:
        """(path, method, handler, api): api routes need `authorized` and can be failed."""
        raise NotImplementedError

    def authorized(self, request: Request) -> bool:
        raise NotImplementedError

    def unauthorized(self) -> Answer:
        raise NotImplementedError

    def failure(self, status: int) -> Answer:
        raise NotImplementedError

    # --- plumbing ---------------------------------------------------------------------

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route(path, self._endpoint(handler, api=api), methods=[method])
                for path, method, handler, api in self.routes()
            ]
        )

    def _endpoint(self, handler: Handler, *, api: bool) -> Callable[[Request], Awaitable[Response]]:
        def work(request: Request, body: bytes) -> Answer:
            if api and not self.authorized(request):
                raise Refused(self.unauthorized())
            try:
                return handler(request, body)
            except ApiError as exc:
                return exc.answer

        async def endpoint(request: Request) -> Response:
            return await self._exchange(request, work, self.failure, _render, switched=api)

        return endpoint


def _render(answer: Answer) -> Response:
    data = b"" if answer.body is None else json.dumps(answer.body).encode()
    return Response(
        data,
        status_code=answer.status,
        headers=answer.headers,
        media_type="application/json" if answer.body is not None else None,
    )


def has_bearer(request: Request, token: str) -> bool:
    """Whether the request's `Authorization` is `Bearer <token>` (compared in constant time)."""
    given = request.headers.get("authorization", "")
    return given.startswith("Bearer ") and hmac.compare_digest(
        given.removeprefix("Bearer ").encode(), token.encode()
    )


def json_body(body: bytes) -> Any:
    """The request's JSON, or None when it is not JSON."""
    try:
        return json.loads(body) if body.strip() else None
    except ValueError:
        return None
