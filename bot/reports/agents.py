"""`report agents`: each person's trail of actions in the period, with their reasons.

Read from the audit log, so it holds everything a person asked for, decided or was refused,
in order; the bot's own steps (executing, recovering) and the gateways' are left out.
"""

from __future__ import annotations

from collections import Counter

from sqlalchemy import select

from bot.money import Money
from bot.reports.model import Bars, Cell, Report
from bot.reports.period import Period
from bot.services import Services
from bot.store.tables import AuditEntry

COLUMNS = (
    "When (UTC)", "Who", "Action", "Outcome", "Object", "Amount", "Currency", "Reason", "Request",
)  # fmt: skip
# Not a person's doing: the bot running what was approved, and the gateways' own events.
NOT_PEOPLE = ("system", "gateway")


async def agents_report(services: Services, period: Period, *, agent: str | None = None) -> Report:
    """Every audited step a person took in the period, oldest first."""
    async with services.db.read() as session:
        entries = list(await session.scalars(
            select(AuditEntry).where(
                AuditEntry.at >= period.start, AuditEntry.at < period.end,
                AuditEntry.actor_platform.not_in(NOT_PEOPLE),
            ).order_by(AuditEntry.seq)
        ))  # fmt: skip
    if agent is not None:
        wanted = agent.casefold()
        entries = [
            e
            for e in entries
            if wanted == f"{e.actor_platform}:{e.actor_id}".casefold()
            or wanted in e.actor_name.casefold()
        ]
    rows: list[tuple[Cell, ...]] = [
        (
            f"{e.at:%Y-%m-%d %H:%M}", f"{e.actor_name} ({e.actor_platform}:{e.actor_id})",
            e.action, e.outcome, f"{e.gateway}:{e.object_id}" if e.object_id else "—",
            Money(minor=e.amount, currency=e.currency) if e.amount is not None and e.currency else None,
            e.currency, e.reason or "—", e.approval_id or "—",
        )
        for e in entries
    ]  # fmt: skip
    per_person = Counter(e.actor_name for e in entries)
    ranked = sorted(per_person, key=lambda name: (-per_person[name], name))[:12]
    chart = (
        Bars(
            "Audited actions per person",
            tuple(ranked),
            {None: tuple(per_person[n] for n in ranked)},
        )
        if ranked
        else None
    )
    summary = tuple(f"{name}: {count} audited steps" for name, count in per_person.most_common())
    return Report(
        kind="agents",
        title="What each person did",
        period=period,
        columns=COLUMNS,
        rows=tuple(rows),
        notes=summary,
        chart=chart,
        filters=(f"agent={agent}",) if agent else (),
    )
