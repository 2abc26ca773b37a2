"""`links` and `unlink`: which chat users are verified as which billing customer, and revoking it.

Agents name a chat user as `slack:U0123ABC` (or a mention typed on that
platform) or everyone verified on an email. Revoking is audited by
`bot/identity.py`; a revoked user sees no billing until they verify again, and
the billing page links and sessions that came from the link end with it.
"""

from __future__ import annotations

import re

from pydantic import Field

from bot import identity
from bot.cards.model import Button, Card, Reply, Section, Table
from bot.commands.args import Args, Reason, echo
from bot.commands.router import Context, command
from bot.errors import UserError

WHO = "<user|email>"
# `<@U0123ABC>` (Slack, Discord), `<@U0123ABC|jane>` (Slack), `<@!1234>` (Discord nicknames).
_MENTION = re.compile(r"^<@!?([A-Za-z0-9]+)(?:\|[^>]*)?>$")
UNLINK_BUTTONS = 3


class WhoArgs(Args):
    who: str = Field(
        min_length=3, max_length=320, pattern=r"^\S+$",
        description="an email, a chat user such as discord:1234, or a mention",
    )  # fmt: skip


class UnlinkArgs(WhoArgs):
    reason: Reason = Field(description="why")


def target(ctx: Context, text: str) -> str:
    """The `platform:id` or the email an agent means."""
    mention = _MENTION.match(text)
    if mention:
        return f"{ctx.channel.platform}:{mention.group(1)}"
    if "@" in text:
        return identity.normalize_email(text)
    platform, _, ident = text.partition(":")
    if not platform.isalpha() or not ident:
        raise UserError(
            "usage", f"{echo(text)} is neither an email nor a chat user such as slack:U0123ABC"
        )
    return f"{platform.lower()}:{ident}"


@command("links", args=WhoArgs, usage=f"links {WHO}", positional=("who",))
async def links(ctx: Context, args: WhoArgs) -> Reply:
    """Who is verified as which customer: `links jane@example.com` or `links slack:U0123ABC`.

    Each verified chat user, the email they proved, and when. Only a verified
    user sees billing, and only their own.
    """
    who = target(ctx, args.who)
    found = await identity.links(ctx.services, who)
    if not found:
        return Reply(cards=[Card(
            title=f"No verified links for {who}",
            sections=[Section(text="Nobody is verified there: they see no billing.", tone="muted")],
        )])  # fmt: skip
    return Reply(cards=[Card(
        title=f"Verified links for {who}",
        sections=[Section(table=Table(
            columns=["Who", "Email", "Verified (UTC)"],
            rows=[[f"{link.actor_name} ({link.actor_key})", link.email,
                   f"{link.verified_at:%Y-%m-%d %H:%M}"] for link in found],
        ))],
        actions=[
            Button(label=f"Unlink {link.actor_key}", command=f"unlink {link.actor_key} reason: ",
                   style="danger")
            for link in found[:UNLINK_BUTTONS]
        ],
    )])  # fmt: skip


@command("unlink", args=UnlinkArgs, usage=f"unlink {WHO} reason: <text>", positional=("who",))
async def unlink(ctx: Context, args: UnlinkArgs) -> Reply:
    """Revoke access: that chat user (or everyone on that email) sees no billing any more.

    `unlink slack:U0123ABC reason: left the company` also withdraws the billing
    page links they were given and ends the page sessions those opened.
    `unlink jane@example.com reason: ...` withdraws every billing page link to
    that email (from chat or in emails) and ends every page session on it. They
    can verify again with a new code sent to the email on file.
    """
    who = target(ctx, args.who)
    revoked = await identity.revoke(ctx.services, ctx.actor, who, reason=args.reason)
    if not revoked:
        raise UserError("not_found", f"no verified link or billing page link for {who}")
    ended = ", ".join((
        _count(revoked.links, "verified link"),
        _count(revoked.grants, "billing page link"),
        _count(revoked.sessions, "billing page session"),
    ))  # fmt: skip
    return Reply(cards=[Card(
        title=f"Unlinked {who}",
        tone="success",
        sections=[Section(
            text=f"Revoked {ended}: no billing is shown there until they verify again.",
        ), Section(text=f"Reason: {args.reason}", tone="muted")],
    )])  # fmt: skip


def _count(number: int, what: str) -> str:
    return f"{number} {what}{'s' if number != 1 else ''}"
