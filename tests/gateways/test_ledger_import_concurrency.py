"""A large import next to other writers: it never holds the write lock for its whole run,
and a crash half-way leaves nothing visible."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text, update

from bot.gateways.ledger.importer import STAGED, import_file
from bot.services import Services
from bot.store.tables import LedgerCharge, LedgerCustomer

ROOT = Path(__file__).resolve().parents[2]


def write_export(path: Path, charges: int, prefix: str = "ch") -> Path:
    """A JSON export: 50 customers and `charges` succeeded charges among them."""
    customers = [{"id": f"cus_{n}", "email": f"c{n}@example.com"} for n in range(50)]
    rows = [
        {"id": f"{prefix}_{n}", "customer": f"cus_{n % 50}", "amount": 1000 + n,
         "currency": "EUR", "status": "succeeded", "created": "2026-01-02T03:04:05Z"}
        for n in range(charges)
    ]  # fmt: skip
    path.write_text(json.dumps({"customers": customers, "charges": rows}))
    return path


async def count(services: Services, table: object) -> int:
    async with services.db.read() as s:
        return await s.scalar(select(func.count()).select_from(table)) or 0  # type: ignore[arg-type]


async def wait_for_staged_rows(services: Services) -> None:
    """Until the import has staged its first batch (it is then past parsing and checks)."""
    for _ in range(3000):
        try:
            if await count(services, STAGED["charges"]):
                return
        except Exception:  # the staging table is created by the import itself
            pass
        await asyncio.sleep(0.01)
    raise AssertionError("the import never staged a row")


async def test_ledger_import_lets_another_writer_commit_while_it_runs(
    services: Services, tmp_path: Path
) -> None:
    export = write_export(tmp_path / "export.json", 20_000)
    charges, customers = await count(services, LedgerCharge), await count(services, LedgerCustomer)
    importing = asyncio.create_task(import_file(services.db, export))
    await wait_for_staged_rows(services)
    # Another writer (an approval, a webhook) gets its turn between the import's batches.
    async with services.db.write() as s:
        s.add(LedgerCustomer(id="cus_meanwhile", created=datetime.now(UTC)))
    assert not importing.done(), "the writer waited for the whole import"
    # Until the import publishes, none of its rows is visible.
    assert await count(services, LedgerCharge) == charges

    summary = await importing
    assert summary.charges == 20_000
    assert await count(services, LedgerCharge) == charges + 20_000
    assert await count(services, LedgerCustomer) == customers + 51  # the other writer's stays
    assert await count(services, STAGED["charges"]) == 0


async def test_ledger_import_killed_halfway_leaves_nothing_and_the_next_one_succeeds(
    services: Services, tmp_path: Path
) -> None:
    export = write_export(tmp_path / "export.json", 30_000)
    charges, customers = await count(services, LedgerCharge), await count(services, LedgerCustomer)
    script = (
        "import asyncio, sys\n"
        "from bot.store.db import Database\n"
        "from bot.gateways.ledger.importer import import_file\n"
        "async def main():\n"
        "    db = Database(sys.argv[1])\n"
        "    await import_file(db, sys.argv[2])\n"
        "asyncio.run(main())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, services.settings.sql_url, str(export), env=env
    )
    try:
        await wait_for_staged_rows(services)
        child.send_signal(signal.SIGKILL)
    finally:
        await child.wait()
    assert child.returncode == -signal.SIGKILL
    assert await count(services, STAGED["charges"]) > 0  # it was half-way
    assert await count(services, LedgerCharge) == charges
    assert await count(services, LedgerCustomer) == customers

    # The crashed import's rows are removed once they are old; a new import does not wait for that.
    async with services.db.write() as s:
        await s.execute(
            update(STAGED["charges"]).values(staged_at=datetime.now(UTC) - timedelta(days=1))
        )
    summary = await import_file(services.db, write_export(tmp_path / "small.json", 10, "ch_b"))
    assert summary.charges == 10
    assert await count(services, LedgerCharge) == charges + 10
    assert await count(services, STAGED["charges"]) == 0


async def test_ledger_import_requests_one_receipt_per_payment_in_batches(
    services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot import jobs
    from bot.documents import automatic
    from bot.documents.automatic import import_recorder, start_imported
    from bot.gateways.ledger.importer import NewMoney
    from bot.store.tables import DocumentRequest, DocumentRow

    monkeypatch.setattr(automatic, "_BULK", 2)  # batches of 2 (1,000 in use): 3 receipts, 2 jobs
    export = write_export(tmp_path / "export.json", 3)
    record, added = import_recorder(services), []

    async def on_write(session: object, new: NewMoney) -> None:
        await record(session, new)  # type: ignore[arg-type]
        added.append(new)

    await import_file(services.db, export, on_write=on_write)
    await import_file(services.db, export, on_write=on_write)  # again: nothing new
    assert [len(new.payments) for new in added] == [3, 0]
    requests_before = await count(services, DocumentRequest)
    for new in added:
        await start_imported(services, new)
    await jobs.run_worker(services, burst=True)
    async with services.db.read() as s:
        receipts = list(await s.scalars(select(DocumentRow.source_id)))
    assert sorted(receipts) == ["ch_0", "ch_1", "ch_2"]
    assert await count(services, DocumentRequest) == requests_before


async def test_a_staging_table_left_from_before_an_upgrade_is_made_again(services, tmp_path):
    # As if `ledger_charges` had gained a column since its staging table was made.
    staged = STAGED["charges"]
    async with services.db.engine.begin() as conn:
        await conn.execute(text(f"DROP TABLE IF EXISTS {staged.name}"))
        await conn.execute(
            text(f"CREATE TABLE {staged.name} (import_id VARCHAR(40), id VARCHAR(64))")
        )

    summary = await import_file(services.db, write_export(tmp_path / "export.json", 5, "ch_up"))

    assert summary.charges == 5
    assert await count(services, LedgerCharge) >= 5
