"""PayPal, through PayPal's official `paypal-server-sdk` (plus httpx where it has nothing).

The SDK (synchronous, so every call goes through `asyncio.to_thread`) serves
payments, orders, subscriptions, transaction search and the OAuth token;
httpx serves Invoicing v2 and webhook verification, which the SDK lacks, with
the same cached token.

How PayPal's objects become ours:

- PayPal has no customer search. A payer is found through Transaction Search
  (`/v1/reporting/transactions`, at most 31 days per request, so the lookback
  is cut into windows searched concurrently) by the e-mail on each row; the
  customer ID is the payer ID. Rows name the payer's captures, authorizations
  and (reference type SUB) subscriptions; invoices are searched by recipient
  e-mail. New transactions can take up to three hours to reach the search;
  objects looked up by ID are always included.
- Charges are captures, plus authorizations not yet fully captured. A
  captured authorization is shown through its captures (webhooks name those);
  asked for by its own ID it reads as succeeded, and a refund of it refunds
  its one capture.
- Refunds, captures and voids send the idempotency key as `PayPal-Request-Id`.
  When a fresh read says the action can no longer happen (already refunded,
  captured, voided), the request is sent once more with that ID: PayPal
  answers a repeat with the first result and refuses anything else, so a
  retried action returns what the first did and a new one is refused with our
  reasons.
- Cancelling a subscription has no request ID. The key's reference goes into
  the cancel reason, which PayPal keeps as `status_change_note`: a subscription
  found cancelled with it was cancelled by this key. PayPal cancels at once
  and has no cancel-at-period-end, so that is refused as unsupported.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import random
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
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

from bot.gateways.base import (
    Capability,
    ErrorCode,
    Gateway,
    GatewayError,
    LookupQuery,
    WebhookRejected,
)
from bot.gateways.checks import check_capture, check_refund, require_status
from bot.gateways.events import EventKind, GatewayEvent
from bot.models import (
    Charge,
    ChargeStatus,
    Customer,
    GatewayProfile,
    Invoice,
    InvoiceStatus,
    Refund,
    Subscription,
    SubscriptionStatus,
)
from bot.money import Money, MoneyError, exponent, normalize_currency
from bot.settings import PayPalSettings

NAME = "paypal"
SANDBOX_URL = "https://api-m.sandbox.paypal.com"
LIVE_URL = "https://api-m.paypal.com"
# PayPal takes these in whole units although ISO 4217 gives HUF and TWD two decimals.
ZERO_DECIMAL_AT_PAYPAL = frozenset({"HUF", "JPY", "TWD"})
SEARCH_WINDOW = timedelta(days=31) - timedelta(seconds=1)
SEARCH_HISTORY = timedelta(days=3 * 365)  # Transaction Search covers three years
SEARCH_PAGE_SIZE = 500
INVOICE_PAGE_SIZE = 100
WEBHOOK_TOLERANCE = timedelta(minutes=5)
TOKEN_MARGIN = 120.0  # seconds: a token is replaced this long before PayPal expires it
CONCURRENT_CALLS = 8
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})

Json = dict[str, Any]


# --- money -------------------------------------------------------------------------------


def paypal_decimals(currency: str) -> int:
    """Decimals PayPal accepts for a currency: none for HUF, JPY and TWD, else ISO 4217's."""
    code = normalize_currency(currency)
    return 0 if code in ZERO_DECIMAL_AT_PAYPAL else exponent(code)


def money_from_paypal(amount: Mapping[str, Any]) -> Money:
    """PayPal's `{"currency_code", "value"}` (a decimal string) as exact Money."""
    currency = normalize_currency(str(amount["currency_code"]))
    minor = Decimal(str(amount["value"])).scaleb(exponent(currency))
    if minor != minor.to_integral_value():
        raise MoneyError(f"{amount['value']} {currency} has more decimals than {currency} has")
    return Money(minor=int(minor), currency=currency)


def money_to_paypal(amount: Money) -> dict[str, str]:
    """Money as PayPal's `{"currency_code", "value"}`, refusing what PayPal cannot take."""
    digits = paypal_decimals(amount.currency)
    value = amount.decimal
    if value != value.quantize(Decimal(1).scaleb(-digits)):
        raise GatewayError(
            ErrorCode.rejected,
            f"PayPal takes {amount.currency} in whole units only: {amount.format()} cannot be sent",
            gateway=NAME,
        )
    return {"currency_code": amount.currency, "value": f"{value:.{digits}f}"}


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
UNKNOWN_PAYER = "unknown payer"
CREDENTIALS_HINT = (
    "check paypal.client_id and paypal.client_secret, and that they belong to the "
    "configured environment (sandbox or live)"
)


@dataclass(frozen=True)
class _Reply:
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


class _Transport(Exception):
    """PayPal could not be reached, or did not answer in time."""

    def __init__(self, timed_out: bool, detail: str) -> None:
        super().__init__(detail)
        self.timed_out = timed_out
        self.detail = detail


def _error(reply: _Reply, verb: str, what: str) -> GatewayError:
    raw_code, raw_message = reply.issue()
    name = reply.body.get("name") if isinstance(reply.body, dict) else None
    code = _ISSUES.get(raw_code or "") or _NAMES.get(name or "")
    if code is None:
        if reply.status == 404:
            code = ErrorCode.not_found
        elif reply.status == 429:
            code = ErrorCode.rate_limited
        elif reply.status >= 500 or reply.status == 409:
            code = ErrorCode.unavailable
        else:
            code = ErrorCode.rejected
    trace = f" (PayPal debug ID {reply.debug_id})" if reply.debug_id else ""
    if reply.status == 401:
        message = f"PayPal rejected our credentials: {CREDENTIALS_HINT}"
    elif reply.status == 403:
        message = (
            f"PayPal refused permission to {verb} {what}: enable that feature for the "
            "REST app in the PayPal developer dashboard"
        )
    elif code == ErrorCode.not_found:
        message = f"PayPal has no {what}"
    elif code == ErrorCode.rate_limited:
        message = f"PayPal is rate-limiting us ({verb} {what}): try again in a minute"
    elif code == ErrorCode.unavailable:
        message = f"PayPal failed to {verb} {what} (HTTP {reply.status}): try again shortly"
    else:
        message = f"PayPal refused to {verb} {what}: {raw_message or raw_code or reply.status}"
    return GatewayError(
        code,
        message + trace,
        gateway=NAME,
        raw_code=raw_code or str(reply.status),
        raw_message=raw_message,
    )


def _transport_error(exc: _Transport, verb: str, what: str) -> GatewayError:
    if exc.timed_out:
        return GatewayError(
            ErrorCode.timeout, f"PayPal did not answer in time ({verb} {what})", gateway=NAME
        )
    return GatewayError(
        ErrorCode.unavailable,
        f"PayPal could not be reached ({verb} {what}: {exc.detail})",
        gateway=NAME,
    )


def _reply(status: int, text: str | bytes | None, headers: Mapping[str, str] | None) -> _Reply:
    body: Any = None
    if text:
        try:
            body = json.loads(text)
        except ValueError:
            body = None
    lowered = {k.lower(): v for k, v in (headers or {}).items()}
    return _Reply(status=status, body=body, debug_id=lowered.get("paypal-debug-id"))


