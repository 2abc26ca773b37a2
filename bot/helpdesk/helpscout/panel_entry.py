"""Help Scout's entry into the agent panel: the sidebar's links, signed by us.

Help Scout's dynamic app is display-only HTML (`sidebar.py`), so its actions are links
into the panel. We sign each one while answering a request Help Scout signed
(`X-HelpScout-Signature`) that named the agent viewing (`user.email`): only then is a
link made, for that agent, that conversation and its customer's email, valid LIFETIME
seconds and opened once. The key is derived from the deployment's own
(`bot.panel.links.helpscout_key`): nobody else signs these.

What this proves: Help Scout told us, server-side, which agent was looking at which
conversation, so the entry is vouched (`vouched=True`). What it does not: that the
person clicking is still that agent; a link passed on within its lifetime opens the panel
once for whoever has it, which is why links live minutes and work once.
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.panel import links
from bot.panel.entry import Entry
from bot.settings import Settings

NAME = "helpscout"
LIFETIME = 15 * 60  # seconds: the sidebar is redrawn each time the conversation is opened
PATH = "/panel/entry/helpscout"


def link(
    settings: Settings,
    *,
    agent_email: str,
    agent_name: str | None,
    ticket: str | None,
    requester: str | None,
) -> str:
    """A new signed link into the panel for this agent and conversation (its own nonce)."""
    params = links.sign(
        links.helpscout_key(settings),
        NAME,
        agent_email=agent_email,
        agent_name=agent_name,
        ticket=ticket,
        requester=requester,
        lifetime=LIFETIME,
    )
    return links.url(settings.portal.base_url, PATH, params)


def verify(params: Mapping[str, str], settings: Settings) -> Entry:
    """The entry a genuine, fresh sidebar link describes; EntryRefused otherwise."""
    signed = links.verify(links.helpscout_key(settings), NAME, params, max_lifetime=LIFETIME)
    return Entry(
        helpdesk=NAME,
        agent_email=signed.agent_email,
        agent_name=signed.agent_name,
        ticket=signed.ticket,
        requester=signed.requester,
        token_id=signed.token_id,
        vouched=True,
        locale=signed.locale,
    )
