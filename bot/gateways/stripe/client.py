"""Stripe transport: the official SDK (async, over httpx), auth, version, retries, errors.

Every request names `STRIPE_API_VERSION`; the SDK retries 5xx and network errors,
and `StripeAPI.attempt` retries a 429 (Stripe ran nothing, so the same request with
the same idempotency key is safe to send again). Stripe's exceptions become our
GatewayError family here, and nowhere else.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

import httpx
import stripe

from bot.gateways.base import ErrorCode, GatewayError
from bot.gateways.stripe.mapping import NAME
from bot.settings import StripeSettings

T = TypeVar("T")

# The API version every request names (Stripe-Version), so the account's default version in
# the dashboard cannot change what the gateway reads. It is the one the locked stripe release
# speaks (`stripe.api_version`); a test fails when an SDK upgrade changes it.
STRIPE_API_VERSION = "2026-10-28.endive"

_ERROR_CODES: dict[str, ErrorCode] = {
    "resource_missing": ErrorCode.not_found,
    "charge_already_refunded": ErrorCode.already_refunded,
    "amount_too_large": ErrorCode.amount_too_large,
    "charge_disputed": ErrorCode.charge_disputed,
    "charge_already_captured": ErrorCode.invalid_state,
    "charge_expired_for_capture": ErrorCode.invalid_state,
    "payment_intent_unexpected_state": ErrorCode.invalid_state,
    "invoice_not_editable": ErrorCode.invalid_state,
    "rate_limit": ErrorCode.rate_limited,
    "lock_timeout": ErrorCode.unavailable,
    "idempotency_key_in_use": ErrorCode.unavailable,
}


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header's value, whatever the case of its name."""
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), None)


def portal_unconfigured(message: str | None) -> bool:
    """Stripe's refusal of a portal session before the portal settings are saved.

    "You can't create a portal session in test mode until you save your customer
    portal settings in test mode at https://dashboard.stripe.com/test/settings/billing/portal."
    It comes as a bare invalid_request_error, so only its words tell it apart.
    """
    text = (message or "").lower()
    return "portal settings" in text or "settings/billing/portal" in text


