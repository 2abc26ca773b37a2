"""Append-only, hash-chained audit log.

Each entry's hash is SHA-256 over the canonical JSON of the entry and the
previous entry's hash, so changing, removing or inserting a row breaks the
chain from that point on. The chain head lives in one row (`audit_head`):
appends lock it, which keeps the chain linear under concurrency on every
backend, and it also reveals rows removed from the end.

All of this holds against anyone who cannot recompute the hashes. Someone who
can write the database can: rewrite a row, every later hash and the head, and
`verify` passes. Signed checkpoints kept outside the database
(`bot.audit.checkpoint`, `audit verify --checkpoint`) are what catch that.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import inspect, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.actors import Actor
from bot.audit.csv_safe import SafeDictWriter
from bot.money import Money, exponent
from bot.store.db import Database
from bot.store.tables import AuditEntry, AuditHead

GENESIS = "0" * 64
HEAD_ID = 1
# Where a write session keeps the head it locked (see `_locked_head`).
_HEAD_KEY = "bot.audit.head"
# The entry `chargedesk db currencies --convert` writes: amounts of that currency in
# earlier entries keep the digits they were written with (`detail.from_digits`).
DIGITS_ACTION = "currency_digits"
FIELDS = (
    "seq", "at", "actor_platform", "actor_id", "actor_name", "action", "gateway", "object_id",
    "customer_id", "amount", "currency", "reason", "approval_id", "approvers", "outcome",
    "gateway_request_id", "detail", "prev_hash", "hash",
)  # fmt: skip


class AuditRecord(BaseModel):
    """What happened, as the caller knows it; seq, time and hashes are added on append."""

    actor: Actor
    action: str
    outcome: str
    gateway: str | None = None
    object_id: str | None = None
    customer_id: str | None = None
    amount: Money | None = None
    reason: str | None = None
    approval_id: str | None = None
    approvers: list[str] = Field(default_factory=list)
    gateway_request_id: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


def entry_dict(row: AuditEntry) -> dict[str, Any]:
    data = {name: getattr(row, name) for name in FIELDS}
    data["at"] = row.at.astimezone(UTC).isoformat()
    return data


def entry_hash(data: dict[str, Any]) -> str:
    body = {k: v for k, v in data.items() if k != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def append(
    session: AsyncSession, record: AuditRecord, *, now: datetime | None = None
) -> AuditEntry:
    """Add one entry inside the caller's write transaction, so it commits with what it records."""
    head = await _locked_head(session)
    at = now or datetime.now(UTC)
    row = AuditEntry(
        seq=head.seq + 1,
        at=at,
        actor_platform=record.actor.platform,
        actor_id=record.actor.id,
        actor_name=record.actor.name,
        action=record.action,
        gateway=record.gateway,
        object_id=record.object_id,
        customer_id=record.customer_id,
        amount=record.amount.minor if record.amount else None,
        currency=record.amount.currency if record.amount else None,
        reason=record.reason,
        approval_id=record.approval_id,
        approvers=list(record.approvers),
        outcome=record.outcome,
        gateway_request_id=record.gateway_request_id,
        detail=dict(record.detail),
        prev_hash=head.hash,
        hash="",
    )
    row.hash = entry_hash(entry_dict(row))
    session.add(row)
    head.seq, head.hash = row.seq, row.hash
    return row


async def _locked_head(session: AsyncSession) -> AuditHead:
    """The chain head, locked until commit: read once per transaction, then kept for the
    transaction's later appends (a vote that also claims the request appends twice)."""
    transaction = session.sync_session.get_transaction()
    kept = session.info.get(_HEAD_KEY)
    if kept is not None and kept[0] is transaction and not inspect(kept[1]).unloaded:
        return kept[1]  # type: ignore[no-any-return]
    head = await session.scalar(select(AuditHead).where(AuditHead.id == HEAD_ID).with_for_update())
    if head is None:
        raise RuntimeError("audit_head row missing: run `chargedesk db upgrade`")
    session.info[_HEAD_KEY] = (transaction, head)
    return head


async def record(db: Database, record: AuditRecord) -> AuditEntry:
    """Append in a transaction of its own (for events with no other write)."""
    async with db.write() as session:
        return await append(session, record)


@dataclass(frozen=True)
class Verification:
    ok: bool
    entries: int
    problem: str | None = None
    first_bad_seq: int | None = None


