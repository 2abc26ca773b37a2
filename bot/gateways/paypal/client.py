"""PayPal transport: the official SDK plus httpx, one OAuth token, retries, errors.

The SDK (synchronous, so every call runs on this gateway's own threads) serves
payments, orders, subscriptions, transaction search and the OAuth token; httpx
serves Invoicing v2 and webhook verification, which the SDK lacks, with the same
cached token. Reads are retried, and writes only with a `PayPal-Request-Id`
(`request_id`), which PayPal answers at most once. PayPal's answers become our
GatewayError family here, and nowhere else.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import requests
import urllib3
from apimatic_core.utilities.auth_helper import AuthHelper
from paypalserversdk.configuration import Configuration, Environment, Server
from paypalserversdk.exceptions.api_exception import ApiException
from paypalserversdk.http.auth.o_auth_2 import ClientCredentialsAuthCredentials
from paypalserversdk.models.o_auth_token import OAuthToken
from paypalserversdk.paypal_serversdk_client import PaypalServersdkClient

from bot.gateways.base import ErrorCode, GatewayError
from bot.gateways.calls import (
    Retryable,
    SdkThreads,
    Unreachable,
    answer_error,
    pause,
    retried,
    status_code,
)
from bot.gateways.paypal.mapping import NAME, Json
from bot.settings import PayPalSettings

PROVIDER = "PayPal"
SANDBOX_URL = "https://api-m.sandbox.paypal.com"
LIVE_URL = "https://api-m.paypal.com"
TOKEN_MARGIN = 120.0  # seconds: a token is replaced this long before PayPal expires it
CONCURRENT_CALLS = 8
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})

# --- errors ------------------------------------------------------------------------------

_ISSUES: dict[str, ErrorCode] = {
    "REFUND_AMOUNT_EXCEEDED": ErrorCode.amount_too_large,
    "MAX_CAPTURE_AMOUNT_EXCEEDED": ErrorCode.amount_too_large,
    "CAPTURE_FULLY_REFUNDED": ErrorCode.already_refunded,
    "CURRENCY_MISMATCH": ErrorCode.currency_mismatch,
    "REFUND_CAPTURE_CURRENCY_MISMATCH": ErrorCode.currency_mismatch,
    "AUTH_CAPTURE_CURRENCY_MISMATCH": ErrorCode.currency_mismatch,
    "AUTHORIZATION_ALREADY_CAPTURED": ErrorCode.invalid_state,
    "AUTHORIZATION_VOIDED": ErrorCode.invalid_state,
    "AUTHORIZATION_EXPIRED": ErrorCode.invalid_state,
    "AUTHORIZATION_DENIED": ErrorCode.invalid_state,
    "PREVIOUSLY_CAPTURED": ErrorCode.invalid_state,
    "PREVIOUSLY_VOIDED": ErrorCode.invalid_state,
    "CANNOT_BE_VOIDED": ErrorCode.invalid_state,
    "MAX_CAPTURE_COUNT_EXCEEDED": ErrorCode.invalid_state,
    "REFUND_NOT_ALLOWED": ErrorCode.invalid_state,
    "PARTIAL_REFUND_NOT_ALLOWED": ErrorCode.invalid_state,
    "REFUND_TIME_LIMIT_EXCEEDED": ErrorCode.invalid_state,
    "MAX_NUMBER_OF_REFUNDS_EXCEEDED": ErrorCode.invalid_state,
    "SUBSCRIPTION_STATUS_INVALID": ErrorCode.invalid_state,
    "PENDING_CAPTURE": ErrorCode.not_settled,
    "TRANSACTION_DISPUTED": ErrorCode.charge_disputed,
    "REFUND_NOT_PERMITTED_DUE_TO_CHARGEBACK": ErrorCode.charge_disputed,
    "PAYER_CANNOT_PAY": ErrorCode.card_declined,
    "TRANSACTION_REFUSED": ErrorCode.card_declined,
    "INVALID_RESOURCE_ID": ErrorCode.not_found,
    "ORDER_NOT_APPROVED": ErrorCode.invalid_state,
    "ORDER_ALREADY_CAPTURED": ErrorCode.invalid_state,
    "ORDER_ALREADY_COMPLETED": ErrorCode.invalid_state,
    "DUPLICATE_INVOICE_ID": ErrorCode.invalid_state,
    "INSTRUMENT_DECLINED": ErrorCode.card_declined,
    "PREVIOUS_REQUEST_IN_PROGRESS": ErrorCode.unavailable,
}
_NAMES: dict[str, ErrorCode] = {
    "RESOURCE_NOT_FOUND": ErrorCode.not_found,
    "RATE_LIMIT_REACHED": ErrorCode.rate_limited,
    "AUTHENTICATION_FAILURE": ErrorCode.rejected,
    "NOT_AUTHORIZED": ErrorCode.rejected,
    "PERMISSION_DENIED": ErrorCode.rejected,
    "INTERNAL_SERVER_ERROR": ErrorCode.unavailable,
    "SERVICE_UNAVAILABLE": ErrorCode.unavailable,
}
# One part of a multipart/form-data body: (name, (filename or None, content, content type)).
FormPart = tuple[str, tuple[str | None, bytes, str]]
CREDENTIALS_HINT = (
    "check paypal.client_id and paypal.client_secret, and that they belong to the "
    "configured environment (sandbox or live)"
)


@dataclass(frozen=True)
class Reply:
    """One HTTP answer from PayPal, whichever client carried it."""

    status: int
    body: Any
    debug_id: str | None

    def issue(self) -> tuple[str | None, str | None]:
        """PayPal's most precise code and words: the first detail's issue, else the name."""
        if not isinstance(self.body, dict):
            return None, None
        details = self.body.get("details") or []
        first = details[0] if details and isinstance(details[0], dict) else {}
        code = first.get("issue") or self.body.get("name") or self.body.get("error")
        words = (
            first.get("description")
            or self.body.get("message")
            or self.body.get("error_description")
        )
        return code, words


def _error(reply: Reply, verb: str, what: str) -> GatewayError:
    raw_code, raw_message = reply.issue()
    name = reply.body.get("name") if isinstance(reply.body, dict) else None
    code = (
        _ISSUES.get(raw_code or "")
        or _NAMES.get(name or "")
        or (ErrorCode.unavailable if reply.status == 409 else status_code(reply.status))
    )
    message = None
    if reply.status == 401:
        message = f"PayPal rejected our credentials: {CREDENTIALS_HINT}"
    elif reply.status == 403:
        message = (
            f"PayPal refused permission to {verb} {what}: enable that feature for the "
            "REST app in the PayPal developer dashboard"
        )
    return answer_error(
        PROVIDER,
        code,
        reply.status,
        verb,
        what,
        gateway=NAME,
        raw_code=raw_code,
        raw_message=raw_message,
        trace=f" (PayPal debug ID {reply.debug_id})" if reply.debug_id else "",
        message=message,
    )


def _reply(status: int, text: str | bytes | None, headers: Mapping[str, str] | None) -> Reply:
    body: Any = None
    if text:
        try:
            body = json.loads(text)
        except ValueError:
            body = None
    lowered = {k.lower(): v for k, v in (headers or {}).items()}
    return Reply(status=status, body=body, debug_id=lowered.get("paypal-debug-id"))


def _run_sdk(call: Callable[[Json], Any], options: Json) -> Reply:
    """One SDK call, in a worker thread, as a Reply whatever PayPal answered."""
    try:
        response = call(options)
    except ApiException as exc:
        return _reply(exc.response_code, exc.response.text, exc.response.headers)
    except requests.RequestException as exc:
        raise Unreachable(_timed_out(exc), type(exc).__name__) from exc
    return _reply(response.status_code, response.text, response.headers)


def _timed_out(exc: BaseException) -> bool:
    """Whether a requests failure was a timeout: requests reports a read timeout under
    a retry policy (even of zero retries) as a ConnectionError wrapping urllib3's."""
    seen: BaseException | None = exc
    for _ in range(4):
        if isinstance(seen, requests.Timeout | urllib3.exceptions.TimeoutError | TimeoutError):
            return True
        if seen is None:
            return False
        inner = getattr(seen, "reason", None)
        if inner is None and seen.args and isinstance(seen.args[0], BaseException):
            inner = seen.args[0]
        seen = inner if isinstance(inner, BaseException) else None
    return False