def _run_sdk(call: Callable[[Json], Any], options: Json) -> _Reply:
    """One SDK call, in a worker thread, as a _Reply whatever PayPal answered."""
    try:
        response = call(options)
    except ApiException as exc:
        return _reply(exc.response_code, exc.response.text, exc.response.headers)
    except requests.RequestException as exc:
        raise _Transport(_timed_out(exc), type(exc).__name__) from exc
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


# --- what a lookup gathers ---------------------------------------------------------------


@dataclass
class _Payer:
    id: str | None
    email: str | None
    name: str | None = None


@dataclass
class _Found:
    """One payer and the IDs of what they own, before anything is fetched."""

    payer: _Payer
    captures: dict[str, Json | None] = field(default_factory=dict)  # ID -> search row
    authorizations: dict[str, Json | None] = field(default_factory=dict)  # ID -> search row
    subscriptions: set[str] = field(default_factory=set)
    invoices: dict[str, Json] = field(default_factory=dict)
    row_refunds: dict[str, list[Json]] = field(default_factory=dict)  # capture ID -> rows

    def merge(self, other: _Found) -> None:
        for capture_id, row in other.captures.items():
            self.captures.setdefault(capture_id, row)
        for authorization_id, row in other.authorizations.items():
            self.authorizations.setdefault(authorization_id, row)
        self.subscriptions |= other.subscriptions
        self.invoices.update(other.invoices)
        for capture_id, rows in other.row_refunds.items():
            self.row_refunds.setdefault(capture_id, rows)
        self.payer.name = self.payer.name or other.payer.name
        self.payer.email = self.payer.email or other.payer.email


@dataclass
class _Resolved:
    """A capture or authorization ID, read fresh, with its order and our view of it."""

    kind: str  # "capture" or "authorization"
    body: Json
    order: Json | None
    charge: Charge
    capture_ids: tuple[str, ...] = ()  # an authorization's captures


