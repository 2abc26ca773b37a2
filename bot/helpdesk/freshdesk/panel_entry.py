"""Freshdesk's entry into the agent panel: a URL the app's serverless function signed.

The Freshdesk app (apps/freshdesk) shows the panel in an iframe. Its front end reads the
logged-in agent and the ticket through the Freshworks client, asks its serverless
function (`server/server.js`) to sign them, and loads the URL it gets back. The function
signs with the secure installation parameter `panel_secret`, which never reaches the
browser; we check with the same value in `[helpdesk.freshdesk] panel_secret`. The link's
format and canonical string: `bot/panel/links.py` (what server.js computes, byte for byte).

What this proves, and what it does not: the link came from this app's serverless function
within the last LIFETIME seconds and is used once. It does not prove who the agent is: the
function signs what the app's front end sends, and a front end runs in the agent's browser,
where anyone could call the function with another agent's email. So the entry is not
vouched (`vouched=False`): the panel shows nothing until the agent, listed in
`[helpdesk.freshdesk]`, types back a code sent to that email (or its browser is remembered).
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.panel import links
from bot.panel.entry import Entry, EntryRefused
from bot.settings import FreshdeskSettings

NAME = "freshdesk"
LIFETIME = 120  # seconds: server.js signs right before the iframe loads


def verify(params: Mapping[str, str], settings: FreshdeskSettings) -> Entry:
    """The entry a genuine, fresh link from the app describes; EntryRefused otherwise."""
    if settings.panel_secret is None:
        raise EntryRefused(
            "Freshdesk entry is not configured: set [helpdesk.freshdesk] panel_secret"
        )
    secret = settings.panel_secret.get_secret_value().encode()
    link = links.verify(secret, NAME, params, max_lifetime=LIFETIME)
    return Entry(
        helpdesk=NAME,
        agent_email=link.agent_email,
        agent_name=link.agent_name,
        ticket=link.ticket,
        requester=link.requester,
        token_id=link.token_id,
        vouched=False,
        locale=link.locale,
    )
