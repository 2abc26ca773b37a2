"""`report refunds`: who refunded what and why, with who approved it, against the policy.

Two sources, both our own records: refunds the bot executed (succeeded approval requests,
timed when they ran) and refunds made in a gateway's own dashboard, which the webhooks
audited as `external`. Grouped per person, reason code and currency.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from bot.actors import Role
from bot.money import Money
from bot.reports.model import Cell, Report, bars_by_currency, totals_by_currency
from bot.reports.period import Period
from bot.services import Services
from bot.store.tables import ApprovalRow, ApprovalVote, AuditEntry

COLUMNS = (
    "Requested by", "Reason code", "Currency", "Refunds", "Amount", "Without approval",
    "Approved by", "Largest", "Busiest day",
)  # fmt: skip
EXTERNAL = "external"


@dataclass(frozen=True)
class _Refund:
    who: str
    key: str
    code: str
    amount: Money
    at: datetime
    alone: bool
    approvers: tuple[str, ...]


async def _executed(services: Services, period: Period) -> list[_Refund]:
    async with services.db.read() as session:
        rows = list(await session.scalars(
            select(ApprovalRow).where(
                ApprovalRow.action == "refund", ApprovalRow.state == "succeeded",
                ApprovalRow.updated_at >= period.start, ApprovalRow.updated_at < period.end,
            ).order_by(ApprovalRow.updated_at)
        ))  # fmt: skip
        votes: dict[str, list[str]] = defaultdict(list)
        for vote in await session.scalars(
            select(ApprovalVote).where(
                ApprovalVote.approval_id.in_([r.id for r in rows]),
                ApprovalVote.decision == "approve",
            )
        ):
            votes[vote.approval_id].append(vote.approver_name)
    return [
        _Refund(
            who=row.requester_name, key=row.requester_key, code=row.reason_code or "(none)",
            amount=Money(minor=row.amount or 0, currency=row.currency or "XXX"),
            at=row.updated_at, alone=row.auto_approved, approvers=tuple(votes[row.id]),
        )
        for row in rows
        if row.amount is not None and row.currency is not None
    ]  # fmt: skip


async def _external(services: Services, period: Period) -> list[_Refund]:
    async with services.db.read() as session:
        entries = await session.scalars(
            select(AuditEntry).where(
                AuditEntry.action == "refund", AuditEntry.outcome == "external",
                AuditEntry.at >= period.start, AuditEntry.at < period.end,
            ).order_by(AuditEntry.seq)
        )  # fmt: skip
        return [
            _Refund(
                who=e.actor_name, key=f"{e.actor_platform}:{e.actor_id}", code=EXTERNAL,
                amount=Money(minor=e.amount, currency=e.currency), at=e.at, alone=False,
                approvers=(),
            )
            for e in entries
            if e.amount is not None and e.currency is not None
        ]  # fmt: skip


def _matches(refund: _Refund, agent: str | None, code: str | None) -> bool:
    if code is not None and refund.code.casefold() != code.casefold():
        return False
    if agent is None:
        return True
    wanted = agent.casefold()
    return wanted == refund.key.casefold() or wanted in refund.who.casefold()


def _policy_notes(services: Services, currencies: set[str]) -> tuple[str, ...]:
    """What each role may refund alone, in the currencies the report shows."""
    rules = services.policy.for_action("refund")
    notes = []
    for role in (Role.agent, Role.manager):
        limits = rules.limits.get(role.value, {})
        budgets = rules.daily_budget.get(role.value, {})
        for currency in sorted((set(limits) | set(budgets)) & currencies):
            alone, budget = limits.get(currency), budgets.get(currency)
            words = [f"up to {alone.plain()} a refund" if alone else None,
                     f"{budget.plain()} a day" if budget else None]  # fmt: skip
            said = ", ".join(w for w in words if w)
            notes.append(f"policy: {role.value}s refund alone {said}")
    return tuple(notes)


async def refunds_report(
    services: Services, period: Period, *, agent: str | None = None, code: str | None = None
) -> Report:
    """Refunds in the period per person, reason code and currency."""
    refunds = [
        r
        for r in [*await _executed(services, period), *await _external(services, period)]
        if _matches(r, agent, code)
    ]
    groups: dict[tuple[str, str, str], list[_Refund]] = defaultdict(list)
    for refund in refunds:
        groups[(refund.who, refund.code, refund.amount.currency)].append(refund)
    rows: list[tuple[Cell, ...]] = []
    for (who, code_, currency), items in sorted(groups.items()):
        per_day: dict[str, int] = defaultdict(int)
        for item in items:
            per_day[item.at.date().isoformat()] += item.amount.minor
        day, most = max(per_day.items(), key=lambda kv: (kv[1], kv[0]))
        approvers = sorted({name for item in items for name in item.approvers})
        rows.append((
            who, code_, currency, len(items),
            Money(minor=sum(i.amount.minor for i in items), currency=currency),
            sum(1 for i in items if i.alone), ", ".join(approvers) or "—",
            Money(minor=max(i.amount.minor for i in items), currency=currency),
            f"{day}: {Money(minor=most, currency=currency).plain()}",
        ))  # fmt: skip
    filters = tuple(f for f in (agent and f"agent={agent}", code and f"code={code}") if f)
    return Report(
        kind="refunds",
        title="Refunds by person and reason",
        period=period,
        columns=COLUMNS,
        rows=tuple(rows),
        totals=totals_by_currency(
            (r.amount for r in refunds), label="Total", width=len(COLUMNS), at=4
        ),
        notes=_policy_notes(services, {r.amount.currency for r in refunds}),
        chart=bars_by_currency("Refunded per person", ((r.who, r.amount) for r in refunds)),
        filters=filters,
    )
