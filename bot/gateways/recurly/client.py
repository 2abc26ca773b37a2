"""Recurly transport: the official `recurly` client, exact JSON, retries, errors.

- The client is synchronous, so every call runs in a worker thread. It is not
  thread-safe, and after a network failure its connection may be stuck half-way
  through a request: each call borrows a client from a pool, and one that failed
  on the network is dropped, never reused.
- The client has no base-URL option (only `region="us"|"eu"`) and parses JSON into
  floats. Both are answered by one thing: every client gets our own HTTP
  connection in place of the one it made (`recurly.base_client.BaseClient` keeps it
  in its private `__conn`). It goes to Recurly's US or EU host, or to
  `recurly.base_url` (a local emulator, over plain HTTP), and it keeps each raw
  answer, which we parse with `Decimal` for every number. The SDK still builds the
  requests (auth, version header, paths, paging) and raises its error classes.
- Reads are retried on 429, 5xx and network failures; writes never are: Recurly has
  no idempotency key, so the caller reads back what happened instead.
Recurly's answers become our GatewayError family here, and nowhere else.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import recurly
from recurly.base_client import API_HOSTS
from recurly.pager import Pager

from bot.gateways.base import ErrorCode, GatewayError
from bot.gateways.calls import (
    Retryable,
    SdkThreads,
    Unreachable,
    answer_error,
    optional,
    retried,
    status_code,
)
from bot.gateways.recurly.mapping import NAME, Json
from bot.settings import RecurlySettings

API_VERSION = "v2021-02-25"
PROVIDER = "Recurly"
CONCURRENT_CALLS = 8
# A kept-alive connection idle longer may have been closed by the other side; a write sent on
# it would fail with its outcome unknown. Older idle connections are closed, not reused.
IDLE_SECONDS = 20.0
PAGE_SIZE = 200  # Recurly's largest page
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# Where recurly.base_client.BaseClient keeps its http.client connection (name-mangled `__conn`).
_CONNECTION = "_BaseClient__conn"
CREDENTIALS_HINT = (
    "check recurly.api_key (a private API key of the site, Integrations → API Credentials) "
    "and recurly.region (us or eu, where the site lives)"
)

_TYPES: dict[str, ErrorCode] = {
    "not_found": ErrorCode.not_found,
    "rate_limited": ErrorCode.rate_limited,
    "unauthorized": ErrorCode.rejected,
    "invalid_api_key": ErrorCode.rejected,
    "invalid_permissions": ErrorCode.rejected,
    "transaction": ErrorCode.card_declined,
    "immutable_subscription": ErrorCode.invalid_state,
    "missing_feature": ErrorCode.not_configured,
    "simultaneous_request": ErrorCode.unavailable,
    "internal_server_error": ErrorCode.unavailable,
    "service_not_available": ErrorCode.unavailable,
    "tax_service_error": ErrorCode.unavailable,
}


def parse_json(raw: bytes) -> Any:
    """Recurly's JSON with every number exact: decimals as Decimal, never float."""
    return json.loads(raw, parse_float=Decimal)


@dataclass(frozen=True)
class Reply:
    """One answer from Recurly (or, for a list, its pages' items gathered)."""

    status: int
    body: Any
    request_id: str | None

    def error(self) -> tuple[str | None, str | None]:
        """Recurly's error type (or a declined payment's decline code) and its words."""
        error = self.body.get("error") if isinstance(self.body, dict) else None
        if not isinstance(error, dict):
            return None, None
        declined = self.declined()
        code = declined.get("decline_code") or declined.get("code")
        return code or error.get("type"), error.get("message")

    def declined(self) -> dict[str, Any]:
        """A declined payment's `transaction_error` (empty for other errors)."""
        error = self.body.get("error") if isinstance(self.body, dict) else None
        found = error.get("transaction_error") if isinstance(error, dict) else None
        return found if isinstance(found, dict) else {}

    def error_type(self) -> str | None:
        error = self.body.get("error") if isinstance(self.body, dict) else None
        return error.get("type") if isinstance(error, dict) else None


class _Refused(Exception):
    """The SDK refused the call before sending it (an empty ID, an option it does not take)."""


class _Answer:
    """An HTTP answer read whole: what the SDK reads, its raw body kept for us."""

    def __init__(self, response: http.client.HTTPResponse) -> None:
        self.status = response.status
        self.headers = response.headers
        self.body = response.read()

    def read(self) -> bytes:
        return self.body


