"""`audit`: who did what, from the tamper-evident log."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from pydantic import Field, model_validator

from bot.actors import Role
from bot.approvals.policy import parse_duration
from bot.audit.log import AuditFilter, query
from bot.cards.billing import audit_card
from bot.cards.model import Reply
from bot.commands.args import Args, ascii_digits, echo, foreign_digits
from bot.commands.router import Context, command

RANGE = "write a duration such as 7d or 24h, or a date such as 2026-11-01"
_DURATION = re.compile(r"^[0-9]+\s*[smhd]$")


def parse_since(text: str) -> datetime:
    """`7d`, `24h` (ago) or a date `2026-11-01`; ValueError (one line) for anything else.

    Durations and dates too far back for a datetime (`99999999d`) are refused
    as such, and only the digits 0-9 count (`١٢d` is not 12 days).
    """
    if foreign_digits(text):
        raise ValueError(
            f"{echo(text)} uses other digits than 0-9: type it as {echo(ascii_digits(text))}"
        )
    try:
        return datetime.now(UTC) - parse_duration(text)
    except (OverflowError, ValueError) as exc:
        if isinstance(exc, OverflowError) or _DURATION.match(text.strip()):
            raise ValueError(f"{echo(text)} is too far back: {RANGE}") from None
    try:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(f"{echo(text)} is neither a duration nor a date: {RANGE}") from None


class AuditArgs(Args):
    who: str | None = Field(None, max_length=200, description="agent name or platform:id")
    since: str | None = Field(None, max_length=40, description="7d, 24h or 2026-11-01")

    @model_validator(mode="after")
    def _time_first(self) -> AuditArgs:
        # `audit 7d` means since, not an agent called "7d".
        if self.who and self.since is None and _looks_like_time(self.who):
            self.who, self.since = None, self.who
        if self.since:
            parse_since(self.since)
        return self


def _looks_like_time(text: str) -> bool:
    """Shaped like a duration or a date, even one refused (`99999999d`, `١٢d`): not a name."""
    typed = ascii_digits(text).strip()
    if _DURATION.match(typed):
        return True
    try:
        datetime.fromisoformat(typed)
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