class StripeAPI:
    """One Stripe account through the SDK: every call's retries, paging and errors.

    `retry_delay` is the first wait after a 429, doubling per retry; `fanout` is how
    many requests one profile's per-charge details send at once.
    """

    retry_delay = 0.5
    fanout = 8

    def __init__(self, settings: StripeSettings) -> None:
        if settings.api_key is None:
            raise ValueError("StripeGateway needs stripe.api_key")
        self.settings = settings
        self._api_key = settings.api_key.get_secret_value()
        self._http = stripe.HTTPXClient(timeout=settings.timeout)
        base: dict[str, str] | None = (
            # Files (dispute evidence) go to files.stripe.com; an emulator serves both.
            {"api": str(settings.base_url).rstrip("/"), "files": str(settings.base_url).rstrip("/")}
            if settings.base_url
            else None
        )
        self._client = stripe.StripeClient(
            self._api_key,
            base_addresses=base,  # type: ignore[arg-type]
            max_network_retries=settings.max_retries,
            http_client=self._http,
            stripe_version=STRIPE_API_VERSION,
        )
        self.v1 = self._client.v1

    @property
    def test_mode(self) -> bool:
        """Whether the key is a test-mode key (its objects live under the dashboard's /test)."""
        return self._api_key.startswith(("sk_test_", "rk_test_"))

    async def close(self) -> None:
        await self._http.close_async()

    async def attempt(self, call: Callable[[], Awaitable[T]], what: str) -> T:
        """Run one SDK call, retrying a 429, with Stripe's errors in our words."""
        retries = 0
        while True:
            try:
                return await call()
            except stripe.RateLimitError as exc:
                # The SDK does not retry a 429. Stripe ran nothing, so the same
                # request (same idempotency key) is safe to send again.
                if retries >= self.settings.max_retries:
                    raise self.error(exc, what) from None
                retries += 1
                delay = min(self.retry_delay * 2 ** (retries - 1), 8.0)
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            except stripe.StripeError as exc:
                raise self.error(exc, what) from None

    async def each(self, calls: Iterable[Awaitable[T]]) -> list[T]:
        """Await calls a few at a time: a large profile must not trip Stripe's rate limit."""
        gate = asyncio.Semaphore(self.fanout)

        async def one(call: Awaitable[T]) -> T:
            async with gate:
                return await call

        return list(await asyncio.gather(*(one(c) for c in calls)))

    async def get(self, call: Callable[[], Awaitable[Any]], what: str) -> dict[str, Any]:
        """One object, as the JSON dict Stripe sent."""
        return (await self.attempt(call, what)).to_dict()

    async def find(self, call: Callable[[], Awaitable[Any]], what: str) -> dict[str, Any] | None:
        """One object, or None where Stripe has none."""
        try:
            return await self.get(call, what)
        except GatewayError as exc:
            if exc.code == ErrorCode.not_found:
                return None
            raise

    async def list(
        self,
        fetch: Callable[[dict[str, Any]], Awaitable[Any]],
        params: dict[str, Any],
        what: str,
        cap: int,
        *,
        page_size: int | None = 100,
    ) -> list[dict[str, Any]]:
        """Every item of a list endpoint, newest pages first, up to `cap`."""
        items: list[dict[str, Any]] = []
        page = dict(params)
        if page_size is not None:
            page["limit"] = min(page_size, cap)
        while True:
            result = await self.get(lambda sent=dict(page): fetch(sent), what)
            data = result.get("data") or []
            items.extend(data)
            if not result.get("has_more") or not data or len(items) >= cap:
                return items[:cap]
            page["starting_after"] = data[-1]["id"]

    async def replayed(self, send: Callable[[], Awaitable[Any]]) -> bool:
        """Whether Stripe answers this very request from its idempotency cache (a retry of ours)."""
        try:
            result = await self.attempt(send, "a repeated request")
        except GatewayError:
            return False
        response = getattr(result, "last_response", None)
        headers = getattr(response, "headers", None) or {}
        return header(headers, "Idempotent-Replayed") == "true"

    def error(self, exc: stripe.StripeError, what: str) -> GatewayError:
        """A Stripe exception as a GatewayError, keeping Stripe's code and words."""
        raw_message = exc.user_message or str(exc)
        raw_code = exc.code
        if raw_code is None and exc.error is not None:
            raw_code = getattr(exc.error, "code", None) or getattr(exc.error, "type", None)

        def error(code: ErrorCode, message: str) -> GatewayError:
            return GatewayError(
                code, message, gateway=NAME, raw_code=raw_code, raw_message=raw_message
            )

        if isinstance(exc, stripe.CardError):
            # The decline code (insufficient_funds, authentication_required) says the most.
            raw_code = getattr(exc.error, "decline_code", None) or raw_code
            return error(ErrorCode.card_declined, f"the card was declined: {raw_message}")
        if isinstance(exc, stripe.RateLimitError):
            return error(ErrorCode.rate_limited, "Stripe is rate-limiting us: try again shortly")
        if isinstance(exc, stripe.IdempotencyError):
            return error(
                ErrorCode.rejected,
                f"Stripe refused {what}: its idempotency key was already used for a "
                f"different request ({raw_message})",
            )
        if isinstance(exc, stripe.APIConnectionError):
            if isinstance(exc.__cause__, httpx.TimeoutException):
                return error(
                    ErrorCode.timeout,
                    f"Stripe did not answer about {what} within {self.settings.timeout:g} s",
                )
            return error(ErrorCode.unavailable, f"Stripe could not be reached about {what}")
        if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
            return error(
                ErrorCode.rejected, f"Stripe refused our API key for {what}: {raw_message}"
            )
        if isinstance(exc, stripe.InvalidRequestError):
            code = _ERROR_CODES.get(raw_code or "")
            # An over-refund comes back as a bare invalid_request_error on `amount`.
            over = exc.param in ("amount", "amount_to_capture") and "greater than" in raw_message
            if code is None and over:
                code = ErrorCode.amount_too_large
            if code == ErrorCode.not_found or (code is None and exc.http_status == 404):
                return error(ErrorCode.not_found, f"Stripe has no {what}")
            if code == ErrorCode.already_refunded:
                return error(code, f"Stripe says {what} is already fully refunded")
            if code == ErrorCode.charge_disputed:
                return error(
                    code, f"{what} is disputed at Stripe: answer the dispute instead of refunding"
                )
            if code is not None:
                return error(code, f"Stripe refused {what}: {raw_message}")
            return error(ErrorCode.rejected, f"Stripe refused {what}: {raw_message}")
        status = exc.http_status
        if raw_code is None and status is not None:
            raw_code = str(status)
        return error(
            ErrorCode.unavailable,
            f"Stripe failed on {what}" + (f" (HTTP {status})" if status else ""),
        )
