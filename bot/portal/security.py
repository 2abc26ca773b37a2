"""What guards every billing page: response headers, CSRF tokens, form reading, rate limits.

- Headers: a strict Content-Security-Policy (no scripts at all; styles only from
  us), no framing, no Referer (a link's token never leaks to another site), no
  caching of anything with customer data, HSTS behind https.
- CSRF: a random token per session, in a hidden field of every form, compared
  in constant time on every POST; a POST from another site is refused too.
- Forms are read by hand (URL-encoded only, at most FORM_LIMIT bytes): no
  multipart parser, nothing to upload.
- Rate limits are counters in Redis per hashed key, shared by every web process.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.services import Services

FORM_LIMIT = 64 * 1024  # a 2,000-character question in Japanese, percent-encoded, fits
FORM_FIELDS = 20
CSRF_FIELD = "csrf"


class BadForm(Exception):
    """A POST body that is not a small URL-encoded form."""


class SecurityHeaders:
    """ASGI middleware: the billing pages' security headers on every response."""

    def __init__(self, app: ASGIApp, *, https: bool) -> None:
        self.app = app
        self.https = https
        # A form may lead to the gateway's own pages (card update, payment): they are https,
        # or a local emulator on plain http in development.
        targets = "https:" if https else "http: https:"
        self.policy = (
            "default-src 'none'; style-src 'self'; img-src 'self'; "
            f"form-action 'self' {targets}; frame-ancestors 'none'; base-uri 'none'"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Content-Security-Policy"] = self.policy
                headers["X-Frame-Options"] = "DENY"
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "no-referrer"
                headers["Cross-Origin-Opener-Policy"] = "same-origin"
                headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
                if "cache-control" not in headers:
                    headers["Cache-Control"] = "no-store"
                if self.https:
                    headers["Strict-Transport-Security"] = "max-age=31536000"
            await send(message)

        await self.app(scope, receive, with_headers)


async def read_form(request: Request) -> dict[str, str]:
    """A URL-encoded form's fields (the first value of each); BadForm for anything else."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise BadForm(f"forms are URL-encoded, not {kind or 'untyped'}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > FORM_LIMIT:
            raise BadForm(f"a form has at most {FORM_LIMIT} bytes")
    try:
        pairs = parse_qsl(
            body.decode("latin-1"),
            keep_blank_values=True,
            encoding="utf-8",
            errors="replace",
            max_num_fields=FORM_FIELDS,
        )
    except ValueError as exc:
        raise BadForm(str(exc)) from None
    fields: dict[str, str] = {}
    for name, value in pairs:
        fields.setdefault(name, value)
    return fields


def csrf_token(session: dict[str, Any]) -> str:
    """The session's CSRF token, made on first use (only pages with a form need one)."""
    token = session.get(CSRF_FIELD)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[CSRF_FIELD] = token
    return token


def csrf_ok(request: Request, form: Mapping[str, str], base_url: str) -> bool:
    """Does this POST come from one of our own forms, in this session?"""
    expected = request.session.get(CSRF_FIELD)
    given = form.get(CSRF_FIELD, "")
    if not isinstance(expected, str) or not hmac.compare_digest(expected, given):
        return False
    # Belt and braces: browsers name the site a form was sent from. With our no-referrer
    # policy a same-origin POST says `Origin: null`; another site's says its own origin.
    if request.headers.get("sec-fetch-site") == "cross-site":
        return False
    origin = request.headers.get("origin")
    if origin and origin != "null":
        ours = {_origin(base_url), f"{request.url.scheme}://{request.url.netloc}"}
        return origin in ours
    return True


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def client_ip(request: Request) -> str:
    """The client's address (uvicorn resolves X-Forwarded-For from trusted proxies)."""
    return request.client.host if request.client else "unknown"


def _key(services: Services, bucket: str, who: str) -> str:
    digest = hashlib.sha256(who.encode()).hexdigest()[:32]
    return services.key("portal-limit", bucket, digest)


async def spend(services: Services, bucket: str, who: str, per_hour: int) -> bool:
    """Count one attempt; False once `who` made more than `per_hour` in this hour."""
    key = _key(services, bucket, who)
    count = await services.redis.incr(key)
    if count == 1:
        await services.redis.expire(key, 3600)
    return count <= per_hour


async def exhausted(services: Services, bucket: str, who: str, per_hour: int) -> bool:
    """Has `who` used up this hour's attempts (without counting one)?"""
    value = await services.redis.get(_key(services, bucket, who))
    return value is not None and int(value) >= per_hour
