"""Zendesk's signed entry into the agent panel: the ZAF JWT of a `signedUrls` app.

With `"signedUrls": true` in the app's manifest (apps/zendesk/manifest.json), Zendesk loads
the sidebar's remote URL with a POST whose form field `token` is a JWT it signs with the
app's RSA key (RS256). Only that first request is signed; the panel opens a session of its
own after it. What is checked here, before anything is read from the token:

- the signature, RS256 only (a token naming `none` or `HS256` is refused, so the public
  key can never be used as an HMAC secret), with the app's public key (`app_public_key`,
  from `GET /api/v2/apps/{app_id}/public_key.pem`);
- `aud` is this installation (`app_audience`: `https://<subdomain>.zendesk.com/api/v2/apps/
  installations/<id>.json`) and `iss` is the account (`<subdomain>.zendesk.com`);
- `exp`, `iat`, `sub` are present, the token is not expired (30 s of clock skew), and it
  lived at most MAX_LIFETIME seconds (Zendesk's live five minutes).

The token names the agent by Zendesk user (`sub`), not by email: the email, which gives the
agent their roles, is read from Zendesk's own API with our API token (`GET /api/v2/users/
{id}.json`), so it is Zendesk that vouches for it, server-side. The ticket is not in the
token: the panel's loader page asks the app framework for `ticket.id` (ZAF SDK) and sends
only that number back (`bot/panel/loaders.py`); `ticket_requester` then reads the ticket's
requester from Zendesk's API (`GET /api/v2/tickets/{id}.json` → `requester_id` → the user's
email), so the card's "verified" customer is the one Zendesk says opened the ticket.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Literal

import jwt

from bot.helpdesk.errors import HelpdeskError, HelpdeskRefused, HelpdeskUnavailable
from bot.helpdesk.payloads import email
from bot.helpdesk.zendesk import client
from bot.panel.entry import EntryRefused
from bot.settings import ZendeskSettings

NAME = "zendesk"
ALGORITHMS = ["RS256"]
MAX_LIFETIME = 600  # seconds from iat to exp: Zendesk's tokens live 300
LEEWAY = 30  # seconds of clock difference forgiven on exp, nbf and iat
TOKEN_CHARS = 8192  # a JWT far longer than Zendesk's is not read at all
EMAIL_CHARS = 320  # what the panel's session keeps of a requester's email
_USER_ID = re.compile(r"(\d{1,20})(?:\.json)?$")


@dataclass(frozen=True)
class ZafToken:
    """A verified ZAF JWT: which Zendesk user opened the sidebar, and the token's own ID."""

    user_id: str
    token_id: str  # a hash of the token: claimed once, so replaying it opens nothing


@dataclass(frozen=True)
class ZendeskUser:
    email: str
    name: str | None
    locale: str | None


def public_key(settings: ZendeskSettings) -> str | None:
    """The app's public key (PEM), from the setting or its file; None when neither is set."""
    if settings.app_public_key:
        return settings.app_public_key
    if settings.app_public_key_file is not None:
        try:
            return settings.app_public_key_file.read_text()
        except OSError:
            return None
    return None


def configured(settings: ZendeskSettings) -> bool:
    """Can signed entries be checked and their agents read? Key, audience, account, API."""
    return bool(
        public_key(settings)
        and settings.app_audience
        and settings.subdomain
        and settings.email
        and settings.api_token
    )


