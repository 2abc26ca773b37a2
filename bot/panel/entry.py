"""What a signed entry into the agent panel proves, whichever helpdesk signed it.

Zendesk (a JWT it signs), Front (the plugin's `auth_secret`), Freshdesk (our HMAC-signed
URL, signed by the app with a secure installation parameter) and Help Scout (short-lived
links signed by us in its sidebar) each check their own signature in
`bot/helpdesk/<name>/panel_entry.py` and hand the panel an `Entry`. The panel then opens a
session of its own (`bot/panel/session.py`): only the first request of an embedded panel
carries the helpdesk's signature.
"""

from __future__ import annotations

from dataclasses import dataclass


class EntryRefused(Exception):
    """A forged, expired, replayed or malformed entry: the panel opens nothing.

    The message is safe to show (it names what was wrong, never a secret)."""


@dataclass(frozen=True)
class Entry:
    """One verified way in: who the helpdesk says the agent is, and which ticket they are on."""

    helpdesk: str  # "zendesk", "front", "freshdesk", "helpscout"
    agent_email: str  # lower-cased; roles come from `[helpdesk.<name>]` agents/managers/admins
    agent_name: str | None
    ticket: str | None  # the helpdesk's ticket or conversation ID (notes go there)
    requester: str | None  # the ticket requester's email: the card's verified identity
    token_id: str  # unique per signed entry; claimed once, so a replay opens nothing
    # True when the helpdesk itself vouches for the agent's identity server-side (a Zendesk
    # JWT, a Help Scout signed request). False when anyone holding the shared secret could
    # claim any email (Front's auth_secret, a Freshdesk app's front end): such a session
    # shows no billing data until the agent confirms the email with a one-time code (or
    # opens in a browser remembered after one: `bot/panel/browsers.py`).
    vouched: bool
    locale: str | None = None  # the agent's language in the helpdesk, when it says (e.g. "de")
