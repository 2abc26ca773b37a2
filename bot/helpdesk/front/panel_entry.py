"""Front's entry into the agent panel: the plugin URL with its `auth_secret`.

Front renders a plugin (our page in its sidebar iframe) at the URL an admin configured,
adding `?auth_secret=<the plugin's auth secret>` (dev.frontapp.com, "Security: token
verification"). We compare it, in constant time, with `[helpdesk.front] plugin_auth_secret`.
That URL is one for every teammate, so it cannot carry who is looking at which
conversation: it is the panel's plugin page (`/panel/front`, `bot/panel/loaders.py`), which
checks the secret (`check_secret`) before it shows anything, loads Front's plugin SDK and
opens this entry in its frame for each conversation, with the context Front's SDK gave it:

    teammate       the teammate's email          teammate_name   their display name
    conversation   Front's conversation ID       contact         the contact's email handle
    locale         the teammate's language

What this proves, and what it does not: the request was made by someone who can read the
plugin's URL, which is one value every teammate (and every browser history and proxy
log that saw it) shares. It says nothing about *which* teammate: anyone holding the
secret could name any email. So the entry is not vouched (`vouched=False`): the panel
shows nothing until the teammate, listed in `[helpdesk.front]`, types back a one-time code
sent to that email (or opens it in a browser that did so before: `bot/panel/browsers.py`). The secret
does not change per load, so a load cannot be told from a replay: each entry gets a
fresh random token ID (a session per load), and the confirmation code is what counts.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping

from bot.helpdesk.payloads import email
from bot.panel.entry import Entry, EntryRefused
from bot.settings import FrontSettings

NAME = "front"
LIMITS = {"teammate": 320, "teammate_name": 200, "conversation": 48, "contact": 320, "locale": 35}


def check_secret(params: Mapping[str, str], settings: FrontSettings) -> None:
    """Nothing when `auth_secret` is the plugin's; EntryRefused otherwise (or unconfigured)."""
    if settings.plugin_auth_secret is None:
        raise EntryRefused("Front entry is not configured: set [helpdesk.front] plugin_auth_secret")
    given = params.get("auth_secret", "")
    if not given:
        raise EntryRefused("missing auth_secret: open the panel from Front's plugin")
    expected = settings.plugin_auth_secret.get_secret_value()
    # Digests first: equal lengths, so the comparison tells nothing of the secret's length.
    if not hmac.compare_digest(_digest(given), _digest(expected)):
        raise EntryRefused("forged auth_secret: it is not the plugin's")


def verify(params: Mapping[str, str], settings: FrontSettings) -> Entry:
    """The entry a plugin URL with the right `auth_secret` describes; EntryRefused otherwise."""
    check_secret(params, settings)
    for name, limit in LIMITS.items():
        value = params.get(name, "")
        if len(value) > limit or any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise EntryRefused(f"malformed {name}: too long or has control characters")
    teammate = email(params.get("teammate"))
    if teammate is None or teammate.count("@") != 1:
        raise EntryRefused("missing teammate: the plugin must pass the teammate's email")
    contact = email(params.get("contact"))
    if params.get("contact") and (contact is None or contact.count("@") != 1):
        raise EntryRefused("malformed contact: not an email address")
    return Entry(
        helpdesk=NAME,
        agent_email=teammate.lower(),
        agent_name=" ".join(params.get("teammate_name", "").split()) or None,
        ticket=params.get("conversation", "").strip() or None,
        requester=contact.lower() if contact else None,
        token_id=f"{NAME}:open:{secrets.token_urlsafe(18)}",
        vouched=False,
        locale=params.get("locale", "").strip() or None,
    )


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()
