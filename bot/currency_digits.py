"""Stored amounts keep their meaning: the digits each currency was written with, checked at start.

Amounts are stored as bare integers in minor units. `currency_digits` records,
for every currency, how many digits those integers were written with. At start
the record is held against `bot/iso4217.py`:

- a currency not recorded yet is recorded with its ISO digits;
- a recorded currency whose ISO digits differ and which no stored row uses is
  recorded anew (nothing can be misread);
- a recorded currency whose ISO digits differ and which stored rows use refuses
  the start, naming it: `chargedesk db currencies --keep CUR` (the rows already
  use the ISO digits) or `--convert CUR` (rescale them) decides.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.actors import Actor
from bot.audit.log import DIGITS_ACTION, AuditRecord, append
from bot.errors import UserError
from bot.iso4217 import DIGITS, PUBLISHED
from bot.store.db import Database
from bot.store.tables import (
    ApprovalRow,
    AuditEntry,
    CurrencyDigits,
    DocumentRow,
    LedgerCharge,
    LedgerDispute,
    LedgerInvoice,
    LedgerRefund,
    LedgerSubscription,
)

log = logging.getLogger(__name__)

ISO_SOURCE = f"ISO 4217 {PUBLISHED}"

# Every table with a `currency` column, and the integer amount columns `--convert`
# rescales. Documents and audit entries are records kept as written: a document is
# never updated, and the audit chain cannot be rewritten.
AMOUNT_COLUMNS: dict[type[Any], tuple[str, ...]] = {
    LedgerCharge: ("amount", "amount_captured", "amount_refunded"),
    LedgerRefund: ("amount",),
    LedgerSubscription: ("amount",),
    LedgerInvoice: ("amount_due", "amount_paid"),
    LedgerDispute: ("amount",),
    ApprovalRow: ("amount",),
    AuditEntry: (),
    DocumentRow: (),
}


class StoredDigitsChanged(UserError):
    """Stored amounts of a currency would be read with other digits than they were written with."""


@dataclass(frozen=True)
class Change:
    """A currency whose recorded digits differ from ISO 4217's."""

    currency: str
    stored: int
    iso: int
    source: str

    def explain(self) -> str:
        example = 199900
        meant, read = Decimal(example).scaleb(-self.stored), Decimal(example).scaleb(-self.iso)
        return (
            f"{self.currency} amounts in the store were written with {self.stored} decimal "
            f"digit(s) ({self.source}) but ISO 4217 gives {self.currency} {self.iso}: "
            f"a stored {example} meant {meant} {self.currency} and would read as {read}"
        )


async def check_currency_digits(db: Database) -> None:
    """Record the digits of every currency; refuse to start when stored amounts would change meaning."""
    async with db.read() as session:
        recorded = await _recorded(session)
    if all(recorded.get(code, (None,))[0] == digits for code, digits in DIGITS.items()):
        return  # the usual start: one small read
    try:
        await _reconcile(db)
    except IntegrityError:
        # Another process recorded the same currencies first (PostgreSQL does not
        # serialize the two writes as SQLite's BEGIN IMMEDIATE does): check again.
        await _reconcile(db)


async def _reconcile(db: Database) -> None:
    async with db.write() as session:
        recorded = await _recorded(session)
        changes = _changes(recorded)
        in_use = [c for c in changes if await _present(session, c.currency)]
        if in_use:
            raise StoredDigitsChanged(
                "currency_digits",
                "; ".join(c.explain() for c in in_use)
                + ". Run `chargedesk db currencies --keep CODE` if the stored amounts already "
                "use the ISO digits, or `chargedesk db currencies --convert CODE` to rescale them",
            )
        now = datetime.now(UTC)
        for change in changes:
            log.info("%s: no stored amounts; digits recorded anew from ISO", change.explain())
            await _record(session, change.currency, change.iso, now, update_row=True)
        for code, digits in DIGITS.items():
            if code not in recorded:
                await _record(session, code, digits, now, update_row=False)