async def verify(db: Database, batch: int = 1000) -> Verification:
    """Walk the chain; name the first entry that was changed, removed or inserted."""
    expected_seq, prev = 1, GENESIS
    async with db.read() as session:
        async for row in _stream(session, batch):
            data = entry_dict(row)
            if row.seq != expected_seq:
                return Verification(
                    False,
                    expected_seq - 1,
                    f"entry {expected_seq} is missing (the log jumps from {expected_seq - 1} to {row.seq})",
                    expected_seq,
                )
            if row.prev_hash != prev:
                return Verification(
                    False,
                    expected_seq - 1,
                    f"entry {row.seq} does not follow entry {row.seq - 1}: a row was inserted or replaced",
                    row.seq,
                )
            if entry_hash(data) != row.hash:
                return Verification(
                    False,
                    expected_seq - 1,
                    f"entry {row.seq} was changed after it was written",
                    row.seq,
                )
            prev = row.hash
            expected_seq += 1
        head = await session.get(AuditHead, HEAD_ID)
    last = expected_seq - 1
    if head is None or head.seq != last or head.hash != prev:
        head_seq = head.seq if head else 0
        if head_seq > last:
            problem = f"entries {last + 1} to {head_seq} were removed from the end"
            return Verification(False, last, problem, last + 1)
        return Verification(
            False,
            last,
            f"entry {last} was added outside the log (the chain head is at {head_seq})",
            last,
        )
    return Verification(True, last)


async def _stream(session: AsyncSession, batch: int) -> AsyncIterator[AuditEntry]:
    after = 0
    while True:
        rows = list(
            await session.scalars(
                select(AuditEntry)
                .where(AuditEntry.seq > after)
                .order_by(AuditEntry.seq)
                .limit(batch)
            )
        )
        if not rows:
            return
        for row in rows:
            yield row
        after = rows[-1].seq


class AuditFilter(BaseModel):
    actor: str | None = None
    since: datetime | None = None
    approval_id: str | None = None
    limit: int = Field(20, ge=1, le=10_000)


async def query(db: Database, filters: AuditFilter) -> list[AuditEntry]:
    """Newest first, matching an actor (ID, name or platform:ID), a time and an approval."""
    stmt = select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(filters.limit)
    if filters.actor:
        who = filters.actor
        platform, _, ident = who.partition(":")
        matches = (AuditEntry.actor_id == who) | (AuditEntry.actor_name == who)
        if ident:
            matches |= (AuditEntry.actor_platform == platform) & (AuditEntry.actor_id == ident)
        stmt = stmt.where(matches)
    if filters.since:
        stmt = stmt.where(AuditEntry.at >= filters.since)
    if filters.approval_id:
        stmt = stmt.where(AuditEntry.approval_id == filters.approval_id)
    async with db.read() as session:
        return list(await session.scalars(stmt))


async def export(db: Database, fmt: str, out: io.TextIOBase | Any) -> int:
    """Write the whole log as CSV or JSON Lines, oldest first; returns the entry count.

    CSV is formula-safe (see `bot.audit.csv_safe`): a reason such as `=HYPERLINK(...)`
    reaches a spreadsheet as text, with a leading `'`.

    Beside each integer `amount` go its `exponent` and the exact `amount_decimal`,
    so a reader never guesses a currency's digits.
    """
    count = 0
    fields = (*FIELDS, "exponent", "amount_decimal")
    writer = SafeDictWriter(out, fieldnames=fields) if fmt == "csv" else None
    if writer:
        writer.writeheader()
    async with db.read() as session:
        conversions = await _conversions(session)
        async for row in _stream(session, 1000):
            data = entry_dict(row) | _decimal(row, conversions)
            if writer:
                writer.writerow(data)
            else:
                out.write(json.dumps(data, sort_keys=True, ensure_ascii=False) + "\n")
            count += 1
    return count


async def _conversions(session: AsyncSession) -> dict[str, list[tuple[int, int]]]:
    """Per currency, (seq, digits before) of every digits conversion, oldest first."""
    found: dict[str, list[tuple[int, int]]] = {}
    entries = await session.scalars(
        select(AuditEntry)
        .where(AuditEntry.action == DIGITS_ACTION, AuditEntry.outcome == "converted")
        .order_by(AuditEntry.seq)
    )
    for entry in entries:
        found.setdefault(entry.detail["currency"], []).append(
            (entry.seq, entry.detail["from_digits"])
        )
    return found


def _decimal(row: AuditEntry, conversions: dict[str, list[tuple[int, int]]]) -> dict[str, Any]:
    if row.amount is None or row.currency is None:
        return {"exponent": None, "amount_decimal": None}
    digits = next(
        (before for seq, before in conversions.get(row.currency, []) if row.seq < seq),
        exponent(row.currency),
    )
    return {"exponent": digits, "amount_decimal": str(Decimal(row.amount).scaleb(-digits))}
