"""WooCommerce transport: the REST API v3 over httpx, its authentication, paging and errors.

- Over HTTPS the consumer key and secret go as Basic auth. Over plain HTTP WooCommerce
  accepts only OAuth 1.0a one-legged signatures: oauthlib signs the exact URL httpx is
  about to send, with HMAC-SHA256 and a fresh nonce, and the `oauth_*` parameters travel
  in the query (WordPress cannot read the Authorization header on every server). The
  secret itself never leaves over plain HTTP.
- Lists page at 10 items by default: `pages` asks for 100 (the most WooCommerce gives)
  and follows `X-WP-TotalPages`.
- Reads are retried on timeouts, 429 and 5xx. Writes are sent once: WooCommerce has no
  idempotency key, so the gateway settles an unknown outcome by reading back.
- WooCommerce's answers become our GatewayError family here, and nowhere else; its own
  code (`woocommerce_rest_cannot_create_order_refund`) and words are kept beside ours.
"""

from __future__ import annotations

import asyncio
import random
import re
import ssl
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from oauthlib.oauth1 import SIGNATURE_HMAC_SHA256, SIGNATURE_TYPE_QUERY
from oauthlib.oauth1 import Client as OAuth1Client

from bot.gateways.base import ErrorCode, GatewayError
from bot.gateways.woocommerce.mapping import NAME, Json
from bot.settings import ConfigError, WooCommerceSettings

API_PATH = "/wp-json/wc/v3"
PAGE_SIZE = 100  # WooCommerce's largest `per_page`
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
CREDENTIALS_HINT = (
    "check woocommerce.consumer_key and woocommerce.consumer_secret, that the key has "
    "Read/Write permissions, and that its user is a Shop manager or an Administrator"
)
_NOT_FOUND = re.compile(r"invalid_(?:[a-z_]*_)?id$|_invalid_id$")
_TAGS = re.compile(r"<[^>]+>")
_MESSAGE_CHARS = 200


@dataclass(frozen=True)
class Reply:
    """One HTTP answer from the store."""

    status: int
    body: Any
    headers: Mapping[str, str]

    def error(self) -> tuple[str | None, str | None]:
        """WordPress's `code` and `message`, the message as plain text."""
        if not isinstance(self.body, dict):
            return None, None
        code = self.body.get("code")
        message = self.body.get("message")
        return (str(code) if code else None), (plain(message) if message else None)

    @property
    def total_pages(self) -> int:
        """`X-WP-TotalPages` of a list (1 where the store did not say)."""
        try:
            return int(self.headers.get("x-wp-totalpages", "1"))
        except ValueError:
            return 1


def plain(text: Any) -> str:
    """Store-written text (messages may carry HTML) as one bounded line."""
    words = " ".join(_TAGS.sub(" ", str(text)).split())
    return words if len(words) <= _MESSAGE_CHARS else words[: _MESSAGE_CHARS - 1] + "…"


class OAuth1Query(httpx.Auth):
    """OAuth 1.0a one-legged signing, as WooCommerce verifies it over plain HTTP.

    oauthlib signs the request's final URL (query included); the signed URL, with the
    `oauth_*` parameters added to its query, replaces it. Every send is signed afresh, so
    a retry never reuses a nonce.
    """

    def __init__(self, consumer_key: str, consumer_secret: str) -> None:
        self._signer = OAuth1Client(
            consumer_key,
            client_secret=consumer_secret,
            signature_method=SIGNATURE_HMAC_SHA256,
            signature_type=SIGNATURE_TYPE_QUERY,
        )

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        signed, _, _ = self._signer.sign(str(request.url), request.method)
        request.url = httpx.URL(signed)
        yield request


def error_of(reply: Reply, verb: str, what: str) -> GatewayError:
    """A refusal or failure of the store, in our words, with WooCommerce's kept."""
    raw_code, raw_message = reply.error()
    status = reply.status
    if status in (401, 403):
        code = ErrorCode.rejected
        message = f"WooCommerce refused our API key ({raw_message or status}): {CREDENTIALS_HINT}"
    elif 300 <= status < 400:
        code = ErrorCode.rejected
        where = reply.headers.get("location", "elsewhere")
        message = (
            f"the store answered {verb} {what} with a redirect to {plain(where)}: "
            "set woocommerce.store_url to the store's address as WordPress knows it"
        )
    elif status == 404 or (raw_code and _NOT_FOUND.search(raw_code)):
        code = ErrorCode.not_found
        message = f"WooCommerce has no {what}"
    elif status == 429:
        code = ErrorCode.rate_limited
        message = f"the store is rate-limiting us ({verb} {what}): try again in a minute"
    elif status >= 500:
        code = ErrorCode.unavailable
        message = f"WooCommerce failed to {verb} {what} (HTTP {status}): try again shortly"
    else:
        code = ErrorCode.rejected
        message = f"WooCommerce refused to {verb} {what}: {raw_message or raw_code or status}"
    return GatewayError(
        code, message, gateway=NAME, raw_code=raw_code or str(status), raw_message=raw_message
    )


