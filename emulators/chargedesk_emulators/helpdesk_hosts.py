"""Stand-ins for a helpdesk's own page around our agent panel, served on another origin.

Zendesk, Front and Freshdesk show an app as a page of someone else's inside an iframe of
the ticket view; Help Scout's dynamic app is HTML its server fetches and shows in the
sidebar, with links that open in a new tab. These host pages do the same on 127.0.0.1,
while the panel runs on `localhost` (another site to the browser): the panel's cookies are
third-party cookies here, as in a real helpdesk.

Each host signs the way its helpdesk does, with keys the tests hold:
- Zendesk (`zaf_token`, `zendesk_page`): the ZAF app with `"signedUrls": true` is loaded by
  an auto-submitted POST into the sidebar iframe, the form field `token` a JWT signed
  RS256 with the app's key (`iss` the account's host, `aud` the app installation's URL,
  `sub` the agent's user ID, five minutes between `iat` and `exp`); `origin` and
  `app_guid` in the query, as the app framework adds them. The page answers the app's
  `client.get('ticket.id')` with its ticket, through a stand-in for the ZAF SDK
  (`zaf_sdk_url`, below).
- Front (`front_page`): the plugin URL with `auth_secret`, and the teammate's context for
  each conversation the test opens, given through a stand-in for Front's plugin SDK
  (`front_sdk_url`).
- Freshdesk (`freshdesk_url`, `freshdesk_page`): the URL the app's serverless function
  signs (HMAC-SHA256 over the canonical string of ChargeDesk's apps/freshdesk/server/
  server.js, written here again from that description).
- Help Scout (`helpscout_page`): the host POSTs the dynamic app's request to the sidebar
  URL, signed `X-HelpScout-Signature` (base64 HMAC-SHA1), and shows the HTML answered.

The SDK stand-ins are served here (`/zaf_sdk.js`, `/front_plugin_sdk.js`): the panel is
configured to load them (`[helpdesk.zendesk] zaf_sdk_url`, `[helpdesk.front]
plugin_sdk_url`) instead of Zendesk's and Front's, so the whole flow runs offline. Each
offers the little the panel's loader scripts use, over `postMessage` with this page, as the
real ones talk to their helpdesk's window: `ZAFClient.init()` (from `origin` and `app_guid`
in its page's address, `false` without them) and `client.get(key)`, answered only by the
window and origin named there; `Front.contextUpdates.subscribe(fn)`, after the handshake
Front's SDK starts (a MessagePort posted to the parent as
`@frontapp/ui-sdk#WebViewBridge.handshake`). What travels after that is the stand-ins' own.

`python -m chargedesk_emulators.helpdesk_hosts --panel http://localhost:8000` serves the
pages for a local trial; the banner prints the Zendesk app's public key to configure.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import secrets
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from chargedesk_emulators.serve import command_line, serving

ZAF_LIFETIME = 300  # seconds: what Zendesk gives its signed-URL tokens
LINK_VERSION = "chargedesk-panel-v1"
LINK_FIELDS = ("agent", "name", "ticket", "requester", "locale")
FRONT_HANDSHAKE = "@frontapp/ui-sdk#WebViewBridge.handshake"

# The ZAF SDK's stand-in: what the panel's zendesk-loader.js uses of it.
ZAF_SDK = """(function () {
  "use strict";
  var named = function (text) {
    var found = {};
    new URLSearchParams(text).forEach(function (value, key) { found[key] = value; });
    return found;
  };
  window.ZAFClient = {
    init: function () {
      var query = named(window.location.search), hash = named(window.location.hash.slice(1));
      var origin = query.origin || hash.origin, guid = query.app_guid || hash.app_guid;
      if (!origin || !guid) { return false; }
      var waiting = {}, next = 0;
      window.addEventListener("message", function (event) {
        var data = event.data || {};
        if (event.source !== window.parent || event.origin !== origin) { return; }
        if (data.zaf !== "answer" || data.appGuid !== guid || !waiting[data.id]) { return; }
        waiting[data.id](data.values || {});
        delete waiting[data.id];
      });
      return {
        get: function (key) {
          next += 1;
          var id = next;
          return new Promise(function (resolve) {
            waiting[id] = resolve;
            window.parent.postMessage({zaf: "get", appGuid: guid, id: id, key: key}, origin);
          });
        }
      };
    }
  };
})();
"""

# Front's plugin SDK's stand-in: its handshake, then each context the host page sends.
FRONT_SDK = """(function () {
  "use strict";
  var listeners = [], latest = null, channel = new MessageChannel();
  channel.port1.onmessage = function (event) {
    latest = event.data;
    listeners.forEach(function (listener) { listener(latest); });
  };
  window.parent.postMessage(HANDSHAKE, "*", [channel.port2]);
  window.Front = {
    contextUpdates: {
      subscribe: function (listener) {
        listeners.push(listener);
        if (latest) { listener(latest); }
        return {unsubscribe: function () { listeners.splice(listeners.indexOf(listener), 1); }};
      }
    }
  };
})();
""".replace("HANDSHAKE", json.dumps(FRONT_HANDSHAKE))


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def encode_uri_component(value: str) -> str:
    """JavaScript's encodeURIComponent."""
    return quote(value, safe="-_.!~*'()")


