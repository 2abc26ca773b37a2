"""What every HTTP API emulator keeps of its traffic, and the switches that disturb it.

An emulator built on `EmulatedAPI` answers each request through `_exchange`, which records
it as an `Exchange` (with the answer given, for assertions and schema checks) and applies
the test switches: `fail_next` answers the next matching requests with an error status, in
the provider's words, either instead of doing the work or, with `after`, after doing it (the
answer lost on the way back); `slow_next` holds the next matching requests back, before the
work or, with `after`, once it is done (the work took effect, its answer came late). A
request takes the switches that match it as it arrives, in the order of `exchanges`. Where
an emulator refuses a request without doing its work, it can say so (`Refused`): that
answer stands, since no work was done whose answer could be lost.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

A = TypeVar("A")


@dataclass
class Exchange:
    """One request the emulator answered, kept for assertions and schema checks."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    status: int = 0
    response: bytes = b""
    raw_query: str = ""  # the query string as sent, repeated names and all

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class Refused(Exception):
    """Raised by an emulator's work with the answer refusing the request: the answer
    stands, even where a failure is due after the work."""

    def __init__(self, answer: Any) -> None:
        super().__init__("refused")
        self.answer = answer


@dataclass(frozen=True)
class Switch:
    """A failure (`status`) or a hold (`seconds`) waiting for the next request it matches."""

    method: str | None  # None: any method
    path: str  # the start of the request's path or, with `anywhere`, any part of it
    anywhere: bool
    after: bool
    status: int = 0
    seconds: float = 0.0

    def matches(self, request: Request) -> bool:
        return self.method in (None, request.method) and _at(
            request.url.path, self.path, anywhere=self.anywhere
        )


class EmulatedAPI:
    """A provider's API in memory: its lock, its recorded exchanges and its pending switches.

    A subclass names the provider (`name`, for messages), routes requests through
    `_exchange` in its `app()` and says what `banner()` prints for `python -m`.
    """

    name = "API"
    path_root = "/"  # what the switches match when given no path
    paths_anywhere = False  # a path given to the switches or `requests_to` may stand anywhere

    def __init__(self) -> None:
        self.base_url = ""
        self.exchanges: list[Exchange] = []
        self._failures: list[Switch] = []
        self._delays: list[Switch] = []
        self._lock = threading.RLock()

    # --- test switches -------------------------------------------------------------------

    def fail_next(
        self,
        count: int = 1,
        status: int = 500,
        *,
        after: bool = False,
        method: str | None = None,
        path_prefix: str | None = None,
    ) -> None:
        """Answer the next `count` matching requests with `status` (429, 500, 503...).

        With `after`, each is carried out first and only its answer is lost.
        """
        self._fail(count, status, after=after, method=method, path=path_prefix)

    def slow_next(
        self,
        count: int,
        seconds: float,
        *,
        after: bool = False,
        method: str | None = None,
        path_prefix: str | None = None,
    ) -> None:
        """Hold the next `count` matching requests for `seconds`.

        With `after`, each is carried out first and only its answer waits, as when the
        provider did the work but the reply came too late for the client.
        """
        self._hold(count, seconds, after=after, method=method, path=path_prefix)

    def requests_to(self, method: str, path_prefix: str = "/") -> list[Exchange]:
        """The recorded requests with `method` to a path under `path_prefix`."""
        with self._lock:
            return [
                e
                for e in self.exchanges
                if e.method == method and _at(e.path, path_prefix, anywhere=self.paths_anywhere)
            ]

    def _fail(
        self, count: int, status: int, *, after: bool, method: str | None, path: str | None
    ) -> None:
        switch = Switch(method, self._path(path), self.paths_anywhere, after, status=status)
        with self._lock:
            self._failures.extend([switch] * count)

    def _hold(
        self, count: int, seconds: float, *, after: bool, method: str | None, path: str | None
    ) -> None:
        switch = Switch(method, self._path(path), self.paths_anywhere, after, seconds=seconds)
        with self._lock:
            self._delays.extend([switch] * count)

    def _path(self, given: str | None) -> str:
        return self.path_root if given is None else given

    # --- what each provider says ---------------------------------------------------------

    def app(self) -> Starlette:
        """The provider's routes, each answering through `_exchange`."""
        raise NotImplementedError

    def banner(self) -> list[str]:
        """What `python -m` prints: the credentials, and the settings pointing the bot here."""
        raise NotImplementedError

    # --- one request -----------------------------------------------------------------------

    async def _exchange(
        self,
        request: Request,
        work: Callable[[Request, bytes], A],
        fail: Callable[[int], A],
        render: Callable[[A], Response],
        *,
        switched: bool = True,
    ) -> Response:
        """Record `request` and answer it with `render(work(request, body))`, `work` run
        under the lock, or with `fail(status)` instead or after as a pending failure says
        (unless `work` raised Refused), held back as a pending delay says. With `switched`
        false (a token endpoint, say) the request takes no switch."""
        body = await request.body()
        exchange = Exchange(
            method=request.method,
            path=request.url.path,
            query=dict(request.query_params),
            headers=dict(request.headers),
            body=body,
            raw_query=request.url.query,
        )
        with self._lock:
            self.exchanges.append(exchange)
            delay = _take(self._delays, request) if switched else None
            failure = _take(self._failures, request) if switched else None
        if delay is not None and not delay.after:
            await asyncio.sleep(delay.seconds)
        with self._lock:
            if failure is not None and not failure.after:
                answer = fail(failure.status)
            else:
                try:
                    answer = work(request, body)
                except Refused as refused:
                    answer = refused.answer
                else:
                    if failure is not None:
                        answer = fail(failure.status)
        if delay is not None and delay.after:
            await asyncio.sleep(delay.seconds)
        response = render(answer)
        exchange.status, exchange.response = response.status_code, bytes(response.body)
        return response


def _at(path: str, given: str, *, anywhere: bool) -> bool:
    return given in path if anywhere else path.startswith(given)


def _take(pending: list[Switch], request: Request) -> Switch | None:
    """The first pending switch that matches this request, taken off the list."""
    for index, switch in enumerate(pending):
        if switch.matches(request):
            return pending.pop(index)
    return None