class _Keeping:
    """Mixin for http.client connections: the last answer stays readable as `answer`."""

    answer: _Answer | None = None

    def getresponse(self) -> _Answer:  # type: ignore[override]
        self.answer = _Answer(super().getresponse())  # type: ignore[misc]
        return self.answer


class _HTTPS(_Keeping, http.client.HTTPSConnection):
    pass


class _HTTP(_Keeping, http.client.HTTPConnection):
    pass


@dataclass
class _Lease:
    client: recurly.Client
    connection: _HTTP | _HTTPS
    idle_since: float = 0.0

    def reply(self) -> Reply:
        answer = self.connection.answer
        if answer is None:
            raise _Refused("the recurly client sent nothing")
        try:
            body = parse_json(answer.body) if answer.body.strip() else None
        except ValueError:
            body = None  # not Recurly's JSON (a proxy's error page): the status says enough
        return Reply(answer.status, body, answer.headers.get("X-Request-Id"))


def _error(reply: Reply, verb: str, what: str) -> GatewayError:
    raw_code, raw_message = reply.error()
    code = _TYPES.get(reply.error_type() or "") or status_code(reply.status)
    declined = reply.declined()
    if declined.get("decline_code") == "requires_3d_secure" or str(
        declined.get("category") or ""
    ).startswith("three_d_secure"):
        code = ErrorCode.authentication_required  # the cardholder must be there: not off session
    refused_key = reply.status in (401, 403) and code == ErrorCode.rejected
    return answer_error(
        PROVIDER,
        code,
        reply.status,
        verb,
        what,
        gateway=NAME,
        raw_code=raw_code,
        raw_message=raw_message,
        trace=f" (Recurly request ID {reply.request_id})" if reply.request_id else "",
        message=f"Recurly refused our API key: {CREDENTIALS_HINT}" if refused_key else None,
    )