def link_signature(secret: str, helpdesk: str, params: dict[str, str]) -> str:
    """The HMAC-SHA256 (hex) a Freshdesk app's server.js puts in `sig`."""
    lines = [LINK_VERSION, helpdesk, params.get("exp", ""), params.get("nonce", "")]
    lines += [encode_uri_component(params.get(name, "")) for name in LINK_FIELDS]
    return hmac.new(secret.encode(), "\n".join(lines).encode(), hashlib.sha256).hexdigest()


class HelpdeskHosts:
    """The host pages. `panel` is the panel's base URL (`http://localhost:PORT`)."""

    def __init__(self, panel: str, *, subdomain: str = "chargedesk", installation: int = 360001):
        self.panel = panel.rstrip("/")
        self.base_url = ""  # set once serving
        self.subdomain = subdomain
        self.installation = installation
        self.zaf_key = new_rsa_key()
        self.app_guid = "a1b2c3d4-0000-4000-8000-chargedesk01"
        self._pages: dict[str, str] = {}
        self._lock = threading.Lock()

    # --- Zendesk ------------------------------------------------------------------------

    @property
    def zaf_public_key(self) -> str:
        """The app's public key, as `GET /api/v2/apps/{app_id}/public_key.pem` gives it."""
        return public_pem(self.zaf_key)

    @property
    def zaf_audience(self) -> str:
        return f"https://{self.subdomain}.zendesk.com/api/v2/apps/installations/{self.installation}.json"

    def zaf_token(
        self,
        user_id: int,
        *,
        key: rsa.RSAPrivateKey | None = None,
        audience: str | None = None,
        issuer: str | None = None,
        issued_at: float | None = None,
        lifetime: int = ZAF_LIFETIME,
        algorithm: str = "RS256",
        drop: tuple[str, ...] = (),
    ) -> str:
        """A ZAF signed-URL JWT for `user_id`, as Zendesk signs it (every part overridable)."""
        now = int(issued_at if issued_at is not None else time.time())
        claims: dict[str, Any] = {
            "iss": issuer or f"{self.subdomain}.zendesk.com",
            "aud": audience or self.zaf_audience,
            "sub": str(user_id),
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "context": {"product": "support", "location": "ticket_sidebar"},
        }
        for name in drop:
            claims.pop(name, None)
        if algorithm == "HS256":
            # The key-confusion attack: HMAC with the public key as the secret (PyJWT will not
            # sign that, rightly, so it is put together here).
            def part(value: dict[str, Any]) -> str:
                raw = json.dumps(value, separators=(",", ":")).encode()
                return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

            signing_input = f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}"
            mac = hmac.new(self.zaf_public_key.encode(), signing_input.encode(), hashlib.sha256)
            return f"{signing_input}.{base64.urlsafe_b64encode(mac.digest()).rstrip(b'=').decode()}"
        return jwt.encode(claims, key or self.zaf_key, algorithm=algorithm)

    @property
    def zaf_sdk_url(self) -> str:
        """The ZAF SDK's stand-in, for `[helpdesk.zendesk] zaf_sdk_url`."""
        return f"{self.base_url}/zaf_sdk.js"

    def zendesk_page(self, token: str, *, ticket: int | None = None) -> str:
        """A ticket page whose sidebar app is loaded by POSTing `token` into its iframe; the
        app's `client.get('ticket.id')` is answered with `ticket` (None: Zendesk says none)."""
        query = urlencode({"origin": self.base_url, "app_guid": self.app_guid})
        action = f"{self.panel}/panel/entry/zendesk?{query}"
        framework = (
            "window.addEventListener('message', function (event) {"
            " var data = event.data || {};"
            f" if (event.origin !== {_js(_origin(self.panel))} || data.zaf !== 'get'"
            f" || data.appGuid !== {_js(self.app_guid)}) {{ return; }}"
            f" var values = {{}}; values[data.key] = data.key === 'ticket.id' ? {_js(ticket)} : null;"
            " event.source.postMessage({zaf: 'answer', appGuid: data.appGuid, id: data.id,"
            " values: values}, event.origin);"
            "});"
        )
        body = (
            f"<script>{framework}</script>"
            '<iframe name="zaf_app" title="ChargeDesk app" width="420" height="760"></iframe>'
            f'<form id="signed" method="post" action="{html.escape(action)}" target="zaf_app">'
            f'<input type="hidden" name="token" value="{html.escape(token)}"></form>'
            "<script>document.getElementById('signed').submit();</script>"
        )
        return self._page("Zendesk ticket", body)

    # --- Front --------------------------------------------------------------------------

    @property
    def front_sdk_url(self) -> str:
        """Front's plugin SDK's stand-in, for `[helpdesk.front] plugin_sdk_url`."""
        return f"{self.base_url}/front_plugin_sdk.js"

    def front_page(
        self,
        auth_secret: str,
        *,
        teammate: str,
        teammate_name: str = "",
        conversations: dict[str, str | None] | None = None,
    ) -> str:
        """Front with the plugin (its URL, `auth_secret` added as Front adds it) in the sidebar.

        `conversations` maps each conversation's ID to its contact's email (None: a phone
        contact); the first is open when the plugin loads, and a button per conversation
        (and "No conversation") opens another, sending the plugin a new context."""
        src = f"{self.panel}/panel/front?{urlencode({'auth_secret': auth_secret})}"
        person = {"id": "tea_1", "email": teammate, "name": teammate_name, "username": "t1"}
        contexts: dict[str, dict[str, Any]] = {}
        for number, (conversation, contact) in enumerate((conversations or {}).items()):
            recipient = (
                {"handle": contact, "type": "email", "name": "Customer"}
                if contact is not None
                else {"handle": "+15550100", "type": "phone"}
            )
            contexts[conversation] = {
                "id": f"ctx_{number}", "type": "singleConversation", "teammate": person,
                "conversation": {"id": conversation, "type": "email", "status": "open",
                                 "recipient": recipient, "inboxes": [], "tags": [], "links": []},
            }  # fmt: skip
        contexts["none"] = {"id": "ctx_none", "type": "noConversation", "teammate": person}
        first = next(iter(contexts))
        front = (
            f"var contexts = {_js(contexts)}, port = null, open = {_js(first)};"
            "window.addEventListener('message', function (event) {"
            f" if (event.origin !== {_js(_origin(self.panel))} || event.data !== "
            f"{_js(FRONT_HANDSHAKE)} || !event.ports.length) {{ return; }}"
            " port = event.ports[0]; port.postMessage(contexts[open]);"
            "});"
            "window.openConversation = function (id) {"
            " open = id; if (port) { port.postMessage(contexts[id]); } };"
        )
        buttons = "".join(
            f'<button type="button" data-open="{html.escape(c)}">Open {html.escape(c)}</button>'
            for c in contexts
        )
        clicks = (
            "document.querySelectorAll('[data-open]').forEach(function (b) {"
            " b.addEventListener('click', function () { openConversation(b.dataset.open); }); });"
        )
        return self._page(
            "Front conversation",
            f"<script>{front}</script><nav>{buttons}</nav><script>{clicks}</script>"
            f'<iframe title="ChargeDesk app" src="{html.escape(src)}" width="420" height="760">'
            "</iframe>",
        )

    # --- Freshdesk ----------------------------------------------------------------------

    def freshdesk_url(
        self,
        secret: str,
        *,
        agent: str,
        name: str = "",
        ticket: str = "",
        requester: str = "",
        locale: str = "",
        lifetime: int = 60,
        issued_at: float | None = None,
        nonce: str | None = None,
    ) -> str:
        """The panel URL the app's serverless function signs for this agent and ticket."""
        params = {"agent": agent, "name": name, "ticket": ticket, "requester": requester,
                  "locale": locale}  # fmt: skip
        params = {k: v for k, v in params.items() if v}
        params["exp"] = str(int(issued_at if issued_at is not None else time.time()) + lifetime)
        params["nonce"] = nonce or secrets.token_urlsafe(18)
        params["sig"] = link_signature(secret, "freshdesk", params)
        return f"{self.panel}/panel/entry/freshdesk?{urlencode(params)}"

    def freshdesk_page(self, signed_url: str) -> str:
        """A ticket whose app iframe loads the signed panel URL."""
        return self._frame("Freshdesk ticket", signed_url)

    # --- Help Scout ---------------------------------------------------------------------

    def helpscout_page(self, sidebar_url: str, secret_key: str, payload: dict[str, Any]) -> str:
        """A conversation whose sidebar shows what our dynamic app answers to a signed request."""
        body = json.dumps(payload).encode()
        mac = hmac.new(secret_key.encode(), body, hashlib.sha1).digest()
        request = urllib.request.Request(
            sidebar_url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "X-HelpScout-Signature": base64.b64encode(mac).decode(),
            },
        )
        with urllib.request.urlopen(request, timeout=30) as answer:  # the test's own server
            sidebar = json.loads(answer.read())["html"]
        return self._page("Help Scout conversation", f'<aside id="sidebar">{sidebar}</aside>')

    # --- serving ------------------------------------------------------------------------

    def _frame(self, title: str, src: str) -> str:
        return self._page(
            title,
            f'<iframe title="ChargeDesk app" src="{html.escape(src)}" width="420" height="760">'
            "</iframe>",
        )

    def _page(self, title: str, body: str) -> str:
        page_id = secrets.token_urlsafe(8)
        with self._lock:
            self._pages[page_id] = (
                f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}"
                f"</title></head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
            )
        return f"{self.base_url}/page/{page_id}"

    def app(self) -> Starlette:
        async def page(request: Request) -> Response:
            with self._lock:
                found = self._pages.get(request.path_params["page_id"])
            if found is None:
                return PlainTextResponse("no such page", status_code=404)
            return HTMLResponse(found)

        async def public_key(request: Request) -> Response:
            return PlainTextResponse(self.zaf_public_key)

        def script(text: str) -> Any:
            async def serve(request: Request) -> Response:
                return Response(text, media_type="text/javascript; charset=utf-8")

            return serve

        return Starlette(
            routes=[
                Route("/page/{page_id}", page),
                Route("/api/v2/apps/1/public_key.pem", public_key),
                Route("/zaf_sdk.js", script(ZAF_SDK)),
                Route("/front_plugin_sdk.js", script(FRONT_SDK)),
            ]
        )


