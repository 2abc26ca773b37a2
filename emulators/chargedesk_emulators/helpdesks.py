"""What the helpdesk API emulators share: recorded exchanges, failure and delay switches.

Each helpdesk emulator (helpscout, intercom, front, ...) subclasses `HelpdeskEmulator`,
lists its routes and says how the provider checks a caller and words its errors. Every
request is recorded in `exchanges`; `fail_next` makes the next API requests answer an
error status (429, 500, ...) as the provider words it, either instead of doing the work
or, with `after`, after doing it (the answer lost on the way back); `slow_next` holds
answers back. Requests to a route marked `api=False` (a token endpoint) are never failed
or delayed, and are not subject to the bearer check.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from chargedesk_emulators.serve import command_line, serving

Json = dict[str, Any]
E = TypeVar("E", bound="HelpdeskEmulator")


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


@dataclass
class Exchange:
    """One request the emulator answered, kept for assertions."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    status: int = 0
    response: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass(frozen=True)
class _Failure:
    status: int
    after: bool
    path_prefix: str


Handler = Callable[[Request, bytes], Answer]


class HelpdeskEmulator:
    """A provider's API, in memory; subclasses give `routes`, `authorized` and error shapes."""

    name = "helpdesk"

    def __init__(self) -> None:
        self.base_url = ""
        self.exchanges: list[Exchange] = []
        self._failures: list[_Failure] = []
        self._delays: list[float] = []
        self._lock = threading.RLock()

    # --- test switches ----------------------------------------------------------------

    def fail_next(
        self, count: int = 1, status: int = 500, *, after: bool = False, path_prefix: str = "/"
    ) -> None:
        """Answer the next `count` API requests under `path_prefix` with `status`."""
        with self._lock:
            self._failures.extend([_Failure(status, after, path_prefix)] * count)

    def slow_next(self, count: int, seconds: float) -> None:
        """Hold the answer to the next `count` API requests for `seconds`."""
        with self._lock:
            self._delays.extend([seconds] * count)

    def requests_to(self, method: str, path_prefix: str = "/") -> list[Exchange]:
        with self._lock:
            return [
                e for e in self.exchanges if e.method == method and e.path.startswith(path_prefix)
            ]

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

    def banner(self) -> list[str]:
        """What `python -m` prints: the credentials, and the settings pointing the bot here."""
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
        async def endpoint(request: Request) -> Response:
            body = await request.body()
            exchange = Exchange(
                method=request.method,
                path=request.url.path,
                query=dict(request.query_params),
                headers=dict(request.headers),
                body=body,
            )
            with self._lock:
                self.exchanges.append(exchange)
                delay = self._delays.pop(0) if api and self._delays else 0.0
            if delay:
                await asyncio.sleep(delay)
            with self._lock:
                answer = self._answer(request, body, handler, api=api)
            data = b"" if answer.body is None else json.dumps(answer.body).encode()
            exchange.status, exchange.response = answer.status, data
            return Response(
                data,
                status_code=answer.status,
                headers=answer.headers,
                media_type="application/json" if answer.body is not None else None,
            )

        return endpoint

    def _answer(self, request: Request, body: bytes, handler: Handler, *, api: bool) -> Answer:
        failure = self._take_failure(request) if api else None
        if failure is not None and not failure.after:
            return self.failure(failure.status)
        if api and not self.authorized(request):
            return self.unauthorized()
        try:
            answer = handler(request, body)
        except ApiError as exc:
            answer = exc.answer
        return self.failure(failure.status) if failure is not None else answer

    def _take_failure(self, request: Request) -> _Failure | None:
        for index, failure in enumerate(self._failures):
            if request.url.path.startswith(failure.path_prefix):
                return self._failures.pop(index)
        return None


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


@contextmanager
def running(emulator: E) -> Iterator[E]:
    """Serve `emulator` on 127.0.0.1 with a free port, in a background thread."""
    with serving(emulator.app(), f"{emulator.name} emulator") as url:
        emulator.base_url = url
        yield emulator


def command(emulator: HelpdeskEmulator, argv: list[str] | None) -> None:
    """`python -m chargedesk_emulators.<name>`: serve until interrupted, its `banner()` first."""

    def started(url: str) -> list[str]:
        emulator.base_url = url
        return emulator.banner()

    command_line(emulator.name, emulator.app(), started, argv)