# --- OAuth -------------------------------------------------------------------------------


class _Tokens:
    """One OAuth token shared by the SDK and httpx, replaced shortly before it expires.

    Thread-safe: SDK calls run in worker threads and ask for it from there.
    """

    def __init__(self, fetch: Callable[[], tuple[OAuthToken, float]]) -> None:
        self._fetch = fetch
        self._lock = threading.Lock()
        self._token: OAuthToken | None = None
        self._good_until = 0.0
        self._fetched_at = 0.0

    def cached(self) -> OAuthToken | None:
        token, good_until = self._token, self._good_until
        return token if token is not None and time.monotonic() < good_until else None

    def get(self) -> OAuthToken:
        with self._lock:
            token = self.cached()
            if token is None:
                token, lifetime = self._fetch()
                usable = max(lifetime - TOKEN_MARGIN, lifetime / 2)
                self._good_until = time.monotonic() + usable
                # The SDK checks `expiry` against its own clock, so it is set in those terms.
                token.expiry = AuthHelper.get_current_utc_timestamp() + int(usable)
                self._token = token
                self._fetched_at = time.monotonic()
            return token

    def invalidate(self, refused_since: float) -> None:
        """Drop the token PayPal refused, unless another call already replaced it."""
        with self._lock:
            if self._token is None or self._fetched_at > refused_since:
                return
            self._token.expiry = 0  # the SDK holds this very object: it asks again
            self._token = None
            self._good_until = 0.0


