"""The audit log is a hash chain: any changed, removed or inserted row is found."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import pytest
from sqlalchemy import delete, insert, select, update

from bot.audit.log import GENESIS, entry_dict, entry_hash, export, verify
from bot.store.tables import AuditEntry
from tests.conftest import REPO, say

pytestmark = pytest.mark.storage


async def some_history(services, agent, manager) -> None:
    pending = await say(services, agent, "refund ch_jane_1 80 reason: duplicate charged twice")
    await say(services, manager, f"approve {pending.approval.id}")
    await say(services, agent, "refund ch_jane_1 10 reason: goodwill sorry")


async def test_intact_log_verifies(services, agent, manager):
    await some_history(services, agent, manager)
    result = await verify(services.db)
    assert result.ok and result.entries == 8


async def test_a_changed_row_is_detected(services, agent, manager):
    await some_history(services, agent, manager)
    async with services.db.write() as s:
        await s.execute(update(AuditEntry).where(AuditEntry.seq == 4).values(amount=1))
    result = await verify(services.db)
    assert not result.ok and result.first_bad_seq == 4
    assert "entry 4 was changed" in result.problem


async def test_a_removed_row_is_detected(services, agent, manager):
    await some_history(services, agent, manager)
    async with services.db.write() as s:
        await s.execute(delete(AuditEntry).where(AuditEntry.seq == 3))
    result = await verify(services.db)
    assert not result.ok and result.first_bad_seq == 3
    assert "entry 3 is missing" in result.problem


async def test_removing_the_last_rows_is_detected(services, agent, manager):
    await some_history(services, agent, manager)
    async with services.db.write() as s:
        await s.execute(delete(AuditEntry).where(AuditEntry.seq >= 7))
    result = await verify(services.db)
    assert not result.ok and "entries 7 to 8 were removed" in result.problem


async def test_an_inserted_row_is_detected_even_with_a_valid_hash(services, agent, manager):
    await some_history(services, agent, manager)
    async with services.db.write() as s:
        second = (await s.scalars(select(AuditEntry).where(AuditEntry.seq == 2))).one()
        forged = entry_dict(second) | {"seq": 3, "reason": "forged", "prev_hash": second.hash}
        forged["hash"] = entry_hash(forged)
        forged["at"] = second.at
        # Make room after entry 2, then slip in a row whose own hash is right.
        await s.execute(
            update(AuditEntry).where(AuditEntry.seq > 2).values(seq=AuditEntry.seq + 100)
        )
        await s.execute(
            update(AuditEntry).where(AuditEntry.seq > 100).values(seq=AuditEntry.seq - 99)
        )
        await s.execute(insert(AuditEntry).values(**forged))
    result = await verify(services.db)
    assert not result.ok
    assert result.first_bad_seq == 4
    assert "does not follow" in result.problem


async def test_export_csv_and_jsonl(services, agent, manager):
    await some_history(services, agent, manager)
    out = io.StringIO()
    assert await export(services.db, "jsonl", out) == 8
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines[0]["prev_hash"] == GENESIS and lines[1]["prev_hash"] == lines[0]["hash"]
    assert {
        "actor_name",
        "amount",
        "currency",
        "reason",
        "approval_id",
        "approvers",
        "outcome",
    } <= lines[0].keys()
    out = io.StringIO()
    await export(services.db, "csv", out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert len(rows) == 8 and rows[-1]["outcome"] == "succeeded"


def test_cli_verify_exit_codes(tmp_path):
    """`chargedesk audit verify` exits 0 when intact and 1 naming the entry when not."""
    env = {**os.environ, "CHARGEDESK_DATA_DIR": str(tmp_path), "PYTHONPATH": str(REPO)}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    env["CHARGEDESK_CONFIG_DIR"] = str(REPO / "config")
    script = "refund ch_jane_1 10 reason: goodwill sorry\n"
    shell = subprocess.run(
        [sys.executable, "-m", "bot", "shell", "--json"],
        input="",
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert shell.returncode == 0, shell.stderr
    subprocess.run(
        [sys.executable, "-m", "bot", "demo"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=True,
    )
    subprocess.run(
        [sys.executable, "-m", "bot", "shell", "--json"],
        input=script,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=True,
    )
    exported = subprocess.run(
        [sys.executable, "-m", "bot", "audit", "export", "--format", "csv"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert exported.returncode == 0
    assert list(csv.DictReader(io.StringIO(exported.stdout)))[-1]["outcome"] == "succeeded"
    ok = subprocess.run(
        [sys.executable, "-m", "bot", "audit", "verify"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert ok.returncode == 0 and "intact: 4 entries" in ok.stdout
    import sqlite3

    with sqlite3.connect(tmp_path / "chargedesk.db") as conn:
        conn.execute("UPDATE audit_log SET reason = 'nothing to see' WHERE seq = 2")
    broken = subprocess.run(
        [sys.executable, "-m", "bot", "audit", "verify"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert broken.returncode == 1
    assert "entry 2 was changed" in broken.stderr
