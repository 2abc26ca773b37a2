"""`audit`: who did what, from the tamper-evident log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import Field, model_validator

from bot.actors import Role
from bot.approvals.policy import parse_duration
from bot.audit.log import AuditFilter, query
from bot.cards.billing import audit_card
from bot.cards.model import Reply
from bot.commands.args import Args
from bot.commands.router import Context, command


def parse_since(text: str) -> datetime:
    """`7d`, `24h` (ago) or a date `2026-11-01`."""
    try:
        return datetime.now(UTC) - parse_duration(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a duration (7d, 24h) nor a date (2026-11-01)"
        ) from None


class AuditArgs(Args):
    who: str | None = Field(None, max_length=200)
    since: str | None = None

    @model_validator(mode="after")
    def _time_first(self) -> AuditArgs:
        # `audit 7d` means since, not an agent called "7d".
        if self.who and self.since is None and _looks_like_time(self.who):
            self.who, self.since = None, self.who
        if self.since:
            parse_since(self.since)
        return self


def _looks_like_time(text: str) -> bool:
    try:
        parse_since(text)
        return True
    except ValueError:
        return False


@command(
    "audit",
    args=AuditArgs,
    usage="audit [agent] [since]",
    roles=(Role.manager,),
    positional=("who", "since"),
)
async def audit(ctx: Context, args: AuditArgs) -> Reply:
    """The audit log, newest first: `audit`, `audit maria`, `audit shell:maria 7d`, `audit 2026-11-01`."""
    since = parse_since(args.since) if args.since else datetime.now(UTC) - timedelta(days=30)
    entries = await query(ctx.services.db, AuditFilter(actor=args.who, since=since, limit=50))
    title = f"Audit log{' for ' + args.who if args.who else ''} since {since:%Y-%m-%d %H:%M} UTC"
    return Reply(cards=[audit_card(entries, locale=ctx.services.settings.locale, title=title)])
