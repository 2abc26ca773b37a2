"""Our own signed, short-lived, single-use ways into the agent panel.

Used where a helpdesk cannot sign the panel's first request itself:
- Help Scout: the sidebar's links, signed by us while answering Help Scout's signed request
  (key: derived from the deployment's key, `helpscout_key`);
- Freshdesk: the app's serverless function (`apps/freshdesk/server/server.js`) signs the
  panel URL with the secret both sides share (`[helpdesk.freshdesk] panel_secret`).

A link is the panel's entry path with these query parameters:

    agent      the agent's email              name    the agent's display name (may be empty)
    ticket     the ticket or conversation ID  requester  the ticket requester's email
    locale     the agent's language           exp     expiry, Unix seconds
    nonce      16 to 64 characters of A-Z a-z 0-9 _ -, unique per link (its token ID)
    sig        the signature: lowercase hex HMAC-SHA256 of the canonical string

The canonical string is nine lines joined by a single "\\n" (no trailing newline):

    chargedesk-panel-v1
    <helpdesk>            "freshdesk" or "helpscout": a link for one never opens another
    <exp>                 as sent, decimal digits
    <nonce>               as sent
    <agent>  <name>  <ticket>  <requester>  <locale>    one line each

where the last five are each value as sent (absent = empty) encoded like JavaScript's
`encodeURIComponent` (UTF-8, everything but A-Z a-z 0-9 - _ . ! ~ * ' ( ) percent-encoded
with upper-case hex), so no value can forge a line break. The key is the secret's UTF-8
bytes (`crypto.createHmac('sha256', secret)` in Node does the same).

Refused, in this order, each with a one-line reason and nothing opened: a malformed link
(missing or oversized fields, control characters, no agent email), a forged one (wrong
signature: compared in constant time), an expired one, and one whose expiry lies further
ahead than its helpdesk's links may live. A replay is refused by the panel's session,
which claims each `token_id` once.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from bot.keys import signing_key
from bot.panel.entry import EntryRefused
from bot.settings import Settings

VERSION = "chargedesk-panel-v1"
FIELDS = ("agent", "name", "ticket", "requester", "locale")
# Field lengths: an email's maximum, a display name, a helpdesk ID, a language tag.
LIMITS = {"agent": 320, "name": 200, "ticket": 100, "requester": 320, "locale": 35}
SKEW = 30  # seconds of clock difference between the signer and us that we forgive
NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")
SIGNATURE = re.compile(r"[0-9a-f]{64}")
_URI_SAFE = "-_.!~*'()"  # what encodeURIComponent leaves alone besides letters and digits


@dataclass(frozen=True)
class SignedLink:
    """What a verified link says: the agent, the ticket, and its single-use ID."""

    helpdesk: str
    agent_email: str
    agent_name: str | None
    ticket: str | None
    requester: str | None
    locale: str | None
    nonce: str
    expires: int

    @property
    def token_id(self) -> str:
        """Unique per link: the panel claims it once, so opening a link twice opens nothing."""
        return f"{self.helpdesk}:link:{self.nonce}"


def encode(value: str) -> str:
    """A value as JavaScript's `encodeURIComponent` writes it."""
    return quote(value, safe=_URI_SAFE, encoding="utf-8", errors="strict")


def canonical(helpdesk: str, params: Mapping[str, str]) -> str:
    """The string a link's signature covers (see the module docstring)."""
    lines = [VERSION, helpdesk, params.get("exp", ""), params.get("nonce", "")]
    lines += [encode(params.get(name, "")) for name in FIELDS]
    return "\n".join(lines)


def signature(secret: bytes, helpdesk: str, params: Mapping[str, str]) -> str:
    """Lowercase hex HMAC-SHA256 of the canonical string with `secret`."""
    return hmac.new(secret, canonical(helpdesk, params).encode(), hashlib.sha256).hexdigest()


def sign(
    secret: bytes,
    helpdesk: str,
    *,
    agent_email: str,
    agent_name: str | None = None,
    ticket: str | None = None,
    requester: str | None = None,
    locale: str | None = None,
    lifetime: int,
    now: float | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The query parameters of a new link valid `lifetime` seconds (a fresh nonce each)."""
    params = {
        "agent": agent_email,
        "name": agent_name or "",
        "ticket": ticket or "",
        "requester": requester or "",
        "locale": locale or "",
        "exp": str(int(now if now is not None else time.time()) + lifetime),
        "nonce": nonce or secrets.token_urlsafe(18),
    }
    params = {k: v for k, v in params.items() if v}
    params["sig"] = signature(secret, helpdesk, params)
    return params


def url(base: str, path: str, params: Mapping[str, str]) -> str:
    """`base` + `path` with the link's parameters (percent-encoded as a query string)."""
    return f"{base.rstrip('/')}{path}?{urlencode(params)}"


def verify(
    secret: bytes,
    helpdesk: str,
    params: Mapping[str, str],
    *,
    max_lifetime: int,
    now: float | None = None,
) -> SignedLink:
    """The link's claims if genuine, fresh and well-formed; EntryRefused otherwise."""
    sig, exp, nonce = params.get("sig", ""), params.get("exp", ""), params.get("nonce", "")
    if not SIGNATURE.fullmatch(sig) or not exp.isascii() or not exp.isdigit() or len(exp) > 12:
        raise EntryRefused("malformed link: its signature or expiry is missing")
    if not NONCE.fullmatch(nonce):
        raise EntryRefused("malformed link: its nonce is missing")
    for name in FIELDS:
        value = params.get(name, "")
        if len(value) > LIMITS[name] or any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise EntryRefused(f"malformed link: {name} is too long or has control characters")
    try:
        expected = signature(secret, helpdesk, params)
    except UnicodeEncodeError:
        raise EntryRefused("malformed link: a value is not text") from None
    if not hmac.compare_digest(expected, sig):
        raise EntryRefused("forged link: the signature does not match")
    moment = int(now if now is not None else time.time())
    expires = int(exp)
    if expires <= moment - SKEW:
        raise EntryRefused("expired link: open the panel again from the helpdesk")
    if expires > moment + max_lifetime + SKEW:
        raise EntryRefused("link lives too long: its expiry is further ahead than allowed")
    agent = params.get("agent", "").strip().lower()
    if agent.count("@") != 1 or any(c.isspace() for c in agent):
        raise EntryRefused("malformed link: no agent email")
    requester = params.get("requester", "").strip().lower() or None
    if requester is not None and requester.count("@") != 1:
        raise EntryRefused("malformed link: the requester is not an email")
    return SignedLink(
        helpdesk=helpdesk,
        agent_email=agent,
        agent_name=" ".join(params.get("name", "").split()) or None,
        ticket=params.get("ticket", "").strip() or None,
        requester=requester,
        locale=params.get("locale", "").strip() or None,
        nonce=nonce,
        expires=expires,
    )


def helpscout_key(settings: Settings) -> bytes:
    """The key of Help Scout's sidebar links: derived from the deployment's key, for this use
    only (a leaked link reveals nothing of the key that signs billing-page links)."""
    return hmac.new(signing_key(settings), b"panel-links:helpscout", hashlib.sha256).digest()