class PayPalGateway(Gateway):
    """PayPal REST: payments, subscriptions, invoices and webhooks of one REST app.

    `backoff` is the first retry's mean pause in seconds (doubling after);
    `max_charges` caps how many of a payer's payments a lookup fetches, newest first.
    """

    name = NAME
    capabilities = frozenset(
        {
            Capability.lookup,
            Capability.refund,
            Capability.partial_refund,
            Capability.capture,
            Capability.void,
            Capability.cancel_subscription,
            Capability.invoices,
            Capability.send_invoice,
            Capability.webhooks,
        }
    )

    def __init__(
        self,
        settings: PayPalSettings,
        *,
        backoff: float = 0.5,
        max_charges: int = 200,
    ) -> None:
        if not settings.client_id or settings.client_secret is None:
            raise GatewayError(
                ErrorCode.rejected,
                "PayPal needs paypal.client_id and paypal.client_secret",
                gateway=NAME,
            )
        self.settings = settings
        self.backoff = backoff
        self.max_charges = max_charges
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
        self._sdk_client = PaypalServersdkClient(config=self._config)
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=settings.timeout)
        self._limit = asyncio.Semaphore(CONCURRENT_CALLS)

    async def close(self) -> None:
        if not self._http.is_closed:
            await self._http.aclose()
        session = getattr(self._config.http_client, "session", None)
        if session is not None:
            session.close()

    # --- plumbing ------------------------------------------------------------------------

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
                    self._sdk_client.o_auth_authorization.request_token,
                    {"authorization": f"Basic {basic}"},
                )
            except _Transport as exc:
                if not retry:
                    raise _transport_error(exc, "get", "an access token") from None
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
            time.sleep(self._delay(attempt))

    async def _bearer(self) -> str:
        token = self._tokens.cached() or await asyncio.to_thread(self._tokens.get)
        return f"Bearer {token.access_token}"

    def _delay(self, attempt: int) -> float:
        # Full jitter, so a burst of lookups does not retry in lockstep.
        return random.uniform(0, self.backoff * 2 ** (attempt - 1))

    async def _call(
        self,
        send: Callable[[], Awaitable[_Reply]],
        *,
        verb: str,
        what: str,
        retry: bool,
    ) -> _Reply:
        """Send, renewing the token once on 401 and retrying transient failures if allowed.

        `retry` is True for reads and for writes carrying a PayPal-Request-Id, which
        PayPal answers at most once; other writes are sent once (the caller re-reads).
        """
        attempt = 0
        renewed = False
        while True:
            sent_at = time.monotonic()
            try:
                async with self._limit:
                    reply = await send()
            except _Transport as exc:
                if retry and attempt < self.settings.max_retries:
                    attempt += 1
                    await asyncio.sleep(self._delay(attempt))
                    continue
                raise _transport_error(exc, verb, what) from None
            if reply.status < 400:
                return reply
            if reply.status == 401 and not renewed:
                # A revoked or expired token: nothing was done, so one fresh try is safe.
                renewed = True
                self._tokens.invalidate(sent_at)
                continue
            issue, _ = reply.issue()
            transient = reply.status in RETRY_STATUSES or issue == "PREVIOUS_REQUEST_IN_PROGRESS"
            if retry and transient and attempt < self.settings.max_retries:
                attempt += 1
                await asyncio.sleep(self._delay(attempt))
                continue
            raise _error(reply, verb, what)

    async def _sdk(
        self,
        call: Callable[[Json], Any],
        options: Json,
        *,
        verb: str,
        what: str,
        retry: bool = True,
    ) -> _Reply:
        """A call through the SDK, in a worker thread (the SDK is synchronous)."""

        async def send() -> _Reply:
            return await asyncio.to_thread(_run_sdk, call, options)

        return await self._call(send, verb=verb, what=what, retry=retry)

    async def _rest(
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
    ) -> _Reply:
        """A call the SDK cannot make, over httpx with the same token."""

        async def send() -> _Reply:
            headers = {"Authorization": await self._bearer(), "Accept": "application/json"}
            if json_body is not None or content is not None:
                headers["Content-Type"] = "application/json"
            try:
                response = await self._http.request(
                    method,
                    path,
                    headers=headers,
                    params=params,
                    json=json_body,
                    content=content,
                )
            except httpx.TimeoutException as exc:
                raise _Transport(True, type(exc).__name__) from exc
            except httpx.TransportError as exc:
                raise _Transport(False, type(exc).__name__) from exc
            return _reply(response.status_code, response.content, response.headers)

        return await self._call(send, verb=verb, what=what, retry=retry)

    async def _optional(self, read: Awaitable[Json]) -> Json | None:
        try:
            return await read
        except GatewayError as exc:
            if exc.code == ErrorCode.not_found:
                return None
            raise

    # --- single reads --------------------------------------------------------------------

    async def _capture_json(self, capture_id: str) -> Json:
        reply = await self._sdk(
            self._sdk_client.payments.get_captured_payment,
            {"capture_id": capture_id},
            verb="read",
            what=f"capture {capture_id}",
        )
        return reply.body

    async def _authorization_json(self, authorization_id: str) -> Json:
        reply = await self._sdk(
            self._sdk_client.payments.get_authorized_payment,
            {"authorization_id": authorization_id},
            verb="read",
            what=f"authorization {authorization_id}",
        )
        return reply.body

    async def _order_json(self, order_id: str) -> Json:
        reply = await self._sdk(
            self._sdk_client.orders.get_order,
            {"id": order_id},
            verb="read",
            what=f"order {order_id}",
        )
        return reply.body

    async def _subscription_json(self, subscription_id: str) -> Json:
        reply = await self._sdk(
            self._sdk_client.subscriptions.get_subscription,
            {"id": subscription_id, "fields": "plan"},
            verb="read",
            what=f"subscription {subscription_id}",
        )
        return reply.body

    async def _invoice_json(self, invoice_id: str) -> Json:
        reply = await self._rest(
            "GET",
            f"/v2/invoicing/invoices/{invoice_id}",
            verb="read",
            what=f"invoice {invoice_id}",
        )
        return reply.body

    async def get_charge(self, charge_id: str) -> Charge:
        return (await self._resolve(charge_id)).charge

    async def get_subscription(self, subscription_id: str) -> Subscription:
        return _subscription(await self._subscription_json(subscription_id))

    async def _resolve(self, charge_id: str) -> _Resolved:
        """Read a capture or authorization ID afresh (PayPal's IDs do not say which)."""
        capture, authorization = await asyncio.gather(
            self._optional(self._capture_json(charge_id)),
            self._optional(self._authorization_json(charge_id)),
        )
        if capture is not None:
            order = await self._order_of(capture)
            refunds = _order_refunds(order).get(capture["id"], [])
            if order is None and capture.get("status") == "PARTIALLY_REFUNDED":
                refunds = await self._refunds_from_search(capture)
            return _Resolved(
                "capture",
                capture,
                order,
                _capture_charge(capture, refunds, _order_payer(order).id),
            )
        if authorization is not None:
            order = await self._order_of(authorization)
            captures = _authorization_captures(order, authorization["id"])
            charge = _authorization_charge(
                authorization, captures, _order_refunds(order), _order_payer(order).id
            )
            return _Resolved(
                "authorization",
                authorization,
                order,
                charge,
                tuple(c["id"] for c in captures),
            )
        raise GatewayError(
            ErrorCode.not_found, f"PayPal has no capture or authorization {charge_id}", gateway=NAME
        )

    async def _order_of(self, payment: Json) -> Json | None:
        order_id = _related(payment, "order_id")
        return await self._optional(self._order_json(order_id)) if order_id else None

    async def _refunds_from_search(self, capture: Json) -> list[Json]:
        """Refunds of a capture made outside an order, as transaction rows since it."""
        oldest = _now() - SEARCH_HISTORY  # older than that, the search answers 400
        start = max(_time(capture.get("create_time")) or oldest, oldest)
        rows = await self._rows(start, _now())
        return [
            _refund_json_from_row(row)
            for row in rows
            if _info(row).get("paypal_reference_id") == capture["id"]
            and str(_info(row).get("transaction_event_code", "")).startswith("T11")
        ]

    # --- transaction search --------------------------------------------------------------

    async def _rows(
        self, start: datetime, end: datetime, *, transaction_id: str | None = None
    ) -> list[Json]:
        """Every search row from start to end, 31-day windows fetched concurrently."""
        pages = await asyncio.gather(
            *(self._window(s, e, transaction_id) for s, e in _windows(start, end))
        )
        seen: set[tuple[Any, ...]] = set()
        rows = []
        for row in (row for page in pages for row in page):
            info = _info(row)
            key = (
                info.get("transaction_id"),
                info.get("transaction_event_code"),
                info.get("transaction_initiation_date"),
            )
            if key not in seen:  # a row exactly on a window edge comes back twice
                seen.add(key)
                rows.append(row)
        return rows

    async def _window(
        self, start: datetime, end: datetime, transaction_id: str | None
    ) -> list[Json]:
        rows: list[Json] = []
        page = 1
        while True:
            options: Json = {
                "start_date": _stamp(start),
                "end_date": _stamp(end),
                "fields": "all",
                # Authorizations do not move the balance: without N they are left out.
                "balance_affecting_records_only": "N",
                "page_size": SEARCH_PAGE_SIZE,
                "page": page,
            }
            if transaction_id:
                options["transaction_id"] = transaction_id
            reply = await self._sdk(
                self._sdk_client.transaction_search.search_transactions,
                options,
                verb="search",
                what=f"transactions from {start:%Y-%m-%d} to {end:%Y-%m-%d}",
            )
            body = reply.body or {}
            rows.extend(body.get("transaction_details") or [])
            if page >= int(body.get("total_pages") or 1):
                return rows
            page += 1

    async def _find(self, email: str) -> list[_Found]:
        """Every payer using this e-mail, from the lookback's rows, and its invoices."""
        end = _now()
        rows, invoices = await asyncio.gather(
            self._rows(end - timedelta(days=self.settings.lookback_days), end),
            self._invoices_for(email),
        )
        found = _payers(rows, email)
        if invoices:
            # Invoices are addressed to an e-mail, not a payer: the latest payer gets them.
            owner = found[0] if found else _Found(_Payer(None, email, _recipient_name(invoices[0])))
            owner.invoices.update({i["id"]: i for i in invoices})
            if not found:
                found.append(owner)
        return found

    async def _invoices_for(self, email: str) -> list[Json]:
        invoices: list[Json] = []
        page = 1
        while True:
            reply = await self._rest(
                "POST",
                "/v2/invoicing/search-invoices",
                params={
                    "page": str(page),
                    "page_size": str(INVOICE_PAGE_SIZE),
                    "total_required": "true",
                },
                json_body={"recipient_email": email},
                verb="search",
                what=f"invoices for {email}",
            )
            body = reply.body or {}
            invoices.extend(body.get("items") or [])
            if page >= int(body.get("total_pages") or 1):
                return invoices
            page += 1

    async def _payer_of_transaction(self, transaction_id: str, when: datetime | None) -> _Payer:
        """The payer of a capture that no order names, from its own search row."""
        if when is None:
            return _Payer(None, None)
        rows = await self._rows(
            when - timedelta(days=1),
            min(when + timedelta(days=29), _now()),
            transaction_id=transaction_id,
        )
        for row in rows:
            payer = _row_payer(row)
            if payer.id or payer.email:
                return payer
        return _Payer(None, None)

    # --- lookup --------------------------------------------------------------------------

    async def lookup(self, query: LookupQuery) -> list[GatewayProfile]:
        if query.kind == "email":
            found = await self._find(query.value)
            return list(await asyncio.gather(*(self._profile(f) for f in found)))
        seed = await self._seed(query.value.strip())
        if seed is None:
            return []
        if not seed.payer.email:
            return [await self._profile(seed)]
        found = await self._find(seed.payer.email)
        same = [f for f in found if seed.payer.id is None or f.payer.id == seed.payer.id]
        if same:
            same[0].merge(seed)
            # The looked-up object's payer first; others sharing the e-mail stay separate.
            return list(await asyncio.gather(*(self._profile(f) for f in same)))
        for other in found:
            if other.payer.id is None:
                seed.merge(other)
        return [await self._profile(seed)]

    async def _seed(self, object_id: str) -> _Found | None:
        """What one ID says about its payer, or None if PayPal has no such object."""
        if object_id.startswith("I-"):
            sub = await self._optional(self._subscription_json(object_id))
            if sub is None:
                return None
            subscriber = sub.get("subscriber") or {}
            payer = _Payer(
                subscriber.get("payer_id"),
                subscriber.get("email_address"),
                _full_name(subscriber.get("name")),
            )
            return _Found(payer, subscriptions={object_id})
        if object_id.startswith("INV2-"):
            invoice = await self._optional(self._invoice_json(object_id))
            if invoice is None:
                return None
            payer = _Payer(None, _recipient_email(invoice), _recipient_name(invoice))
            return _Found(payer, invoices={object_id: invoice})
        try:
            resolved = await self._resolve(object_id)
        except GatewayError as exc:
            if exc.code == ErrorCode.not_found:
                return None
            raise
        payer = _order_payer(resolved.order)
        if payer.id is None and payer.email is None:
            payer = await self._payer_of_transaction(
                object_id, _time(resolved.body.get("create_time"))
            )
        seed = _Found(payer)
        if resolved.kind == "capture":
            seed.captures[object_id] = None
        else:
            seed.authorizations[object_id] = None
        return seed

    async def _profile(self, found: _Found) -> GatewayProfile:
        """Fetch what a payer owns: orders named by search rows, other payments one by one."""
        newest = sorted(
            found.captures,
            key=lambda cid: _row_time(found.captures[cid]) or datetime.max.replace(tzinfo=UTC),
            reverse=True,
        )[: self.max_charges]
        rows = {pid: found.captures[pid] for pid in newest} | found.authorizations
        order_ids = {oid for row in rows.values() if (oid := _row_order(row))}
        loose_captures = [c for c in newest if not _row_order(found.captures[c])]
        loose_authorizations = [a for a, row in found.authorizations.items() if not _row_order(row)]
        captures, authorizations, subscriptions = await asyncio.gather(
            asyncio.gather(*(self._optional(self._capture_json(c)) for c in loose_captures)),
            asyncio.gather(
                *(self._optional(self._authorization_json(a)) for a in loose_authorizations)
            ),
            asyncio.gather(
                *(self._optional(self._subscription_json(s)) for s in found.subscriptions)
            ),
        )
        order_ids |= {
            oid
            for p in (*captures, *authorizations)
            if p is not None and (oid := _related(p, "order_id"))
        }
        fetched = await asyncio.gather(*(self._optional(self._order_json(o)) for o in order_ids))
        orders = [o for o in fetched if o is not None]

        payer = found.payer
        if payer.id is None and orders:
            known = _order_payer(orders[0])
            payer = _Payer(known.id, payer.email or known.email, payer.name or known.name)
        # Invoice recipients without PayPal payments are known by e-mail alone.
        customer_id = payer.id or (payer.email or "").lower() or UNKNOWN_PAYER

        refunds_by_capture: dict[str, list[Json]] = {}
        for order in orders:
            for capture_id, refunds in _order_refunds(order).items():
                refunds_by_capture.setdefault(capture_id, []).extend(refunds)
        for capture_id, refund_rows in found.row_refunds.items():
            refunds_by_capture.setdefault(
                capture_id, [_refund_json_from_row(r) for r in refund_rows]
            )

        # Orders list their captures whole, including any the search has not caught up on.
        capture_bodies = {c["id"]: c for o in orders for c in _order_payments(o, "captures")}
        for body in captures:
            if body is not None:
                capture_bodies.setdefault(body["id"], body)
        authorization_bodies = {
            a["id"]: (a, o) for o in orders for a in _order_payments(o, "authorizations")
        }
        for body in authorizations:
            if body is not None:
                authorization_bodies.setdefault(body["id"], (body, None))

        charges = [
            _capture_charge(body, refunds_by_capture.get(cid, []), customer_id)
            for cid, body in capture_bodies.items()
        ]
        for body, order in authorization_bodies.values():
            if body.get("status") != "CAPTURED":  # its captures stand for it
                charges.append(
                    _authorization_charge(
                        body,
                        _authorization_captures(order, body["id"]),
                        refunds_by_capture,
                        customer_id,
                    )
                )
        for capture_id in newest:
            row = found.captures[capture_id]
            if capture_id not in capture_bodies and row is not None:
                # Not served by the Payments API (an older sale): the row says enough.
                charges.append(_charge_from_row(row, customer_id))
        charges.sort(key=lambda c: c.created or datetime.min.replace(tzinfo=UTC), reverse=True)
        refunds = [
            _refund(r, capture_id)
            for capture_id, rs in refunds_by_capture.items()
            if capture_id in capture_bodies or capture_id in newest
            for r in rs
        ]
        invoices = sorted(
            (_invoice(i, customer_id) for i in found.invoices.values()),
            key=lambda i: i.created or datetime.min.replace(tzinfo=UTC),
            reverse=True,
        )
        return GatewayProfile(
            gateway=NAME,
            customer=Customer(gateway=NAME, id=customer_id, email=payer.email, name=payer.name),
            charges=tuple(charges),
            refunds=tuple(refunds),
            subscriptions=tuple(_subscription(s) for s in subscriptions if s is not None),
            invoices=tuple(invoices),
        )

    # --- actions -------------------------------------------------------------------------

    async def refund(
        self, charge_id: str, amount: Money, *, reason: str, idempotency_key: str
    ) -> Refund:
        resolved = await self._resolve(charge_id)
        capture_id, charge = charge_id, resolved.charge
        if resolved.kind == "authorization":
            if len(resolved.capture_ids) > 1:
                raise GatewayError(
                    ErrorCode.invalid_state,
                    f"authorization {charge_id} was captured in {len(resolved.capture_ids)} "
                    f"parts ({', '.join(resolved.capture_ids)}): refund one of those captures",
                    gateway=NAME,
                )
            if resolved.capture_ids:
                capture_id = resolved.capture_ids[0]
                charge = (await self._resolve(capture_id)).charge
        elif resolved.body.get("status") == "PENDING":
            reason_code = (resolved.body.get("status_details") or {}).get("reason", "pending")
            raise GatewayError(
                ErrorCode.not_settled,
                f"capture {charge_id} is still pending at PayPal ({reason_code}): "
                "it can be refunded once it completes",
                gateway=NAME,
            )
        try:
            check_refund(charge, amount)
        except GatewayError as refused:
            if refused.code not in (ErrorCode.already_refunded, ErrorCode.amount_too_large):
                raise
            # Perhaps this very key did it: PayPal replays its answer, or refuses.
            replay = await self._post_refund(capture_id, amount, reason, idempotency_key, True)
            if replay is None:
                raise
            return replay
        refund = await self._post_refund(capture_id, amount, reason, idempotency_key, False)
        assert refund is not None
        return refund

    async def _post_refund(
        self, capture_id: str, amount: Money, reason: str, key: str, probe: bool
    ) -> Refund | None:
        try:
            reply = await self._sdk(
                self._sdk_client.payments.refund_captured_payment,
                {
                    "capture_id": capture_id,
                    "paypal_request_id": _request_id(key),
                    "prefer": "return=representation",
                    # Explicit even for a full refund, so a stale read cannot refund more.
                    # The reason stays ours: PayPal's note_to_payer is e-mailed to the payer.
                    "body": {"amount": money_to_paypal(amount)},
                },
                verb="refund",
                what=f"capture {capture_id}",
            )
        except GatewayError as exc:
            if probe and exc.code in (ErrorCode.already_refunded, ErrorCode.amount_too_large):
                return None
            raise
        return _refund(reply.body, capture_id, reason)

    async def capture(
        self, charge_id: str, amount: Money | None, *, idempotency_key: str
    ) -> Charge:
        resolved = await self._resolve(charge_id)
        if resolved.kind != "authorization":
            require_status(resolved.charge, ChargeStatus.authorized, "captured")
        if resolved.body.get("status") == "CAPTURED":
            if not await self._post_capture(charge_id, amount, idempotency_key, True):
                require_status(resolved.charge, ChargeStatus.authorized, "captured")
            return (await self._resolve(charge_id)).charge
        check_capture(resolved.charge, amount)
        await self._post_capture(charge_id, amount, idempotency_key, False)
        return (await self._resolve(charge_id)).charge

    async def _post_capture(
        self, authorization_id: str, amount: Money | None, key: str, probe: bool
    ) -> bool:
        # One capture, final: what is left of the authorization is released, as elsewhere.
        body: Json = {"final_capture": True}
        if amount is not None:
            body["amount"] = money_to_paypal(amount)
        try:
            await self._sdk(
                self._sdk_client.payments.capture_authorized_payment,
                {
                    "authorization_id": authorization_id,
                    "paypal_request_id": _request_id(key),
                    "prefer": "return=representation",
                    "body": body,
                },
                verb="capture",
                what=f"authorization {authorization_id}",
            )
        except GatewayError as exc:
            if probe and exc.raw_code == "AUTHORIZATION_ALREADY_CAPTURED":
                return False
            raise
        return True

    async def void(self, charge_id: str, *, idempotency_key: str) -> Charge:
        resolved = await self._resolve(charge_id)
        if resolved.kind != "authorization":
            require_status(resolved.charge, ChargeStatus.authorized, "voided")
        if resolved.body.get("status") == "VOIDED":
            if not await self._post_void(charge_id, idempotency_key, True):
                require_status(resolved.charge, ChargeStatus.authorized, "voided")
            return (await self._resolve(charge_id)).charge
        require_status(resolved.charge, ChargeStatus.authorized, "voided")
        await self._post_void(charge_id, idempotency_key, False)
        return (await self._resolve(charge_id)).charge

    async def _post_void(self, authorization_id: str, key: str, probe: bool) -> bool:
        try:
            await self._sdk(
                self._sdk_client.payments.void_payment,
                {
                    "authorization_id": authorization_id,
                    "paypal_request_id": _request_id(key),
                    "prefer": "return=representation",
                },
                verb="void",
                what=f"authorization {authorization_id}",
            )
        except GatewayError as exc:
            if probe and exc.raw_code == "PREVIOUSLY_VOIDED":
                return False
            raise
        return True

    async def cancel_subscription(
        self, subscription_id: str, *, at_period_end: bool, reason: str, idempotency_key: str
    ) -> Subscription:
        if at_period_end:
            raise GatewayError(
                ErrorCode.unsupported,
                "PayPal cannot cancel at the end of the billing period: a PayPal subscription "
                "is cancelled at once. Cancel it now instead, or suspend it in PayPal.",
                gateway=NAME,
            )
        marker = _reference(idempotency_key)
        current = await self._subscription_json(subscription_id)
        if current.get("status") in ("CANCELLED", "EXPIRED"):
            return self._cancelled_by(current, marker)
        try:
            await self._sdk(
                self._sdk_client.subscriptions.cancel_subscription,
                {"id": subscription_id, "body": {"reason": _cancel_reason(reason, marker)}},
                verb="cancel",
                what=f"subscription {subscription_id}",
                retry=False,  # no request ID: an unknown outcome is settled by a re-read
            )
        except GatewayError as exc:
            if exc.raw_code != "SUBSCRIPTION_STATUS_INVALID":
                raise
            # Cancelled meanwhile, perhaps by a concurrent run of this same key.
            return self._cancelled_by(await self._subscription_json(subscription_id), marker)
        return _subscription(await self._subscription_json(subscription_id))

    def _cancelled_by(self, body: Json, marker: str) -> Subscription:
        if marker in str(body.get("status_change_note") or ""):
            return _subscription(body)
        raise GatewayError(
            ErrorCode.invalid_state,
            f"subscription {body.get('id')} is already {_subscription(body).status.value}",
            gateway=NAME,
            raw_code=str(body.get("status")),
        )

    async def send_invoice(self, invoice_id: str, *, idempotency_key: str) -> Invoice:
        invoice = await self._invoice_json(invoice_id)
        status = invoice.get("status")
        if status in ("DRAFT", "SCHEDULED"):
            await self._rest(
                "POST",
                f"/v2/invoicing/invoices/{invoice_id}/send",
                json_body={"send_to_recipient": True, "send_to_invoicer": False},
                verb="send",
                what=f"invoice {invoice_id}",
                retry=False,  # no request ID: an unknown outcome is settled by a re-read
            )
            invoice = await self._invoice_json(invoice_id)
        elif status not in ("SENT", "UNPAID", "PARTIALLY_PAID", "PAYMENT_PENDING"):
            raise GatewayError(
                ErrorCode.invalid_state,
                f"invoice {invoice_id} is {str(status).lower()}: there is nothing to send",
                gateway=NAME,
                raw_code=str(status),
            )
        # Already with the customer: sending again would e-mail them twice on a retry.
        return _invoice(invoice, (_recipient_email(invoice) or UNKNOWN_PAYER).lower())

    # --- webhooks ------------------------------------------------------------------------

    async def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> list[GatewayEvent]:
        if not self.settings.webhook_id:
            raise WebhookRejected(
                NAME, "paypal.webhook_id is not configured: deliveries cannot be verified"
            )
        lowered = {k.lower(): v for k, v in headers.items()}
        names = ("id", "time", "sig")
        values = {n: lowered.get(f"paypal-transmission-{n}") for n in names}
        cert_url = lowered.get("paypal-cert-url")
        auth_algo = lowered.get("paypal-auth-algo")
        missing = [f"PAYPAL-TRANSMISSION-{n.upper()}" for n in names if not values[n]]
        missing += [
            h for h, v in (("PAYPAL-CERT-URL", cert_url), ("PAYPAL-AUTH-ALGO", auth_algo)) if not v
        ]
        if missing:
            raise WebhookRejected(NAME, f"delivery without {', '.join(missing)}: not from PayPal")
        sent = _time(values["time"])
        if sent is None:
            raise WebhookRejected(NAME, f"unreadable PAYPAL-TRANSMISSION-TIME {values['time']!r}")
        age = _now() - sent
        if age > WEBHOOK_TOLERANCE or -age > WEBHOOK_TOLERANCE:
            raise WebhookRejected(
                NAME,
                f"stale delivery: sent {sent.isoformat()}, more than "
                f"{int(WEBHOOK_TOLERANCE.total_seconds() // 60)} minutes from now",
            )
        try:
            event = json.loads(body)
        except ValueError:
            raise WebhookRejected(NAME, "delivery body is not JSON") from None
        if not isinstance(event, dict) or not event.get("event_type"):
            raise WebhookRejected(NAME, "delivery body is not a PayPal event")
        fields = {
            "auth_algo": auth_algo,
            "cert_url": cert_url,
            "transmission_id": values["id"],
            "transmission_sig": values["sig"],
            "transmission_time": values["time"],
            "webhook_id": self.settings.webhook_id,
        }
        # The event goes back byte for byte: PayPal's signature covers the body as sent.
        request = (
            b"{"
            + b"".join(
                json.dumps(k).encode() + b":" + json.dumps(v).encode() + b","
                for k, v in fields.items()
            )
            + b'"webhook_event":'
            + body
            + b"}"
        )
        reply = await self._rest(
            "POST",
            "/v1/notifications/verify-webhook-signature",
            content=request,
            verb="verify",
            what=f"webhook delivery {values['id']}",
        )
        status = (reply.body or {}).get("verification_status")
        if status != "SUCCESS":
            raise WebhookRejected(
                NAME, f"PayPal did not verify the delivery's signature ({status or 'no answer'})"
            )
        return [_event(event)]


