"""Help Scout's dynamic app: the customer's billing beside the conversation, as sidebar HTML.

When an agent opens a conversation, Help Scout POSTs JSON (`ticket`, `customer` with
`email` and `emails`, `user`, `mailbox`) to our callback URL, signed like its webhooks:
`X-HelpScout-Signature` is the base64 HMAC-SHA1 of the raw body with the app's secret key
(developer.helpscout.com/custom-apps/dynamic/). We answer `{"html": "..."}`.

- The customer's `email` (the address the conversation came from) is looked up as
  **verified**; their profile's other addresses (`emails`, at most MAX_EMAILS) are looked
  up too and marked **not verified**. Lookups go through the lookup command's own path
  (`bot/lookup_cache.py` → every gateway), all at once.
- The card is the lookup command's card (`bot/cards/billing.py`), written out by the
  helpdesk renderer (`bot/helpdesk/render.py`): every datum escaped, a customer named
  `<img onerror=…>` shows as text. At most ROWS rows a list, so the sidebar stays small.
- The app is display-only: an action is shown as the chat command that does it
  (`/billing refund ledger:ch_1 reason: …`), to copy into Slack, Discord or the shell
  (running it there checks the agent's roles), and, for the conversation's own email,
  as a link into the agent panel, where the same actions are buttons behind the policy.
  Each link is signed by us for the agent Help Scout named, this conversation and its
  customer, lives 15 minutes and opens once (`panel_entry.py`, `bot/panel/links.py`).
- The agent viewing (`user`: id, email, name) is a person with roles
  (`bot/helpdesk/agents.py`, from `[helpdesk.helpscout]` agents/managers/admins). Only
  those the router lets run refund, cancel, capture or void see those command lines;
  anyone else (read-only staff, an agent without an email) sees the card and one line
  saying what to configure.
- A request without our signature gets 401: no agent is named, nothing is looked up. No
  secret, token or billing-page link is ever in the HTML.
"""

from __future__ import annotations

import asyncio
import html
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot import lookup_cache
from bot.actors import Actor
from bot.approvals.actions import ACTIONS
from bot.cards.billing import profile_card
from bot.commands import COMMANDS
from bot.commands.lookup_quoted import unanswered
from bot.helpdesk.agents import helpdesk_actor
from bot.helpdesk.base import Forged
from bot.helpdesk.helpscout import panel_entry
from bot.helpdesk.helpscout.webhooks import check_signature
from bot.helpdesk.payloads import email, json_object, member, text
from bot.helpdesk.render import as_html, clean
from bot.models import BillingProfile
from bot.services import Services
from bot.settings import HelpScoutSettings

log = logging.getLogger(__name__)

PATH = "/helpdesk/helpscout/sidebar"
MAX_EMAILS = 3  # the requester and at most two more of the profile's addresses
ROWS = 5
COMMAND = "/billing"
HELPDESK = "helpscout"
READ_ONLY = (
    "<p><i>Read-only: actions need your Help Scout email{who} in"
    " <code>[helpdesk.helpscout] agents</code> of ChargeDesk's settings.</i></p>"
)


def agent_of(payload: dict[str, Any], settings: HelpScoutSettings) -> Actor | None:
    """The agent viewing (the request's `user`), with their roles; None if it names nobody.

    Only for a request whose signature was checked (`read_request`)."""
    user = member(payload, "user")
    if not isinstance(user, dict):
        return None
    name = " ".join(text(user.get(part)) for part in ("fname", "lname"))
    ident = user.get("id")
    try:
        return helpdesk_actor(
            HELPDESK,
            settings,
            email(user.get("email")),
            name,
            ident if isinstance(ident, (int, str)) else None,
        )
    except ValueError:
        return None


def read_request(
    body: bytes, headers: Any, secret_key: str, settings: HelpScoutSettings
) -> tuple[dict[str, Any], Actor | None]:
    """The payload and the agent of a genuine sidebar request; Forged before anything is read."""
    check_signature(body, headers, secret_key)
    payload = json_object(body)
    return payload, agent_of(payload, settings)


def actions_for(agent: Actor | None) -> frozenset[str]:
    """The money-moving commands (refund, cancel, capture, void) the agent may run, by the
    router's own role check: the only command lines the sidebar offers."""
    if agent is None:
        return frozenset()
    return frozenset(name for name in ACTIONS if COMMANDS[name].allowed(agent))


def read_only_line(agent: Actor | None) -> str:
    """What someone who may run none of them reads instead of the command lines."""
    who = f" ({html.escape(clean(agent.email))})" if agent is not None and agent.email else ""
    return READ_ONLY.format(who=who)