class _Configuration(Configuration):
    """The SDK's configuration, pointed at `base_uri` (PayPal's, or a local emulator's)."""

    def __init__(self, base_uri: str, **kwargs: Any) -> None:
        self._base_uri = base_uri
        super().__init__(**kwargs)

    def get_base_uri(self, server: Server = Server.DEFAULT) -> str:
        return self._base_uri


def request_id(key: str) -> str:
    """The idempotency key as a PayPal-Request-Id; long or odd keys are hashed (stable)."""
    if len(key) <= 64 and key.isascii() and key.isprintable() and " " not in key:
        return key
    return "cd-" + hashlib.sha256(key.encode()).hexdigest()[:48]


class PayPalAPI:
    """One PayPal REST app: the SDK client, httpx, the shared token and every call's retries.

    `backoff` is the first retry's mean pause in seconds (doubling after).
    """

    def __init__(self, settings: PayPalSettings, *, backoff: float = 0.5) -> None:
        if not settings.client_id or settings.client_secret is None:
            raise GatewayError(
                ErrorCode.rejected,
                "PayPal needs paypal.client_id and paypal.client_secret",
                gateway=NAME,
            )
        self.settings = settings
        self.backoff = backoff
        self._client_id = settings.client_id
        self._secret = settings.client_secret.get_secret_value()
        live = settings.environment == "live"
        self.base_url = (
            str(settings.base_url).rstrip("/")
            if settings.base_url
            else (LIVE_URL if live else SANDBOX_URL)
        )
        self._tokens = _Tokens(self._fetch_token)
        self._config = _Configuration(
            self.base_url,
            timeout=settings.timeout,
            max_retries=0,  # retries are ours: reads always, writes only with a request ID
            environment=Environment.PRODUCTION if live else Environment.SANDBOX,
            client_credentials_auth_credentials=ClientCredentialsAuthCredentials(
                o_auth_client_id=self._client_id,
                o_auth_client_secret=self._secret,
                o_auth_token_provider=lambda _last, _manager: self._tokens.get(),
            ),
        )
        self.sdk_client = PaypalServersdkClient(config=self._config)
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=settings.timeout)
        self._limit = asyncio.Semaphore(CONCURRENT_CALLS)
        self._threads = SdkThreads("paypal", CONCURRENT_CALLS + 1)  # + the token fetch

    async def close(self) -> None:
        self._threads.close()
        if not self._http.is_closed:
            await self._http.aclose()
        session = getattr(self._config.http_client, "session", None)
        if session is not None:
            session.close()

    def _fetch_token(self) -> tuple[OAuthToken, float]:
        """Client credentials for a bearer token, through the SDK's OAuth controller.

        Runs in a worker thread (the SDK asks for the token from there), so it sleeps.
        """
        basic = base64.b64encode(f"{self._client_id}:{self._secret}".encode()).decode()
        attempt = 0
        while True:
            retry = attempt < self.settings.max_retries
            try:
                reply = _run_sdk(
                    self.sdk_client.o_auth_authorization.request_token,
                    {"authorization": f"Basic {basic}"},
                )
            except Unreachable as exc:
                if not retry:
                    raise exc.error(PROVIDER, "get", "an access token", gateway=NAME) from None
            else:
                if reply.status == 200 and isinstance(reply.body, dict):
                    token = OAuthToken.from_dictionary(reply.body)
                    return token, float(reply.body["expires_in"])
                if reply.status in (400, 401):
                    raw_code, raw_message = reply.issue()
                    raise GatewayError(
                        ErrorCode.rejected,
                        f"PayPal refused the client credentials: {CREDENTIALS_HINT}",
                        gateway=NAME,
                        raw_code=raw_code,
                        raw_message=raw_message,
                    )
                if not retry or reply.status not in RETRY_STATUSES:
                    raise _error(reply, "get", "an access token")
            attempt += 1
            time.sleep(pause(self.backoff, attempt))

    async def _bearer(self) -> str:
        token = self._tokens.cached() or await self._threads.run(self._tokens.get)
        return f"Bearer {token.access_token}"

    async def _call(
        self,
        send: Callable[[], Awaitable[Reply]],
        *,
        verb: str,
        what: str,
        retry: bool,
    ) -> Reply:
        """Send, renewing the token once on 401 and retrying transient failures if allowed.

        `retry` is True for reads and for writes carrying a PayPal-Request-Id, which
        PayPal answers at most once; other writes are sent once (the caller re-reads).
        """
        renewed = False

        async def attempt() -> Reply:
            nonlocal renewed
            while True:
                sent_at = time.monotonic()
                try:
                    async with self._limit:
                        reply = await send()
                except Unreachable as exc:
                    raise Retryable(exc.error(PROVIDER, verb, what, gateway=NAME)) from None
                if reply.status < 400:
                    return reply
                if reply.status == 401 and not renewed:
                    # A revoked or expired token: nothing was done, so one fresh try is safe.
                    renewed = True
                    self._tokens.invalidate(sent_at)
                    continue
                issue, _ = reply.issue()
                error = _error(reply, verb, what)
                if reply.status in RETRY_STATUSES or issue == "PREVIOUS_REQUEST_IN_PROGRESS":
                    raise Retryable(error)
                raise error

        retries = self.settings.max_retries if retry else 0
        return await retried(attempt, retries=retries, backoff=self.backoff)

    async def sdk(
        self,
        call: Callable[[Json], Any],
        options: Json,
        *,
        verb: str,
        what: str,
        retry: bool = True,
    ) -> Reply:
        """A call through the SDK, in a worker thread (the SDK is synchronous)."""

        async def send() -> Reply:
            return await self._threads.run(_run_sdk, call, options)

        return await self._call(send, verb=verb, what=what, retry=retry)

    async def rest(
        self,
        method: str,
        path: str,
        *,
        verb: str,
        what: str,
        retry: bool = True,
        json_body: Any = None,
        content: bytes | None = None,
        params: Mapping[str, str] | None = None,
        form: list[FormPart] | None = None,
    ) -> Reply:
        """A call the SDK cannot make, over httpx with the same token; `form` sends a
        multipart/form-data body (name, (filename or None, bytes, content type)) instead."""

        async def send() -> Reply:
            headers = {"Authorization": await self._bearer(), "Accept": "application/json"}
            if form is None and (json_body is not None or content is not None):
                headers["Content-Type"] = "application/json"
            try:
                response = await self._http.request(
                    method,
                    path,
                    headers=headers,
                    params=params,
                    json=json_body,
                    content=content,
                    files=form,  # httpx sets the multipart Content-Type with its boundary
                )
            except httpx.TimeoutException as exc:
                raise Unreachable(True, type(exc).__name__) from exc
            except httpx.TransportError as exc:
                raise Unreachable(False, type(exc).__name__) from exc
            return _reply(response.status_code, response.content, response.headers)

        return await self._call(send, verb=verb, what=what, retry=retry)