# --- PayPal objects to ours ----------------------------------------------------------------

_CAPTURE_STATUS = {
    "COMPLETED": ChargeStatus.succeeded,
    "PARTIALLY_REFUNDED": ChargeStatus.partially_refunded,
    "REFUNDED": ChargeStatus.refunded,
    # Pending funds (an e-check, a review): shown as paid, with nothing captured yet.
    "PENDING": ChargeStatus.succeeded,
    "DECLINED": ChargeStatus.failed,
    "FAILED": ChargeStatus.failed,
}
_AUTHORIZATION_STATUS = {
    "CREATED": ChargeStatus.authorized,
    "PENDING": ChargeStatus.authorized,
    "PARTIALLY_CAPTURED": ChargeStatus.authorized,
    "VOIDED": ChargeStatus.voided,
    "DENIED": ChargeStatus.failed,
    "EXPIRED": ChargeStatus.voided,
}
_SUBSCRIPTION_STATUS = {
    "APPROVAL_PENDING": SubscriptionStatus.incomplete,
    "APPROVED": SubscriptionStatus.incomplete,
    "ACTIVE": SubscriptionStatus.active,
    # Suspended (by the merchant, or after too many failed payments): no longer billed.
    "SUSPENDED": SubscriptionStatus.unpaid,
    "CANCELLED": SubscriptionStatus.canceled,
    "EXPIRED": SubscriptionStatus.canceled,
}
_INVOICE_STATUS = {
    "DRAFT": InvoiceStatus.draft,
    "SCHEDULED": InvoiceStatus.draft,
    "SENT": InvoiceStatus.open,
    "UNPAID": InvoiceStatus.open,
    "PARTIALLY_PAID": InvoiceStatus.open,
    "PAYMENT_PENDING": InvoiceStatus.open,
    "PAID": InvoiceStatus.paid,
    "MARKED_AS_PAID": InvoiceStatus.paid,
    "REFUNDED": InvoiceStatus.paid,
    "PARTIALLY_REFUNDED": InvoiceStatus.paid,
    "MARKED_AS_REFUNDED": InvoiceStatus.paid,
    "CANCELLED": InvoiceStatus.void,
}
_REFUND_STATUS = {
    "COMPLETED": "succeeded",
    "PENDING": "pending",
    "FAILED": "failed",
    "CANCELLED": "canceled",
}
_INTERVALS = {"DAY": "day", "WEEK": "week", "MONTH": "month", "YEAR": "year"}