def emails_of(customer: Any) -> list[tuple[str, bool]]:
    """(address, verified) for the customer: their conversation email first, verified."""
    if not isinstance(customer, dict):
        return []
    found: list[tuple[str, bool]] = []
    primary = email(customer.get("email"))
    if primary:
        found.append((primary, True))
    for other in customer.get("emails") or []:
        address = email(other.get("value") if isinstance(other, dict) else other)
        if address and address.lower() not in {a.lower() for a, _ in found}:
            found.append((address, False))
    return found[:MAX_EMAILS]


def section(
    profile: BillingProfile,
    address: str,
    verified: bool,
    locale: str,
    actions: frozenset[str] = frozenset(),
    panel: str | None = None,
) -> str:
    """One address's part of the sidebar: how sure we are, the card, the command lines
    of the `actions` the agent may run, and the signed `panel` link, if any."""
    confidence = (
        "verified (the conversation's email)"
        if verified
        else "not verified (another email of this Help Scout customer): check who you are talking to"
    )
    head = f"<p><b>{html.escape(clean(address))}</b><br><i>{confidence}</i></p>"
    if not profile.found:
        failed = unanswered(profile.failures)
        if failed:  # a gateway that could have found them did not answer: no "not found"
            down = "; ".join(f"{f.gateway}: {f.message}" for f in failed)
            said = f"Could not look this customer up ({down}); reload to try again"
        else:
            down = "; ".join(f"{f.gateway}: {f.message}" for f in profile.failures)
            said = "No billing customer found" + (f" (not asked: {down})" if down else "")
        return head + f"<p>{html.escape(clean(said))}</p>"
    card = profile_card(profile, locale=locale, max_rows=ROWS)
    commands = [b.command for b in card.actions if b.command and b.command.split()[0] in actions]
    card = card.model_copy(update={"actions": []})
    body = head + as_html(card)
    if commands:
        body += "<p><b>Actions</b> (copy into chat):</p><ul>" + "".join(
            f"<li><code>{html.escape(clean(f'{COMMAND} {c}…'))}</code></li>" for c in commands
        ) + "</ul>"  # fmt: skip
    if commands and panel:
        body += (
            f'<p><a href="{html.escape(panel)}" target="_blank" rel="noopener noreferrer">'
            "Act in the agent panel</a> (these actions as buttons; the link works once, "
            "for 15 minutes)</p>"
        )
    return body


def panel_link(
    services: Services, payload: dict[str, Any], agent: Actor | None, address: str
) -> str | None:
    """A signed panel link for the agent Help Scout named and the conversation's own email;
    None for anyone who may run no action, or who has no email (roles go by email)."""
    if agent is None or not agent.email or not actions_for(agent):
        return None
    ticket = member(payload, "ticket", "id")
    return panel_entry.link(
        services.settings,
        agent_email=agent.email,
        agent_name=agent.name,
        ticket=str(ticket) if isinstance(ticket, (int, str)) and str(ticket) else None,
        requester=address,
    )


async def sidebar_html(
    services: Services, payload: dict[str, Any], agent: Actor | None = None
) -> str:
    addresses = emails_of(payload.get("customer"))
    if not addresses:
        return "<p>ChargeDesk: this customer has no email to look up.</p>"
    profiles = await asyncio.gather(*(lookup_cache.lookup(services, a) for a, _ in addresses))
    locale = services.settings.locale
    actions = actions_for(agent)
    page = "<hr>".join(
        section(
            profile, address, verified, locale, actions,
            panel_link(services, payload, agent, address) if verified else None,
        )
        for (address, verified), profile in zip(addresses, profiles, strict=True)
    )  # fmt: skip
    return page if actions else read_only_line(agent) + page


def routes(settings: HelpScoutSettings) -> list[Route]:
    """The sidebar's route, when a secret key is configured to check its requests."""
    if settings.secret_key is None:
        return []
    secret_key = settings.secret_key.get_secret_value()

    async def endpoint(request: Request) -> JSONResponse:
        body = await request.body()
        try:
            payload, agent = read_request(body, request.headers, secret_key, settings)
        except Forged as exc:
            log.warning("Help Scout sidebar request refused: %s", exc)
            return JSONResponse({"error": "not a genuine Help Scout request"}, status_code=401)
        services: Services = request.app.state.services
        return JSONResponse({"html": await sidebar_html(services, payload, agent)})

    return [Route(PATH, endpoint, methods=["POST"])]