def verify_token(token: str, settings: ZendeskSettings) -> ZafToken:
    """The Zendesk user a genuine, fresh ZAF JWT names; EntryRefused otherwise."""
    key = public_key(settings)
    if not configured(settings) or key is None:
        raise EntryRefused(
            "Zendesk entry is not configured: set [helpdesk.zendesk] app_public_key, "
            "app_audience, subdomain, email and api_token"
        )
    if not token or len(token) > TOKEN_CHARS or token.count(".") != 2:
        raise EntryRefused("malformed token: not a JWT")
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=ALGORITHMS,
            audience=settings.app_audience,
            issuer=f"{settings.subdomain}.zendesk.com",
            leeway=LEEWAY,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise EntryRefused("expired token: reopen the ticket in Zendesk") from None
    except jwt.ImmatureSignatureError:
        raise EntryRefused("token not valid yet: check this server's clock") from None
    except jwt.InvalidAudienceError:
        raise EntryRefused("wrong audience: the token is for another app installation") from None
    except jwt.InvalidIssuerError:
        raise EntryRefused("wrong issuer: the token is from another Zendesk account") from None
    except jwt.MissingRequiredClaimError as exc:
        raise EntryRefused(f"malformed token: no {exc.claim} claim") from None
    except jwt.InvalidAlgorithmError:
        raise EntryRefused("forged token: not signed with RS256") from None
    except jwt.InvalidSignatureError:
        raise EntryRefused("forged token: the signature does not match the app's key") from None
    except jwt.InvalidKeyError:
        raise EntryRefused(
            "Zendesk entry is misconfigured: app_public_key is not a PEM key"
        ) from None
    except jwt.InvalidTokenError:
        raise EntryRefused("malformed token: not a JWT Zendesk signs") from None
    except (ValueError, TypeError):
        # cryptography refuses a PEM it cannot load: the setting, not the token, is wrong.
        raise EntryRefused(
            "Zendesk entry is misconfigured: app_public_key is not a PEM key"
        ) from None
    issued, expires = claims.get("iat"), claims.get("exp")
    if not isinstance(issued, int | float) or not isinstance(expires, int | float):
        raise EntryRefused("malformed token: iat and exp must be numbers")
    if expires - issued > MAX_LIFETIME:
        raise EntryRefused("token lives too long: Zendesk's live five minutes")
    found = _USER_ID.search(str(claims.get("sub", "")))
    if found is None:
        raise EntryRefused("malformed token: sub names no Zendesk user")
    digest = hashlib.sha256(token.encode()).hexdigest()[:40]
    return ZafToken(user_id=found.group(1), token_id=f"{NAME}:jwt:{digest}")


async def user(settings: ZendeskSettings, user_id: str) -> ZendeskUser:
    """The Zendesk user's email, name and language, as Zendesk's API says; EntryRefused if
    Zendesk knows no email for them (or cannot be asked)."""
    try:
        async with client.for_settings(settings) as api:
            found = await api.user(user_id)
    except HelpdeskError as exc:
        raise EntryRefused(f"Zendesk could not tell who you are ({exc.message})") from None
    if not found:
        raise EntryRefused("Zendesk could not tell who you are")
    address = email(found.get("email"))
    if address is None:
        raise EntryRefused("your Zendesk user has no email: roles are given by email")
    name = found.get("name")
    locale = found.get("locale")
    return ZendeskUser(
        email=address.lower(),
        name=name if isinstance(name, str) else None,
        locale=locale if isinstance(locale, str) else None,
    )


class TicketProblem(Exception):
    """Zendesk named no requester with an email for a ticket: the panel binds nothing.

    `kind` says why, for the agent's message: `unknown` (no such ticket, or not shown to our
    token), `no_requester` (its requester has no email address, or is gone), `unavailable`
    (Zendesk could not be asked: trying again may help). The message is for the log."""

    def __init__(self, kind: Literal["unknown", "no_requester", "unavailable"], message: str):
        super().__init__(message)
        self.kind = kind


async def ticket_requester(settings: ZendeskSettings, ticket_id: str) -> str:
    """The email of the ticket's requester, lower-cased, as Zendesk's API says; TicketProblem
    when Zendesk has no such ticket or no usable email for its requester."""
    try:
        async with client.for_settings(settings) as api:
            try:
                ticket = await api.ticket(ticket_id)
            except HelpdeskRefused as exc:
                raise TicketProblem("unknown", exc.message) from None
            requester_id = ticket.get("requester_id")
            if not isinstance(requester_id, int) or isinstance(requester_id, bool):
                raise TicketProblem("no_requester", f"ticket {ticket_id} names no requester")
            try:
                requester = await api.user(str(requester_id))
            except HelpdeskRefused as exc:
                raise TicketProblem("no_requester", exc.message) from None
    except HelpdeskUnavailable as exc:
        raise TicketProblem("unavailable", exc.message) from None
    address = email(requester.get("email"))
    if (
        address is None
        or len(address) > EMAIL_CHARS
        or address.count("@") != 1
        or any(c.isspace() or not c.isprintable() for c in address)
    ):
        raise TicketProblem("no_requester", f"ticket {ticket_id}'s requester has no usable email")
    return address.lower()