def _timed_out(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(4):
        if isinstance(seen, TimeoutError):
            return True
        if seen is None:
            return False
        inner = seen.args[0] if seen.args and isinstance(seen.args[0], BaseException) else None
        seen = inner or seen.__cause__ or seen.__context__
    return False


def endpoint(settings: RecurlySettings) -> tuple[str, str, int]:
    """(scheme, host, port) of the API: `base_url` if set, else the region's Recurly host."""
    if settings.base_url is None:
        return "https", API_HOSTS[settings.region], 443
    url = urlsplit(str(settings.base_url))
    scheme = url.scheme or "https"
    return scheme, url.hostname or "", url.port or (443 if scheme == "https" else 80)


class RecurlyAPI:
    """One Recurly site: a pool of SDK clients on our connections, and every call's retries.

    `backoff` is the first retry's mean pause in seconds (doubling after).
    """

    def __init__(self, settings: RecurlySettings, *, backoff: float = 0.5) -> None:
        if settings.api_key is None:
            raise GatewayError(ErrorCode.rejected, "Recurly needs recurly.api_key", gateway=NAME)
        self.settings = settings
        self.backoff = backoff
        self._key = settings.api_key.get_secret_value()
        self._scheme, self._host, self._port = endpoint(settings)
        self._idle: list[_Lease] = []
        self._pool_lock = threading.Lock()
        self._limit = asyncio.Semaphore(CONCURRENT_CALLS)
        self._threads = SdkThreads("recurly", CONCURRENT_CALLS)
        self._give(self._new_lease())  # fails here, at start, if the SDK changed under us

    # --- the pool ------------------------------------------------------------------------

    def _new_lease(self) -> _Lease:
        client = recurly.Client(
            self._key, timeout=self.settings.timeout, region=self.settings.region
        )
        if not isinstance(getattr(client, _CONNECTION, None), http.client.HTTPConnection):
            raise RuntimeError(
                f"recurly {recurly.__version__} no longer keeps its connection in "
                f"{_CONNECTION}: check bot/gateways/recurly/client.py against it"
            )
        kind = _HTTPS if self._scheme == "https" else _HTTP
        connection = kind(self._host, self._port, timeout=self.settings.timeout)
        setattr(client, _CONNECTION, connection)
        return _Lease(client, connection)

    def _take(self) -> _Lease:
        """An idle client whose connection is fresh enough, or a new one."""
        fresh: _Lease | None = None
        stale: list[_Lease] = []
        with self._pool_lock:
            while self._idle and fresh is None:
                lease = self._idle.pop()
                if time.monotonic() - lease.idle_since <= IDLE_SECONDS:
                    fresh = lease
                else:
                    stale.append(lease)
        for old in stale:
            old.connection.close()
        return fresh if fresh is not None else self._new_lease()

    def _give(self, lease: _Lease) -> None:
        lease.idle_since = time.monotonic()
        with self._pool_lock:
            self._idle.append(lease)

    async def close(self) -> None:
        self._threads.close()
        self._drop_idle()

    def _drop_idle(self) -> None:
        with self._pool_lock:
            idle, self._idle = self._idle, []
        for lease in idle:
            lease.connection.close()

    # --- one exchange, in a worker thread ------------------------------------------------

    def _send(self, call: Callable[[recurly.Client], Any], cap: int | None) -> Reply:
        """Run one SDK call (or, with `cap`, page through a list) on a borrowed client."""
        lease = self._take()
        lease.connection.answer = None
        items: list[Any] = []
        try:
            if cap is None:
                try:
                    call(lease.client)
                except recurly.ApiError as exc:
                    if lease.connection.answer is None:
                        raise _Refused(str(exc)) from exc
                reply = lease.reply()
            else:
                reply = self._pages(lease, call(lease.client), cap, items)
        except (recurly.NetworkError, http.client.HTTPException, OSError) as exc:
            lease.connection.close()  # possibly stuck mid-request: never reused
            # The other idle connections were most likely closed by the same server or proxy
            # while they waited: a retry on one of them would fail too, so it gets a new one.
            self._drop_idle()
            raise Unreachable(_timed_out(exc), type(exc).__name__) from exc
        except _Refused:
            self._give(lease)  # nothing was sent: the connection is as it was
            raise
        except BaseException:
            lease.connection.close()
            raise
        self._give(lease)
        return reply

    @staticmethod
    def _pages(lease: _Lease, pager: Pager, cap: int, items: list[Any]) -> Reply:
        pages = pager.pages()
        request_id = None
        while len(items) < cap:
            lease.connection.answer = None
            try:
                next(pages)
            except StopIteration:
                break
            except recurly.ApiError as exc:
                if lease.connection.answer is None:
                    raise _Refused(str(exc)) from exc
                return lease.reply()
            page = lease.reply()
            request_id = page.request_id
            body = page.body if isinstance(page.body, dict) else {}
            items.extend(body.get("data") or [])
            if not body.get("has_more"):
                break
        return Reply(200, items[:cap], request_id)

    # --- calls ---------------------------------------------------------------------------

    async def _call(
        self,
        call: Callable[[recurly.Client], Any],
        *,
        verb: str,
        what: str,
        retry: bool,
        cap: int | None = None,
    ) -> Reply:
        """One call, or list (`cap`); with `retry`, tried again on transient failures."""

        async def attempt() -> Reply:
            try:
                async with self._limit:
                    reply = await self._threads.run(self._send, call, cap)
            except Unreachable as exc:
                raise Retryable(exc.error(PROVIDER, verb, what, gateway=NAME)) from None
            except _Refused as exc:
                raise GatewayError(
                    ErrorCode.rejected,
                    f"Recurly's client refused to {verb} {what}: {exc}",
                    gateway=NAME,
                ) from None
            if reply.status < 400:
                return reply
            error = _error(reply, verb, what)
            if reply.status in RETRY_STATUSES or reply.error_type() == "simultaneous_request":
                raise Retryable(error)
            raise error

        retries = self.settings.max_retries if retry else 0
        return await retried(attempt, retries=retries, backoff=self.backoff)

    async def read(self, call: Callable[[recurly.Client], Any], what: str) -> Json:
        """One object, read (retried on transient failures)."""
        reply = await self._call(call, verb="read", what=what, retry=True)
        return reply.body if isinstance(reply.body, dict) else {}

    async def find(self, call: Callable[[recurly.Client], Any], what: str) -> Json | None:
        """One object, or None where Recurly has no such object."""
        return await optional(self.read(call, what))

    async def items(
        self, call: Callable[[recurly.Client], Pager], what: str, cap: int
    ) -> list[Json]:
        """Up to `cap` items of a list, following Recurly's `next` pages."""
        reply = await self._call(call, verb="list", what=what, retry=True, cap=cap)
        return [item for item in reply.body if isinstance(item, dict)]

    async def write(self, call: Callable[[recurly.Client], Any], *, verb: str, what: str) -> Json:
        """A change, sent once: no idempotency key exists, so an unknown outcome is re-read."""
        reply = await self._call(call, verb=verb, what=what, retry=False)
        return reply.body if isinstance(reply.body, dict) else {}


def listing(**params: Any) -> Mapping[str, Any]:
    """List options: Recurly's largest page, plus filters."""
    return {"params": {"limit": PAGE_SIZE, **params}}
