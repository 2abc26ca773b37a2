"""What guards every panel page: who may frame it, the response headers, CSRF, form reading.

- Framing: `Content-Security-Policy: frame-ancestors` lists exactly the helpdesks whose
  panel entry is configured, and `[panel] frame_ancestors`; with none, `'none'`:
  Zendesk `https://<subdomain>.zendesk.com` (once its app key and audience are set),
  Freshdesk `https://<domain>` and the origins Freshworks serves app pages from (the panel
  is a frame inside the app's own frame; once `panel_secret` is set), Front
  `https://*.frontapp.com https://*.frontapplication.com` as Front documents for plugins,
  and `'self'` (the plugin page frames the panel; once `plugin_auth_secret` is set).
  A browser refuses to show the panel inside any other site's page.
- The rest of the policy: no scripts at all, styles and images only from us, forms only
  to us. Two loader pages alone (`loaders.py`) may run scripts, and only the ones they name
  (`allow`): ours from /panel/static and their helpdesk's published SDK.
  No Referer leaves (`no-referrer`), nothing is cached (`no-store`).
- CSRF: every POST carries the session's token (`session.csrf_token`) and must come from
  our own page: `Sec-Fetch-Site` other than same-origin, or an `Origin` that is not ours,
  is refused whatever the token says. (Our `no-referrer` policy makes a browser send
  `Origin: null` for our own forms, so null is let through to the token check.)
- Forms are read by hand: URL-encoded only, small, a few fields.
"""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.helpdesk.zendesk import panel_entry as zendesk_entry
from bot.panel.session import PanelSession, csrf_token
from bot.settings import Settings

log = logging.getLogger(__name__)

FORM_LIMIT = 16 * 1024
FORM_FIELDS = 20
CSRF_FIELD = "csrf"
# dev.frontapp.com/docs/security, "Setting a Content Security Policy".
FRONT = ("https://*.frontapp.com", "https://*.frontapplication.com")
SELF = "'self'"
# A Zendesk subdomain or a Freshdesk domain goes into a header: only a plain host name may.
_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_SUBDOMAIN = re.compile(_LABEL)
_DOMAIN = re.compile(rf"{_LABEL}(\.{_LABEL})+")
# What a page may name in `allow`: 'self', or a URL the settings validated (no space, no `;`).
_SOURCE = re.compile(r"'self'|https?://[A-Za-z0-9.:-]+(/[A-Za-z0-9._~%/-]*)?")
_ALLOWANCE = "chargedesk.panel.allowance"  # the ASGI scope key `allow` writes


@dataclass(frozen=True)
class Allowance:
    """What one page may load beyond the panel's policy: its scripts, its frames."""

    scripts: tuple[str, ...] = ()
    frames: tuple[str, ...] = ()


def allow(request: Request, *, scripts: tuple[str, ...] = (), frames: tuple[str, ...] = ()) -> None:
    """Let this one response run `scripts` and frame `frames` (CSP sources); no other page."""
    for source in (*scripts, *frames):
        if not _SOURCE.fullmatch(source):
            raise ValueError(f"{source!r} is not a source a panel page may allow")
    request.scope[_ALLOWANCE] = Allowance(scripts, frames)


class BadForm(Exception):
    """A POST body that is not a small URL-encoded form."""


def frame_ancestors(settings: Settings) -> list[str]:
    """The sources that may show the panel in a frame: the helpdesks whose panel entry is
    configured, and the extra ones."""
    helpdesk = settings.helpdesk
    found: list[str] = []
    if zendesk_entry.configured(helpdesk.zendesk):
        subdomain = (helpdesk.zendesk.subdomain or "").strip().lower()
        if _SUBDOMAIN.fullmatch(subdomain):
            found.append(f"https://{subdomain}.zendesk.com")
        else:
            log.error("[helpdesk.zendesk] subdomain %r is not a host name: not framed", subdomain)
    freshdesk = helpdesk.freshdesk
    if freshdesk.panel_secret is not None:
        domain = (freshdesk.domain or "").strip().lower()
        if _DOMAIN.fullmatch(domain):
            found += [f"https://{domain}", *freshdesk.app_frame_origins]
        else:
            log.error(
                "[helpdesk.freshdesk] panel_secret is set but domain %r is not a host name: "
                "Freshdesk cannot frame the panel",
                domain,
            )
    if helpdesk.front.plugin_auth_secret is not None:
        # The plugin page (our own) frames the panel, inside Front's sidebar.
        found += [*FRONT, SELF]
    for origin in settings.panel.frame_ancestors:
        if origin not in found:
            found.append(origin)
    return found


def content_policy(settings: Settings, allowance: Allowance | None = None) -> str:
    """The panel's Content-Security-Policy: no script (but a loader page's own), framed only
    by the helpdesks configured."""
    return _policy(frame_ancestors(settings), allowance)


def _policy(framers: list[str], allowance: Allowance | None) -> str:
    ancestors = " ".join(framers) or "'none'"
    extra = ""
    if allowance is not None and allowance.scripts:
        extra += f"script-src {' '.join(allowance.scripts)}; "
    if allowance is not None and allowance.frames:
        extra += f"frame-src {' '.join(allowance.frames)}; "
    return (
        f"default-src 'none'; {extra}style-src 'self'; img-src 'self'; form-action 'self'; "
        f"frame-ancestors {ancestors}; base-uri 'none'"
    )


class PanelHeaders:
    """ASGI middleware: the panel's security headers on every response."""

    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.framers = frame_ancestors(settings)
        # By allowance: the default and one per loader page, each computed once.
        self.policies: dict[Allowance | None, str] = {None: _policy(self.framers, None)}
        self.https = settings.portal.base_url.startswith("https://")
        log.info("agent panel: framed by %s", " ".join(self.framers) or "nobody")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                # Whatever a route set, the policy is ours: a loader page's scripts come
                # only through `allow`, which writes them into the request's scope.
                given = scope.get(_ALLOWANCE)
                allowance = given if isinstance(given, Allowance) else None
                if allowance not in self.policies:
                    self.policies[allowance] = _policy(self.framers, allowance)
                headers["Content-Security-Policy"] = self.policies[allowance]
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "no-referrer"
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


def same_origin(request: Request, settings: Settings) -> bool:
    """Whether the browser says this request comes from one of our own pages."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site != "same-origin":
        return False
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return True
    return origin in {
        _origin(settings.portal.base_url),
        f"{request.url.scheme}://{request.url.netloc}",
    }


def csrf_ok(
    request: Request, form: Mapping[str, str], session: PanelSession, settings: Settings
) -> bool:
    """Does this POST come from one of this session's own forms?"""
    given = form.get(CSRF_FIELD, "")
    expected = csrf_token(settings, session.id)
    if not hmac.compare_digest(expected.encode(), given.encode()):
        return False
    return same_origin(request, settings)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
