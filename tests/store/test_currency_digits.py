"""Stored amounts keep their meaning: a start whose digits disagree with the store is refused."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from alembic import command
from babel.numbers import get_currency_precision
from sqlalchemy import select, text, update

from bot.actors import Actor, Role
from bot.audit.log import AuditRecord, export, record, verify
from bot.cli import main
from bot.currency_digits import ISO_SOURCE, StoredDigitsChanged
from bot.iso4217 import DIGITS
from bot.money import Money
from bot.settings import Settings
from bot.store.db import Database, alembic_config
from bot.store.tables import AuditEntry, CurrencyDigits, LedgerCharge, LedgerCustomer
from bot.wiring import open_services

pytestmark = pytest.mark.storage


async def cli(argv: list[str]) -> int:
    """`chargedesk ...` as an operator runs it: its own event loop, in its own thread."""
    return await asyncio.to_thread(main, argv)


NOW = datetime(2026, 12, 1, tzinfo=UTC)


async def _add_forint_charge(db: Database, minor: int = 199950) -> None:
    async with db.write() as s:
        s.add(LedgerCustomer(id="cus_hu", email="hu@example.com", name="Hu", created=NOW))
        await s.flush()
        s.add(LedgerCharge(id="ch_huf", customer_id="cus_hu", amount=minor, currency="HUF",
                           amount_captured=minor, amount_refunded=0, status="succeeded",
                           created=NOW))  # fmt: skip


async def _written_with(db: Database, currency: str, digits: int, source: str) -> None:
    """As if an earlier release, reading another digit table, had written the store."""
    async with db.write() as s:
        await s.execute(
            update(CurrencyDigits)
            .where(CurrencyDigits.currency == currency)
            .values(digits=digits, source=source)
        )


def _operator_env(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    monkeypatch.setenv("DATABASE_URL", settings.sql_url)  # the environment's own wins over ours
    monkeypatch.setenv("CHARGEDESK_DATA_DIR", str(settings.data_dir))


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    services = await open_services(settings)
    await services.close()
    database = Database(settings.sql_url)
    yield database
    await database.close()


async def test_a_new_store_records_every_iso_currency(db: Database) -> None:
    async with db.read() as s:
        rows = {r.currency: (r.digits, r.source) for r in await s.scalars(select(CurrencyDigits))}
    assert rows == {code: (digits, ISO_SOURCE) for code, digits in DIGITS.items()}


async def test_amounts_written_with_other_digits_refuse_the_start_naming_the_currency(
    db: Database, settings: Settings
) -> None:
    await _add_forint_charge(db)
    await _written_with(db, "HUF", 0, "Babel 2.19.0 (migration 0006)")
    with pytest.raises(StoredDigitsChanged) as refused:
        await open_services(settings)
    message = str(refused.value)
    assert "HUF amounts in the store were written with 0" in message
    assert "Babel 2.19.0" in message and "ISO 4217 gives HUF 2" in message
    assert "--keep HUF" not in message and "--keep CODE" in message
    assert "EUR" not in message  # only the currency that would be misread


async def test_a_currency_no_row_uses_is_recorded_anew_without_refusing(
    db: Database, settings: Settings
) -> None:
    await _written_with(db, "COP", 0, "Babel 2.19.0 (migration 0006)")
    services = await open_services(settings)
    await services.close()
    async with db.read() as s:
        row = await s.get(CurrencyDigits, "COP")
    assert row is not None and (row.digits, row.source) == (2, ISO_SOURCE)


async def test_convert_rescales_stored_amounts_once_and_audits_it(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    await _add_forint_charge(db, minor=1999)  # 1,999 HUF written with 0 digits
    await _written_with(db, "HUF", 0, "Babel 2.19.0 (migration 0006)")
    _operator_env(monkeypatch, settings)
    assert await cli(["db", "currencies"]) == 1
    assert "HUF amounts in the store were written with 0" in capsys.readouterr().out
    assert await cli(["db", "currencies", "--convert", "HUF"]) == 0
    assert await cli(["db", "currencies", "--convert", "HUF"]) == 1  # nothing left to convert
    assert "already recorded" in capsys.readouterr().err
    async with db.read() as s:
        charge = await s.get(LedgerCharge, "ch_huf")
        entry = (await s.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc()))).first()
    assert charge is not None and (charge.amount, charge.amount_captured) == (199900, 199900)
    assert entry is not None and entry.action == "currency_digits"
    assert entry.detail["rows_rescaled"] == 1 and entry.detail["to_digits"] == 2
    assert (await verify(db)).ok
    services = await open_services(settings)  # starts again
    await services.close()


async def test_the_audit_export_gives_each_amount_the_digits_it_was_written_with(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    clerk = Actor(platform="test", id="c", name="c", roles=frozenset({Role.agent}))
    await _add_forint_charge(db, minor=1999)
    await _written_with(db, "HUF", 0, "Babel 2.19.0 (migration 0006)")
    # Written while HUF had 0 digits: the integer 1999 meant 1,999 forints.
    await record(db, AuditRecord(actor=clerk, action="refund", outcome="succeeded",
                                 amount=Money(minor=1999, currency="HUF")))  # fmt: skip
    _operator_env(monkeypatch, settings)
    assert await cli(["db", "currencies", "--convert", "HUF"]) == 0
    await record(db, AuditRecord(actor=clerk, action="refund", outcome="succeeded",
                                 amount=Money(minor=199900, currency="HUF")))  # fmt: skip
    out = io.StringIO()
    await export(db, "csv", out)
    rows = [r for r in csv.DictReader(io.StringIO(out.getvalue())) if r["action"] == "refund"]
    assert [(r["amount"], r["exponent"], r["amount_decimal"]) for r in rows] == [
        ("1999", "0", "1999"),
        ("199900", "2", "1999.00"),
    ]


async def test_keep_records_the_iso_digits_and_changes_no_amount(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _add_forint_charge(db)
    await _written_with(db, "HUF", 0, "Babel 2.19.0 (migration 0006)")
    _operator_env(monkeypatch, settings)
    assert await cli(["db", "currencies", "--keep", "HUF"]) == 0
    async with db.read() as s:
        charge = await s.get(LedgerCharge, "ch_huf")
    assert charge is not None and charge.amount == 199950
    services = await open_services(settings)
    await services.close()


async def test_convert_refuses_a_fraction_the_new_digits_cannot_hold(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    await _add_forint_charge(db, minor=1999)
    await _written_with(db, "HUF", 3, "some other table")  # 1.999 HUF cannot become 2 digits
    _operator_env(monkeypatch, settings)
    assert await cli(["db", "currencies", "--convert", "HUF"]) == 1
    assert "cannot convert 1999" in capsys.readouterr().err
    async with db.read() as s:
        charge = await s.get(LedgerCharge, "ch_huf")
        recorded = await s.get(CurrencyDigits, "HUF")
    assert charge is not None and charge.amount == 1999  # nothing changed
    assert recorded is not None and recorded.digits == 3


async def test_migration_records_the_digits_existing_amounts_were_written_with(
    database_url: str,
) -> None:
    db = Database(database_url)

    def to(revision: str):  # type: ignore[no-untyped-def]
        return lambda conn: command.upgrade(alembic_config(conn), revision)

    async with db.engine.begin() as conn:
        await conn.run_sync(to("0005"))
        await conn.execute(text(
            "INSERT INTO ledger_charges (id, amount, currency, amount_captured, amount_refunded,"
            " status, created) VALUES ('ch_1', 199900, 'HUF', 0, 0, 'succeeded', :t),"
            " ('ch_2', 500, 'JPY', 0, 0, 'succeeded', :t)"
        ), {"t": NOW})  # fmt: skip
        await conn.run_sync(to("head"))
    async with db.read() as s:
        rows = {r.currency: r for r in await s.scalars(select(CurrencyDigits))}
    await db.close()
    assert set(rows) == {"HUF", "JPY"}  # only what the store holds; the start adds the rest
    assert rows["HUF"].digits == get_currency_precision("HUF")  # what wrote them
    assert rows["HUF"].source.startswith("Babel ")


async def test_keep_or_convert_of_an_unknown_or_hostile_code_changes_nothing(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    _operator_env(monkeypatch, settings)
    for code in ("XYZ", "HUF'; DROP TABLE currency_digits; --", "EUR\r\nX"):
        assert await cli(["db", "currencies", "--convert", code]) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    async with db.read() as s:
        assert len(list(await s.scalars(select(CurrencyDigits)))) == len(DIGITS)