async def pending_changes(db: Database) -> list[tuple[Change, bool]]:
    """Every recorded currency whose digits differ from ISO 4217, and whether rows use it."""
    async with db.read() as session:
        changes = _changes(await _recorded(session))
        return [(c, await _present(session, c.currency)) for c in changes]


def _changes(recorded: dict[str, tuple[int, str]]) -> list[Change]:
    return [
        Change(code, stored, DIGITS[code], source)
        for code, (stored, source) in sorted(recorded.items())
        if code in DIGITS and stored != DIGITS[code]
    ]


async def keep(db: Database, currency: str, actor: Actor) -> Change:
    """The stored amounts of `currency` already use the ISO digits: record them, change nothing else."""
    async with db.write() as session:
        change = await _change(session, currency)
        await _record(session, change.currency, change.iso, datetime.now(UTC), update_row=True)
        await _audit(session, actor, change, "kept", rows=0)
    return change


async def convert(db: Database, currency: str, actor: Actor) -> tuple[Change, int]:
    """Rescale every stored ledger and approval amount of `currency` to the ISO digits.

    One transaction with its audit entry. Returns the change and how many rows
    were rescaled. Refuses, changing nothing, when fewer digits would drop a
    non-zero remainder.
    """
    async with db.write() as session:
        change = await _change(session, currency)
        shift = change.iso - change.stored
        rows = 0
        for model, columns in AMOUNT_COLUMNS.items():
            if not columns:
                continue
            for row in await session.scalars(select(model).where(model.currency == currency)):
                values = {c: getattr(row, c) for c in columns}
                if model is LedgerInvoice and row.lines:
                    row.lines = [
                        {**ln, "amount": _rescale(ln["amount"], shift)} for ln in row.lines
                    ]
                for column, value in values.items():
                    setattr(row, column, None if value is None else _rescale(value, shift))
                rows += 1
        await _record(session, change.currency, change.iso, datetime.now(UTC), update_row=True)
        await _audit(session, actor, change, "converted", rows=rows)
    return change, rows


async def _audit(
    session: AsyncSession, actor: Actor, change: Change, outcome: str, rows: int
) -> None:
    detail = {"currency": change.currency, "from_digits": change.stored, "to_digits": change.iso}
    detail |= {"source": change.source, "rows_rescaled": rows}
    await append(
        session, AuditRecord(actor=actor, action=DIGITS_ACTION, outcome=outcome, detail=detail)
    )


def _rescale(value: int, shift: int) -> int:
    if shift >= 0:
        return value * 10**shift
    whole, rest = divmod(value, 10**-shift)
    if rest:
        raise UserError(
            "invalid", f"cannot convert {value}: it has a fraction the new digits cannot hold"
        )
    return whole


async def _change(session: AsyncSession, currency: str) -> Change:
    code = currency.strip().upper()
    recorded = await _recorded(session)
    if code not in DIGITS:
        raise UserError("invalid", f"{currency!r} is not an ISO 4217 currency of payment")
    if code not in recorded or recorded[code][0] == DIGITS[code]:
        raise UserError("invalid", f"{code} is already recorded with ISO's {DIGITS[code]} digit(s)")
    stored, source = recorded[code]
    return Change(code, stored, DIGITS[code], source)


async def _recorded(session: AsyncSession) -> dict[str, tuple[int, str]]:
    rows = await session.execute(
        select(CurrencyDigits.currency, CurrencyDigits.digits, CurrencyDigits.source)
    )
    return {code: (digits, source) for code, digits, source in rows}


async def _present(session: AsyncSession, currency: str) -> bool:
    for model in AMOUNT_COLUMNS:
        found = await session.scalar(
            select(model.currency).where(model.currency == currency).limit(1)
        )
        if found is not None:
            return True
    return False


async def _record(
    session: AsyncSession, currency: str, digits: int, now: datetime, *, update_row: bool
) -> None:
    if update_row:
        await session.execute(
            update(CurrencyDigits)
            .where(CurrencyDigits.currency == currency)
            .values(digits=digits, source=ISO_SOURCE, recorded_at=now)
        )
    else:
        session.add(
            CurrencyDigits(currency=currency, digits=digits, source=ISO_SOURCE, recorded_at=now)
        )
