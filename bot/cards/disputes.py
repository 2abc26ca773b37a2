"""Dispute cards: the evidence that will be sent, field by field and file by file."""

from __future__ import annotations

from bot.cards.model import Button, Card, Fact, Section, Table
from bot.disputes.evidence import Evidence
from bot.models import Dispute

_DUE = "%Y-%m-%d %H:%M UTC"


def dispute_facts(dispute: Dispute, locale: str) -> list[Fact]:
    """Reason, amount, status and evidence due date of one dispute."""
    return [
        Fact(label="Dispute", value=f"{dispute.gateway}:{dispute.id}"),
        Fact(label="Payment", value=dispute.charge_id),
        Fact(label="Amount", value=dispute.amount.format(locale)),
        Fact(label="Reason", value=dispute.reason),
        Fact(label="Status", value=dispute.status.value),
        Fact(
            label="Evidence due",
            value=f"{dispute.evidence_due_by:{_DUE}}" if dispute.evidence_due_by else "—",
        ),
    ]


def dispute_buttons(gateway: str, dispute_id: str) -> list[Button]:
    """Answer it: send our evidence, or accept it (both ask for a reason, then approval)."""
    return [
        Button(label=f"Evidence {dispute_id}", command=f"dispute {gateway}:{dispute_id} evidence reason: ",
               style="primary"),
        Button(label=f"Accept {dispute_id}", command=f"dispute {gateway}:{dispute_id} accept reason: ",
               style="danger"),
    ]  # fmt: skip


def reminder_card(dispute: Dispute, days: int, *, locale: str) -> Card:
    """Evidence is due within `days` days and nothing was sent yet."""
    return Card(
        title=f"Dispute evidence due within {days} day{'s' * (days != 1)}: "
        f"{dispute.gateway} {dispute.id}",
        subtitle="Not answered yet: send our evidence or accept it before it is due",
        tone="danger",
        sections=[Section(facts=dispute_facts(dispute, locale))],
        actions=dispute_buttons(dispute.gateway, dispute.id),
    )


def evidence_card(dispute: Dispute, evidence: Evidence, *, locale: str) -> Card:
    """What will be sent to the gateway once approved: each field with its text, each file."""
    fields = [[label, value] for _, label, value in evidence.texts()]
    files = [[f.filename, f.kind.replace("_", " "), f"{f.size:,} bytes"] for f in evidence.files]
    return Card(
        title=f"Evidence for dispute {dispute.id}: {evidence.summary()}",
        subtitle=f"Sent to {dispute.gateway} and submitted once a manager approves; "
        "a submitted answer cannot be changed",
        tone="warning",
        sections=[
            Section(facts=dispute_facts(dispute, locale)),
            Section(title="Fields", table=Table(columns=["Field", "Text"], rows=fields))
            if fields
            else Section(title="Fields", text="No text we hold.", tone="muted"),
            Section(title="Files", table=Table(columns=["File", "Document", "Size"], rows=files))
            if files
            else Section(title="Files", text="No receipt or invoice was issued for this payment.",
                         tone="muted"),
        ],
    )  # fmt: skip