def _now() -> datetime:
    return datetime.now(UTC)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _windows(start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
    """[start, end] cut into ranges Transaction Search accepts (at most 31 days)."""
    cursor = start
    while cursor < end:
        stop = min(cursor + SEARCH_WINDOW, end)
        yield cursor, stop
        cursor = stop


def _request_id(key: str) -> str:
    """The idempotency key as a PayPal-Request-Id; long or odd keys are hashed (stable)."""
    if len(key) <= 64 and key.isascii() and key.isprintable() and " " not in key:
        return key
    return "cd-" + hashlib.sha256(key.encode()).hexdigest()[:48]


def _reference(key: str) -> str:
    return "cd:" + hashlib.sha256(key.encode()).hexdigest()[:12]


def _cancel_reason(reason: str, marker: str) -> str:
    # PayPal caps the reason at 128 characters; the marker must survive whole.
    room = 128 - len(marker) - 3
    text = " ".join(reason.split()) or "cancelled"
    if len(text) > room:
        text = text[: room - 1] + "…"
    return f"{text} ({marker})"


def _info(row: Json) -> Json:
    return row.get("transaction_info") or {}


def _row_order(row: Json | None) -> str | None:
    """The order a search row belongs to, when its reference says so."""
    info = _info(row) if row else {}
    if info.get("paypal_reference_id_type") == "ODR":
        return info.get("paypal_reference_id")
    return None


def _related(payment: Json, name: str) -> str | None:
    return ((payment.get("supplementary_data") or {}).get("related_ids") or {}).get(name)


def _row_time(row: Json | None) -> datetime | None:
    return _time(_info(row).get("transaction_initiation_date")) if row else None


def _full_name(name: Any) -> str | None:
    if not isinstance(name, dict):
        return None
    full = name.get("full_name") or name.get("alternate_full_name")
    if full:
        return str(full)
    parts = [name.get("given_name"), name.get("surname")]
    return " ".join(str(p) for p in parts if p) or None


def _row_payer(row: Json) -> _Payer:
    payer = row.get("payer_info") or {}
    return _Payer(
        payer.get("account_id"), payer.get("email_address"), _full_name(payer.get("payer_name"))
    )


def _payers(rows: list[Json], email: str) -> list[_Found]:
    """Rows of payers with this e-mail (any case), grouped by payer ID, latest payer first."""
    wanted = email.strip().lower()
    refunds: dict[str, list[Json]] = {}
    for row in rows:
        info = _info(row)
        if str(info.get("transaction_event_code", "")).startswith("T11") and info.get(
            "paypal_reference_id"
        ):
            refunds.setdefault(info["paypal_reference_id"], []).append(row)
    found: dict[str, _Found] = {}
    latest: dict[str, datetime] = {}
    for row in rows:
        payer = _row_payer(row)
        if (payer.email or "").strip().lower() != wanted:
            continue
        key = payer.id or wanted
        entry = found.setdefault(key, _Found(payer))
        entry.payer.name = entry.payer.name or payer.name
        info = _info(row)
        when = _row_time(row) or datetime.min.replace(tzinfo=UTC)
        latest[key] = max(latest.get(key, when), when)
        code = str(info.get("transaction_event_code", ""))
        txn = info.get("transaction_id")
        amount = info.get("transaction_amount") or {}
        if info.get("paypal_reference_id_type") == "SUB" and info.get("paypal_reference_id"):
            entry.subscriptions.add(info["paypal_reference_id"])
        if not txn:
            continue
        if code.startswith("T00") and not str(amount.get("value", "")).startswith("-"):
            entry.captures[txn] = row
            if txn in refunds:
                entry.row_refunds[txn] = refunds[txn]
        elif code in ("T1300", "T1301"):
            entry.authorizations[txn] = row
    return sorted(found.values(), key=lambda f: latest[f.payer.id or wanted], reverse=True)


def _order_payments(order: Json | None, kind: str) -> list[Json]:
    if not order:
        return []
    return [
        p
        for unit in order.get("purchase_units") or []
        for p in (unit.get("payments") or {}).get(kind) or []
    ]


def _up(payment: Json) -> str | None:
    """The ID a payment's `up` link points at: a refund's capture, a capture's authorization."""
    for link in payment.get("links") or []:
        if link.get("rel") == "up" and link.get("href"):
            return str(link["href"]).rstrip("/").rsplit("/", 1)[-1]
    return None


def _order_refunds(order: Json | None) -> dict[str, list[Json]]:
    refunds: dict[str, list[Json]] = {}
    for refund in _order_payments(order, "refunds"):
        capture_id = _up(refund)
        if capture_id:
            refunds.setdefault(capture_id, []).append(refund)
    return refunds


def _authorization_captures(order: Json | None, authorization_id: str) -> list[Json]:
    return [c for c in _order_payments(order, "captures") if _up(c) == authorization_id]


def _order_payer(order: Json | None) -> _Payer:
    if not order:
        return _Payer(None, None)
    wallet = (order.get("payment_source") or {}).get("paypal") or {}
    payer = order.get("payer") or {}
    return _Payer(
        wallet.get("account_id") or payer.get("payer_id"),
        wallet.get("email_address") or payer.get("email_address"),
        _full_name(wallet.get("name") or payer.get("name")),
    )


def _refunded(refunds: list[Json], currency: str) -> int:
    return sum(
        money_from_paypal(r["amount"]).minor
        for r in refunds
        if r.get("status", "COMPLETED") in ("COMPLETED", "PENDING")
        and r.get("amount")
        and r["amount"].get("currency_code") == currency
    )


def _capture_charge(body: Json, refunds: list[Json], customer_id: str | None) -> Charge:
    amount = money_from_paypal(body["amount"])
    status_text = str(body.get("status"))
    status = _CAPTURE_STATUS.get(status_text, ChargeStatus.failed)
    captured = 0 if status == ChargeStatus.failed or status_text == "PENDING" else amount.minor
    refunded = _refunded(refunds, amount.currency)
    if status == ChargeStatus.refunded:
        refunded = amount.minor
    elif status == ChargeStatus.succeeded:
        refunded = 0
    reason = (body.get("status_details") or {}).get("reason")
    return Charge(
        gateway=NAME,
        id=body["id"],
        customer_id=customer_id,
        amount=amount,
        amount_captured=captured,
        amount_refunded=min(refunded, captured),
        status=status,
        description=f"pending at PayPal ({reason})" if status_text == "PENDING" else None,
        created=_time(body.get("create_time")),
        failure_message=(reason or f"{status_text.lower()} at PayPal")
        if status == ChargeStatus.failed
        else None,
    )


def _authorization_charge(
    body: Json,
    captures: list[Json],
    refunds_by_capture: Mapping[str, list[Json]],
    customer_id: str | None,
) -> Charge:
    amount = money_from_paypal(body["amount"])
    status_text = str(body.get("status"))
    captured = sum(
        money_from_paypal(c["amount"]).minor for c in captures if c.get("status") != "DECLINED"
    )
    description = None
    if status_text == "CAPTURED":
        refunded = sum(
            _refunded(refunds_by_capture.get(c["id"], []), amount.currency) for c in captures
        )
        refunded = min(refunded, captured)
        status = (
            ChargeStatus.refunded
            if captured and refunded >= captured
            else ChargeStatus.partially_refunded
            if refunded
            else ChargeStatus.succeeded
        )
        ids = ", ".join(c["id"] for c in captures)
        description = f"captured as {ids}" if ids else None
        return Charge(
            gateway=NAME,
            id=body["id"],
            customer_id=customer_id,
            amount=amount,
            amount_captured=captured,
            amount_refunded=refunded,
            status=status,
            description=description,
            created=_time(body.get("create_time")),
        )
    status = _AUTHORIZATION_STATUS.get(status_text, ChargeStatus.failed)
    if status_text == "PARTIALLY_CAPTURED":
        # What is left to capture; the captured part is shown by its captures.
        amount = Money(minor=max(amount.minor - captured, 0), currency=amount.currency)
        description = "partly captured as " + ", ".join(c["id"] for c in captures)
    return Charge(
        gateway=NAME,
        id=body["id"],
        customer_id=customer_id,
        amount=amount,
        status=status,
        description=description,
        created=_time(body.get("create_time")),
        failure_message=f"{status_text.lower()} at PayPal"
        if status == ChargeStatus.failed
        else None,
    )


def _charge_from_row(row: Json, customer_id: str | None) -> Charge:
    """A payment PayPal's Payments API does not serve (an older sale), from its search row."""
    info = _info(row)
    amount = money_from_paypal(info["transaction_amount"])
    status = {
        "S": ChargeStatus.succeeded,
        "V": ChargeStatus.refunded,
        "P": ChargeStatus.succeeded,
        "D": ChargeStatus.failed,
    }.get(str(info.get("transaction_status")), ChargeStatus.failed)
    captured = 0 if info.get("transaction_status") in ("P", "D") else amount.minor
    return Charge(
        gateway=NAME,
        id=str(info["transaction_id"]),
        customer_id=customer_id,
        amount=amount,
        amount_captured=captured,
        amount_refunded=captured if status == ChargeStatus.refunded else 0,
        status=status,
        description=info.get("transaction_subject"),
        created=_row_time(row),
    )


def _refund_json_from_row(row: Json) -> Json:
    info = _info(row)
    value = str(info["transaction_amount"]["value"]).lstrip("-")
    return {
        "id": info.get("transaction_id"),
        "status": {"S": "COMPLETED", "P": "PENDING", "D": "FAILED"}.get(
            str(info.get("transaction_status")), "COMPLETED"
        ),
        "amount": {"currency_code": info["transaction_amount"]["currency_code"], "value": value},
        "create_time": info.get("transaction_initiation_date"),
    }


def _refund(body: Json, capture_id: str, reason: str | None = None) -> Refund:
    return Refund(
        gateway=NAME,
        id=body["id"],
        charge_id=capture_id,
        amount=money_from_paypal(body["amount"]),
        status=_REFUND_STATUS.get(str(body.get("status")), str(body.get("status")).lower()),
        reason=reason or body.get("note_to_payer"),
        created=_time(body.get("create_time")),
    )


def _subscription(body: Json) -> Subscription:
    billing = body.get("billing_info") or {}
    subscriber = body.get("subscriber") or {}
    price, interval = _plan_price(body)
    if price is None:
        last = (billing.get("last_payment") or {}).get("amount")
        balance = billing.get("outstanding_balance")
        price = (
            money_from_paypal(last)
            if last
            else Money(minor=0, currency=balance["currency_code"])
            if balance
            else Money(minor=0, currency="USD")
        )
    status_text = str(body.get("status"))
    status = _SUBSCRIPTION_STATUS.get(status_text, SubscriptionStatus.incomplete)
    if status == SubscriptionStatus.active:
        if any(
            c.get("tenure_type") == "TRIAL" and int(c.get("cycles_remaining") or 0) > 0
            for c in billing.get("cycle_executions") or []
        ):
            status = SubscriptionStatus.trialing
        elif int(billing.get("failed_payments_count") or 0) > 0:
            status = SubscriptionStatus.past_due
    cancelled = status_text in ("CANCELLED", "EXPIRED")
    return Subscription(
        gateway=NAME,
        id=body["id"],
        customer_id=subscriber.get("payer_id") or subscriber.get("email_address") or body["id"],
        plan=str((body.get("plan") or {}).get("name") or body.get("plan_id") or "unknown plan"),
        status=status,
        amount=price,
        interval=interval,
        current_period_end=_time(billing.get("next_billing_time")),
        canceled_at=_time(body.get("status_update_time")) if cancelled else None,
    )


def _plan_price(body: Json) -> tuple[Money | None, str]:
    """The regular cycle's price and interval, from the plan details (`fields=plan`)."""
    cycles = (body.get("plan") or {}).get("billing_cycles") or []
    regular = [c for c in cycles if c.get("tenure_type") == "REGULAR"] or cycles
    if not regular:
        return None, "month"
    cycle = regular[-1]
    fixed = (cycle.get("pricing_scheme") or {}).get("fixed_price")
    frequency = cycle.get("frequency") or {}
    unit = _INTERVALS.get(str(frequency.get("interval_unit")), "month")
    count = int(frequency.get("interval_count") or 1)
    interval = unit if count == 1 else f"{count} {unit}s"
    if not fixed:
        return None, interval
    price = money_from_paypal(fixed)
    quantity = Decimal(str(body.get("quantity") or "1"))
    if quantity != 1 and quantity == quantity.to_integral_value():
        price = Money(minor=price.minor * int(quantity), currency=price.currency)
    return price, interval


def _recipient_email(invoice: Json) -> str | None:
    for recipient in invoice.get("primary_recipients") or []:
        email = (recipient.get("billing_info") or {}).get("email_address")
        if email:
            return str(email)
    return None


def _recipient_name(invoice: Json) -> str | None:
    for recipient in invoice.get("primary_recipients") or []:
        name = _full_name((recipient.get("billing_info") or {}).get("name"))
        if name:
            return name
    return None


def _invoice(body: Json, customer_id: str) -> Invoice:
    detail = body.get("detail") or {}
    metadata = detail.get("metadata") or {}
    currency = str(detail.get("currency_code") or (body.get("amount") or {}).get("currency_code"))
    total = (
        money_from_paypal(body["amount"])
        if body.get("amount")
        else Money(minor=0, currency=currency)
    )
    payments = body.get("payments") or {}
    paid = (
        money_from_paypal(payments["paid_amount"])
        if payments.get("paid_amount")
        else Money(minor=0, currency=total.currency)
    )
    transactions = payments.get("transactions") or []
    due = (detail.get("payment_term") or {}).get("due_date")
    return Invoice(
        gateway=NAME,
        id=body["id"],
        customer_id=customer_id,
        number=detail.get("invoice_number"),
        status=_INVOICE_STATUS.get(str(body.get("status")), InvoiceStatus.open),
        amount_due=total,
        amount_paid=paid,
        due_date=_time(due),
        created=_time(metadata.get("create_time")),
        charge_id=transactions[0].get("payment_id") if transactions else None,
        hosted_url=metadata.get("recipient_view_url"),
    )


# --- webhook events ----------------------------------------------------------------------

_EVENT_KINDS = {
    "PAYMENT.CAPTURE.REFUNDED": EventKind.refund,
    "PAYMENT.CAPTURE.REVERSED": EventKind.refund,
    "PAYMENT.SALE.REFUNDED": EventKind.refund,
    "PAYMENT.SALE.REVERSED": EventKind.refund,
    "PAYMENT.CAPTURE.COMPLETED": EventKind.payment_succeeded,
    "PAYMENT.SALE.COMPLETED": EventKind.payment_succeeded,
    "PAYMENT.CAPTURE.DENIED": EventKind.payment_failed,
    "PAYMENT.CAPTURE.DECLINED": EventKind.payment_failed,
    "PAYMENT.SALE.DENIED": EventKind.payment_failed,
    "BILLING.SUBSCRIPTION.PAYMENT.FAILED": EventKind.payment_failed,
    "CUSTOMER.DISPUTE.CREATED": EventKind.dispute_created,
    "INVOICING.INVOICE.PAID": EventKind.invoice_paid,
    "BILLING.SUBSCRIPTION.CANCELLED": EventKind.subscription_canceled,
    "BILLING.SUBSCRIPTION.EXPIRED": EventKind.subscription_canceled,
}


def _event_money(amount: Any) -> Money | None:
    """Payments v2 money, or the older `{"total", "currency"}` of sale events."""
    if not isinstance(amount, dict):
        return None
    if "currency_code" in amount and "value" in amount:
        return money_from_paypal(amount)
    if "currency" in amount and "total" in amount:
        return money_from_paypal({"currency_code": amount["currency"], "value": amount["total"]})
    return None


def _event(event: Json) -> GatewayEvent:
    raw_type = str(event["event_type"])
    resource = event.get("resource") or {}
    kind = _EVENT_KINDS.get(raw_type)
    if kind is None:
        kind = (
            EventKind.subscription_updated
            if raw_type.startswith("BILLING.SUBSCRIPTION.")
            else EventKind.other
        )
    related_ids = (resource.get("supplementary_data") or {}).get("related_ids") or {}
    object_id = str(resource.get("id") or "")
    related: str | None = None
    customer: str | None = None
    amount = _event_money(resource.get("amount"))
    status = resource.get("status") or resource.get("state")
    if raw_type.startswith("PAYMENT.CAPTURE.") or raw_type.startswith("PAYMENT.SALE."):
        if kind == EventKind.refund:
            related = related_ids.get("capture_id") or resource.get("sale_id") or _up(resource)
        else:
            related = related_ids.get("authorization_id") or related_ids.get("order_id")
            if raw_type == "PAYMENT.CAPTURE.COMPLETED" and related_ids.get("authorization_id"):
                kind = EventKind.capture  # an authorization was captured
            if raw_type.startswith("PAYMENT.SALE."):
                related = resource.get("billing_agreement_id") or related
    elif raw_type.startswith("CUSTOMER.DISPUTE."):
        object_id = str(resource.get("dispute_id") or object_id)
        disputed = (resource.get("disputed_transactions") or [{}])[0]
        related = disputed.get("seller_transaction_id")
        amount = _event_money(resource.get("dispute_amount"))
        customer = (disputed.get("buyer") or {}).get("payer_id")
    elif raw_type.startswith("INVOICING.INVOICE."):
        invoice = resource.get("invoice") or resource
        object_id = str(invoice.get("id") or object_id)
        amount = _event_money(invoice.get("amount"))
        status = invoice.get("status")
        transactions = (invoice.get("payments") or {}).get("transactions") or []
        related = transactions[0].get("payment_id") if transactions else None
    elif raw_type.startswith("BILLING.SUBSCRIPTION."):
        customer = (resource.get("subscriber") or {}).get("payer_id")
        last = (resource.get("billing_info") or {}).get("last_failed_payment") or {}
        amount = _event_money(last.get("amount")) or amount
    created = _time(event.get("create_time")) or _now()
    return GatewayEvent(
        gateway=NAME,
        id=str(event.get("id") or ""),
        kind=kind,
        raw_type=raw_type,
        created=created,
        object_id=object_id,
        related_id=related,
        customer_id=customer,
        amount=amount,
        status=str(status) if status else None,
        detail={"summary": event.get("summary")} if event.get("summary") else {},
    )