class WooCommerceAPI:
    """One store's REST API: the httpx client, its authentication and every call's retries.

    `backoff` is the first retry's mean pause in seconds (doubling after).
    """

    def __init__(self, settings: WooCommerceSettings, *, backoff: float = 0.5) -> None:
        if (
            settings.store_url is None
            or not settings.consumer_key
            or settings.consumer_secret is None
        ):
            raise GatewayError(
                ErrorCode.rejected,
                "WooCommerce needs woocommerce.store_url, consumer_key and consumer_secret",
                gateway=NAME,
            )
        self.settings = settings
        self.backoff = backoff
        self.store_url = str(settings.store_url).rstrip("/")
        self.https = self.store_url.startswith("https://")
        secret = settings.consumer_secret.get_secret_value()
        auth: httpx.Auth = (
            httpx.BasicAuth(settings.consumer_key, secret)
            if self.https
            else OAuth1Query(settings.consumer_key, secret)
        )
        verify: ssl.SSLContext | bool = True
        if settings.ca_file is not None:
            try:
                verify = ssl.create_default_context(cafile=str(settings.ca_file))
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(
                    f"woocommerce.ca_file: {settings.ca_file} is not a readable PEM bundle ({exc})"
                ) from None
        self._http = httpx.AsyncClient(
            base_url=self.store_url + API_PATH + "/",
            auth=auth,
            verify=verify,
            timeout=settings.timeout,
            follow_redirects=False,  # a redirect would carry the credentials elsewhere
            headers={"Accept": "application/json", "User-Agent": "ChargeDesk"},
        )

    async def close(self) -> None:
        if not self._http.is_closed:
            await self._http.aclose()

    def _delay(self, attempt: int) -> float:
        # Full jitter, so a burst of lookups does not retry in lockstep.
        return random.uniform(0, self.backoff * 2 ** (attempt - 1))

    async def _send(
        self, method: str, path: str, *, params: Mapping[str, Any] | None, body: Any, seconds: float
    ) -> Reply:
        response = await self._http.request(
            method, path, params=dict(params or {}), json=body, timeout=seconds
        )
        try:
            parsed = response.json() if response.content else None
        except ValueError:
            parsed = None  # WordPress's fatal error page, a proxy's HTML
        return Reply(status=response.status_code, body=parsed, headers=response.headers)

    async def get(self, path: str, params: Mapping[str, Any] | None = None, *, what: str) -> Reply:
        """A read, retried on timeouts, 429 and 5xx; any answer >= 300 raises GatewayError."""
        attempt = 0
        while True:
            try:
                reply = await self._send(
                    "GET", path, params=params, body=None, seconds=self.settings.timeout
                )
            except httpx.TransportError as exc:
                if attempt < self.settings.max_retries:
                    attempt += 1
                    await asyncio.sleep(self._delay(attempt))
                    continue
                raise _transport_error(exc, "read", what) from None
            if reply.status < 300:
                if not isinstance(reply.body, dict | list):
                    raise GatewayError(
                        ErrorCode.unavailable,
                        f"the store answered ({what}) with a page that is not the REST API's JSON: "
                        "a maintenance mode, a cache or a security plugin may stand in the way",
                        gateway=NAME,
                        raw_code=str(reply.status),
                    )
                return reply
            if reply.status in RETRY_STATUSES and attempt < self.settings.max_retries:
                attempt += 1
                await asyncio.sleep(self._delay(attempt))
                continue
            raise error_of(reply, "read", what)

    async def pages(
        self, path: str, params: Mapping[str, Any] | None = None, *, what: str, limit: int
    ) -> list[Json]:
        """Every item of a list, 100 a page, up to `limit` items."""
        items: list[Json] = []
        page = 1
        while len(items) < limit:
            reply = await self.get(
                path, {**(params or {}), "per_page": PAGE_SIZE, "page": page}, what=what
            )
            batch = reply.body if isinstance(reply.body, list) else []
            items.extend(batch)
            if page >= reply.total_pages or len(batch) < PAGE_SIZE:
                break
            page += 1
        return items[:limit]

    async def write(self, method: str, path: str, body: Json, *, verb: str, what: str) -> Reply:
        """A write, sent once (the caller reads back an unknown outcome); the answer is
        returned whatever it is, for the caller to read WooCommerce's refusals."""
        try:
            return await self._send(
                method, path, params=None, body=body, seconds=self.settings.write_timeout
            )
        except httpx.TransportError as exc:
            raise _transport_error(exc, verb, what) from None


def _transport_error(exc: httpx.TransportError, verb: str, what: str) -> GatewayError:
    if isinstance(exc, httpx.TimeoutException):
        return GatewayError(
            ErrorCode.timeout, f"WooCommerce did not answer in time ({verb} {what})", gateway=NAME
        )
    if isinstance(exc, httpx.ConnectError) and "CERTIFICATE" in str(exc).upper():
        return GatewayError(
            ErrorCode.unavailable,
            "the store's TLS certificate is not trusted: fix it, or set woocommerce.ca_file "
            "to the authority that signed it",
            gateway=NAME,
        )
    return GatewayError(
        ErrorCode.unavailable,
        f"WooCommerce could not be reached ({verb} {what}: {type(exc).__name__})",
        gateway=NAME,
    )