def _js(value: Any) -> str:
    """`value` as a JavaScript literal inside a <script> of a host page."""
    return json.dumps(value).replace("<", "\\u003c")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@contextmanager
def helpdesk_hosts(panel: str, **options: Any) -> Iterator[HelpdeskHosts]:
    """Serve the host pages on 127.0.0.1 with a free port, in a background thread."""
    hosts = HelpdeskHosts(panel, **options)
    with serving(hosts.app(), "helpdesk host pages") as url:
        hosts.base_url = url
        yield hosts


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--panel", default="http://localhost:8000")
    known, rest = parser.parse_known_args(argv)
    hosts = HelpdeskHosts(known.panel)

    def started(url: str) -> list[str]:
        hosts.base_url = url
        return [
            f"panel at {hosts.panel}; Zendesk app audience {hosts.zaf_audience}",
            f"Zendesk app public key: {url}/api/v2/apps/1/public_key.pem",
            f"Settings: CHARGEDESK_HELPDESK__ZENDESK__ZAF_SDK_URL={hosts.zaf_sdk_url} "
            f"CHARGEDESK_HELPDESK__FRONT__PLUGIN_SDK_URL={hosts.front_sdk_url} "
            f"CHARGEDESK_PANEL__FRAME_ANCESTORS='[\"{url}\"]'",
        ]

    command_line("Helpdesk host pages", hosts.app(), started, rest)


if __name__ == "__main__":
    main()
