"""Helpdesk agents are people with roles, by the email their helpdesk sends for them.

Every helpdesk door (Help Scout's sidebar, the Zendesk, Freshdesk and Front panels, the
Intercom canvas) names the agent at the screen: an email, a display name, the helpdesk's
own user ID. `helpdesk_actor` turns that into an Actor the way the chat doors do:

- the email is normalised like every chat identity (`bot.actors.normalize_identity`:
  NFKC, case-folded, invisible characters dropped), so `Alex@Example.com` and
  `ａｌｅｘ@example.com` are one agent, and compared with the section's `agents`,
  `managers` and `admins` lists normalised the same way;
- the identity is `<helpdesk>:<email>` (`helpscout:alex@example.com`), stable across
  sessions, so the policy's `[people]` can declare it beside the person's Slack, Discord
  and shell identities and four-eyes compares the person, wherever they act;
- an email in none of the lists is **read-only staff** (`Role.viewer`): it may see
  billing cards, and the router refuses it every command that moves money. Never a
  customer: a viewer sees nothing of a customer's own commands, and gains nothing more.

Call it only with what a verified request carried: the door checks the helpdesk's
signature first and maps the agent after, so a forged request never yields an actor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from bot.actors import Actor, Role, normalize_identity

NAME_CHARS = 100


class AgentLists(Protocol):
    """What a `[helpdesk.<name>]` section says of its agents (`_HelpdeskSection`)."""

    agents: list[str]
    managers: list[str]
    admins: list[str]
    finance: list[str]


def roles_for(section: AgentLists, email: str) -> frozenset[Role]:
    """The roles a (normalised) email holds in a section; read-only staff when none."""
    listed: Sequence[tuple[Role, list[str]]] = (
        (Role.agent, section.agents),
        (Role.manager, section.managers),
        (Role.admin, section.admins),
        (Role.finance, section.finance),
    )
    roles = {role for role, emails in listed if email in {normalize_identity(e) for e in emails}}
    if not roles & {Role.agent, Role.manager, Role.admin}:
        roles.add(Role.viewer)  # finance staff see the card beside a ticket too, read-only
    return frozenset(roles)


def helpdesk_actor(
    helpdesk_name: str,
    settings_section: AgentLists,
    email: str | None,
    display_name: str | None,
    platform_id: str | int | None,
) -> Actor:
    """The person behind a helpdesk's agent, with the roles the section gives their email.

    Without an email (a helpdesk that sent none) the agent is read-only staff known by the
    helpdesk's user ID (`helpscout:id:42`, never mistaken for an email). With neither,
    ValueError: nobody to name.
    """
    platform = normalize_identity(helpdesk_name)
    address = normalize_identity(email) if isinstance(email, str) else ""
    if "@" in address:
        ident, roles = address, roles_for(settings_section, address)
    elif platform_id is not None and normalize_identity(str(platform_id)):
        ident, roles = f"id:{normalize_identity(str(platform_id))}", frozenset({Role.viewer})
        address = ""
    else:
        raise ValueError(f"{helpdesk_name} named no agent: neither an email nor a user ID")
    name = " ".join((display_name or "").split())[:NAME_CHARS] or address or ident
    return Actor(platform=platform, id=ident, name=name, email=address or None, roles=roles)
