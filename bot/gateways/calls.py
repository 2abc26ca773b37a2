"""How a gateway client calls its provider, where the clients do it alike.

Transient failures are retried with full-jitter exponential backoff (`retried`, `pause`);
a provider that could not be reached, or did not answer in time, is put in our words once
(`Unreachable`), and so is an error answer once its unified code is known (`failure_words`,
`answer_error`, `status_code`); an object the provider does not have reads as None
(`optional`). Each client keeps what is its own: which answers are transient, its
provider's error codes, how it reaches the SDK.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from bot import metrics
from bot.gateways.base import ErrorCode, GatewayError

T = TypeVar("T")


class Unreachable(Exception):
    """The provider could not be reached, or did not answer in time."""

    def __init__(self, timed_out: bool, detail: str) -> None:
        super().__init__(detail)
        self.timed_out = timed_out
        self.detail = detail

    def error(
        self, provider: str, verb: str, what: str, *, gateway: str, raw_code: str | None = None
    ) -> GatewayError:
        """This failure in our words, naming the call (`verb` `what`) it interrupted."""
        if self.timed_out:
            return GatewayError(
                ErrorCode.timeout,
                f"{provider} did not answer in time ({verb} {what})",
                gateway=gateway,
                raw_code=raw_code,
            )
        return GatewayError(
            ErrorCode.unavailable,
            f"{provider} could not be reached ({verb} {what}: {self.detail})",
            gateway=gateway,
            raw_code=raw_code,
        )


def failure_words(
    provider: str, code: ErrorCode, verb: str, what: str, *, status: str = "", reason: str = ""
) -> str:
    """What a failed call (`verb` `what`) says, by its unified code: `status` names the
    provider's failure (`HTTP 503`, an exception), `reason` is its words for a refusal."""
    if code == ErrorCode.not_found:
        return f"{provider} has no {what}"
    if code == ErrorCode.rate_limited:
        return f"{provider} is rate-limiting us ({verb} {what}): try again in a minute"
    if code == ErrorCode.unavailable:
        return f"{provider} failed to {verb} {what} ({status}): try again shortly"
    return f"{provider} refused to {verb} {what}: {reason}"


def status_code(status: int) -> ErrorCode:
    """What an HTTP error status means where the provider's own error code says nothing."""
    if status == 404:
        return ErrorCode.not_found
    if status == 429:
        return ErrorCode.rate_limited
    if status >= 500:
        return ErrorCode.unavailable
    return ErrorCode.rejected


def answer_error(
    provider: str,
    code: ErrorCode,
    status: int,
    verb: str,
    what: str,
    *,
    gateway: str,
    raw_code: str | None,
    raw_message: str | None,
    trace: str = "",
    message: str | None = None,
) -> GatewayError:
    """An error answer (HTTP `status`) to a call as a GatewayError: `message`, or else our
    words for `code`, then `trace` (where the provider's request ID is told); the provider's
    own code is kept, or the status where it gave none."""
    if message is None:
        reason = f"{raw_message or raw_code or status}"
        message = failure_words(provider, code, verb, what, status=f"HTTP {status}", reason=reason)
    return GatewayError(
        code,
        message + trace,
        gateway=gateway,
        raw_code=raw_code or str(status),
        raw_message=raw_message,
    )


class Retryable(Exception):
    """A transient failure: the call is tried again while tries remain, else `error` is raised."""

    def __init__(self, error: GatewayError) -> None:
        super().__init__(str(error))
        self.error = error


def pause(backoff: float, attempt: int) -> float:
    """Seconds to wait before retry number `attempt` (1, 2, ...): a random share of a
    backoff doubling from `backoff`, so a burst of lookups does not retry in lockstep."""
    return random.uniform(0, backoff * 2 ** (attempt - 1))


async def retried(call: Callable[[], Awaitable[T]], *, retries: int, backoff: float) -> T:
    """What `call()` gives, tried up to `retries` more times while it raises Retryable; when
    the tries run out, the last failure's GatewayError. Any other exception ends it at once."""
    attempt = 0
    while True:
        try:
            return await call()
        except Retryable as failed:
            error = failed.error
        if attempt >= retries:
            raise error
        attempt += 1
        await asyncio.sleep(pause(backoff, attempt))


async def optional(read: Awaitable[T]) -> T | None:
    """What a read gives, or None where the provider has no such object."""
    try:
        return await read
    except GatewayError as exc:
        if exc.code == ErrorCode.not_found:
            return None
        raise


async def observed(gateway: str, operation: str, call: Awaitable[T]) -> T:
    """What `call` gives, its latency and any failure's unified code counted for `gateway`
    (`chargedesk_gateway_call_seconds`, `chargedesk_gateway_errors_total`)."""
    started = time.perf_counter()
    error: str | None = None
    try:
        return await call
    except GatewayError as exc:
        error = ErrorCode(exc.code).value
        raise
    except BaseException:  # a bug, or cancelled: counted, never named by its text
        error = "exception"
        raise
    finally:
        metrics.gateway_call(gateway, operation, time.perf_counter() - started, error)


class SdkThreads:
    """A gateway's own bounded threads for its synchronous SDK.

    `asyncio.to_thread` runs every gateway on the event loop's one default pool (a few
    threads on a small machine): a provider holding its calls would fill it and time out
    another gateway's section of the same card. Each gateway gets `size` threads instead.
    """

    def __init__(self, name: str, size: int) -> None:
        self._pool = ThreadPoolExecutor(size, thread_name_prefix=name)

    async def run(self, call: Callable[..., T], *args: Any) -> T:
        """`call(*args)` on one of these threads."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(call, *args))

    def close(self) -> None:
        """No new calls; calls not started are dropped, running ones finish on their own."""
        self._pool.shutdown(wait=False, cancel_futures=True)
