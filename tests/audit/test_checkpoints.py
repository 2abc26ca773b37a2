"""Signed checkpoints outside the database catch what the hash chain alone cannot: a writer
who rewrites history and recomputes every hash and the head, or cuts entries off the end."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import delete, select, update

from bot import jobs
from bot.audit import checkpoint
from bot.audit.checkpoint import CheckpointKey, ForgedCheckpoint, verify_with_checkpoints
from bot.audit.log import GENESIS, HEAD_ID, entry_dict, entry_hash, verify
from bot.services import Services
from bot.settings import AuditSettings, ConfigError, Settings, load_settings
from bot.store.tables import AuditEntry, AuditHead
from tests.audit.test_audit_log import some_history
from tests.conftest import REPO, say

pytestmark = pytest.mark.storage

KEY = CheckpointKey(b"k" * 40)
OTHER_KEY = CheckpointKey(b"o" * 40)


async def rewrite(services: Services, seq: int, **values: object) -> None:
    """What a database writer with the source code can do: change entry `seq`, then recompute
    every later hash and move the head, so the chain is consistent again."""
    async with services.db.write() as s:
        await s.execute(update(AuditEntry).where(AuditEntry.seq == seq).values(**values))
        await _rechain(s, seq)


async def truncate(services: Services, keep: int) -> None:
    """Drop every entry after `keep` and move the head back to it."""
    async with services.db.write() as s:
        await s.execute(delete(AuditEntry).where(AuditEntry.seq > keep))
        last = await s.scalar(select(AuditEntry).where(AuditEntry.seq == keep))
        head = await s.get(AuditHead, HEAD_ID)
        head.seq, head.hash = keep, last.hash if last else GENESIS


async def _rechain(s, start: int) -> None:
    prev = GENESIS
    if start > 1:
        prev = await s.scalar(select(AuditEntry.hash).where(AuditEntry.seq == start - 1))
    rows = await s.scalars(
        select(AuditEntry).where(AuditEntry.seq >= start).order_by(AuditEntry.seq)
    )
    for row in rows:
        row.prev_hash = prev
        row.hash = entry_hash(entry_dict(row))
        prev = row.hash
    head = await s.get(AuditHead, HEAD_ID)
    head.hash = prev


async def history_with_checkpoints(services, agent, manager, path: Path) -> None:
    """Two checkpoints: after the first entry, and after all eight."""
    pending = await say(services, agent, "refund ch_jane_1 80 reason: duplicate charged twice")
    await checkpoint.write(services.db, KEY, path)
    await say(services, manager, f"approve {pending.approval.id}")
    await say(services, agent, "refund ch_jane_1 10 reason: goodwill sorry")
    await checkpoint.write(services.db, KEY, path)


async def test_an_intact_log_matches_its_checkpoints(services, agent, manager, tmp_path):
    path = tmp_path / "checkpoints.jsonl"
    await history_with_checkpoints(services, agent, manager, path)
    await say(services, agent, "refund ch_jane_1 5 reason: goodwill later")  # after the last one
    result = await verify_with_checkpoints(services.db, checkpoint.read(path, KEY))
    assert result.ok and result.entries == 12
    assert [c.seq for c in checkpoint.read(path, KEY)] == [1, 8]


async def test_a_rewritten_amount_with_recomputed_hashes_is_caught_only_by_the_checkpoints(
    services, agent, manager, tmp_path
):
    path = tmp_path / "checkpoints.jsonl"
    await history_with_checkpoints(services, agent, manager, path)
    await rewrite(services, 4, amount=1)
    # The chain alone cannot tell: every hash and the head were recomputed.
    assert (await verify(services.db)).ok
    result = await verify_with_checkpoints(services.db, checkpoint.read(path, KEY))
    assert not result.ok
    assert result.first_bad_seq == 2  # entry 1 is still what the first checkpoint signed
    assert "entries 2 to 8 were rewritten" in result.problem


@pytest.mark.parametrize("field", ["reason", "actor_name", "approvers", "outcome"])
async def test_any_rewritten_field_is_caught(services, agent, manager, tmp_path, field):
    path = tmp_path / "checkpoints.jsonl"
    await history_with_checkpoints(services, agent, manager, path)
    forged = ["nobody"] if field == "approvers" else "nothing to see"
    await rewrite(services, 1, **{field: forged})
    assert (await verify(services.db)).ok
    result = await verify_with_checkpoints(services.db, checkpoint.read(path, KEY))
    assert not result.ok and result.first_bad_seq == 1


async def test_removing_the_last_entries_and_moving_the_head_is_caught(
    services, agent, manager, tmp_path
):
    path = tmp_path / "checkpoints.jsonl"
    await history_with_checkpoints(services, agent, manager, path)
    await truncate(services, keep=6)
    assert (await verify(services.db)).ok
    result = await verify_with_checkpoints(services.db, checkpoint.read(path, KEY))
    assert not result.ok and result.first_bad_seq == 7
    assert "the log ends at entry 6" in result.problem
    assert "entries 7 to 8 were removed" in result.problem


async def test_removed_entries_replaced_by_new_ones_are_caught(services, agent, manager, tmp_path):
    path = tmp_path / "checkpoints.jsonl"
    await history_with_checkpoints(services, agent, manager, path)
    await truncate(services, keep=6)
    await say(services, agent, "refund ch_jane_1 5 reason: goodwill cover")  # 4 new entries
    assert (await verify(services.db)).ok
    result = await verify_with_checkpoints(services.db, checkpoint.read(path, KEY))
    assert not result.ok and "entry 8 is not the entry the checkpoint" in result.problem


async def test_a_checkpoint_signed_with_another_key_is_refused(services, agent, tmp_path):
    path = tmp_path / "checkpoints.jsonl"
    await say(services, agent, "refund ch_jane_1 10 reason: goodwill sorry")
    await checkpoint.write(services.db, KEY, path)
    # Someone who rewrote the log appends a checkpoint of their version, with their key.
    await checkpoint.write(services.db, OTHER_KEY, path)
    with pytest.raises(ForgedCheckpoint, match=r":2: .*signed with another key"):
        checkpoint.read(path, KEY)


async def test_an_edited_checkpoint_line_is_refused(services, agent, manager, tmp_path):
    path = tmp_path / "checkpoints.jsonl"
    await history_with_checkpoints(services, agent, manager, path)
    await rewrite(services, 4, amount=1)
    # Bring the signed hash in line with the rewritten log: the signature no longer matches.
    lines = path.read_text().splitlines()
    body = json.loads(lines[1])
    async with services.db.read() as s:
        body["hash"] = await s.scalar(select(AuditEntry.hash).where(AuditEntry.seq == 8))
    path.write_text(lines[0] + "\n" + json.dumps(body) + "\n")
    with pytest.raises(ForgedCheckpoint, match="signature does not match"):
        checkpoint.read(path, KEY)


async def test_a_line_that_is_not_a_checkpoint_is_refused(tmp_path):
    path = tmp_path / "checkpoints.jsonl"
    path.write_text('{"seq": 1}\n')
    with pytest.raises(ForgedCheckpoint, match="not a checkpoint line"):
        checkpoint.read(path, KEY)


async def test_no_checkpoint_at_all_does_not_verify(services):
    result = await verify_with_checkpoints(services.db, [])
    assert not result.ok and "no checkpoint" in result.problem


async def test_an_empty_log_can_be_checkpointed_and_then_not_emptied(services, tmp_path):
    path = tmp_path / "checkpoints.jsonl"
    first = await checkpoint.write(services.db, KEY, path)
    assert first.seq == 0 and first.hash == GENESIS
    assert (await verify_with_checkpoints(services.db, checkpoint.read(path, KEY))).ok


# The schedule: the job worker writes one per interval, and one as it stops.


@pytest.fixture
def settings(tmp_path: Path, database_url: str, redis_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        redis_url=redis_url,
        redis_prefix=f"test-{secrets.token_hex(4)}:",
        audit=AuditSettings(
            checkpoint_file=tmp_path / "anchor" / "checkpoints.jsonl",
            checkpoint_key="s" * 40,
        ),
    )


def lines_in(services: Services) -> list[str]:
    path = services.settings.audit.checkpoint_file
    return path.read_text().splitlines() if path.exists() else []


async def test_the_periodic_job_writes_one_checkpoint_per_interval(services, agent):
    await say(services, agent, "refund ch_jane_1 10 reason: goodwill sorry")
    assert "audit_checkpoint" in jobs.PERIODIC
    assert await checkpoint.audit_checkpoint({"services": services}) == "written"
    assert await checkpoint.audit_checkpoint({"services": services}) == "not due"
    [line] = lines_in(services)
    assert json.loads(line)["seq"] == 4
    key = checkpoint.configured_key(services.settings)
    assert (await verify_with_checkpoints(services.db, checkpoint.read(Path(
        services.settings.audit.checkpoint_file), key))).ok  # fmt: skip


@pytest.mark.parametrize("tamper", ["rewrite", "truncate"])
async def test_the_next_scheduled_checkpoint_raises_the_alarm(services, agent, caplog, tamper):
    await say(services, agent, "refund ch_jane_1 10 reason: goodwill sorry")
    await checkpoint.write_configured(services)
    if tamper == "rewrite":
        await rewrite(services, 2, reason="nothing to see")
    else:
        await truncate(services, keep=2)
    with caplog.at_level("ERROR", logger="bot.audit.checkpoint"):
        await checkpoint.write_configured(services)
    assert "AUDIT LOG TAMPERING" in caplog.text
    assert len(lines_in(services)) == 2  # the schedule goes on; the first line still tells


async def test_an_untouched_log_raises_no_alarm(services, agent, caplog):
    await checkpoint.write_configured(services)
    await say(services, agent, "refund ch_jane_1 10 reason: goodwill sorry")
    with caplog.at_level("ERROR", logger="bot.audit.checkpoint"):
        await checkpoint.write_configured(services)
    assert "TAMPERING" not in caplog.text


async def test_a_stopping_worker_writes_a_checkpoint(services, agent):
    await say(services, agent, "refund ch_jane_1 10 reason: goodwill sorry")
    await services.redis.set(checkpoint.due_key(services), "1")  # the periodic one is not due
    worker = asyncio.create_task(jobs.run_worker(services, poll_delay=0.05))
    await asyncio.sleep(0.5)
    worker.cancel()
    with pytest.raises(asyncio.CancelledError):
        await worker
    [line] = lines_in(services)
    # The worker's own jobs (documents) may have logged more: the last word is the head's.
    assert json.loads(line)["seq"] == (await verify(services.db)).entries >= 4


async def test_without_a_key_and_a_file_the_job_does_nothing(services, tmp_path):
    services.settings.audit.checkpoint_file = None
    assert await checkpoint.audit_checkpoint({"services": services}) == "off"


def test_the_checkpoint_file_and_key_must_be_outside_the_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARGEDESK_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CHARGEDESK_AUDIT__CHECKPOINT_FILE", str(tmp_path / "data" / "cp.jsonl"))
    with pytest.raises(ConfigError, match=r"audit\.checkpoint_file: must be outside data_dir"):
        load_settings()
    monkeypatch.setenv("CHARGEDESK_AUDIT__CHECKPOINT_FILE", str(tmp_path / "cp.jsonl"))
    monkeypatch.setenv("CHARGEDESK_AUDIT__CHECKPOINT_KEY_FILE", str(tmp_path / "data" / "k"))
    with pytest.raises(ConfigError, match=r"audit\.checkpoint_key_file: must be outside"):
        load_settings()


def test_the_checkpoint_key_is_not_the_portal_secret(monkeypatch):
    monkeypatch.setenv("CHARGEDESK_AUDIT__CHECKPOINT_KEY", os.environ["CHARGEDESK_PORTAL__SECRET"])
    with pytest.raises(ConfigError, match=r"audit\.checkpoint_key: must not be the portal secret"):
        load_settings()
    monkeypatch.setenv("CHARGEDESK_AUDIT__CHECKPOINT_KEY", "short")
    with pytest.raises(ConfigError, match="at least 32 characters"):
        load_settings()


# The command line, as an auditor runs it.


def chargedesk(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=60,
    )  # fmt: skip


async def test_cli_checkpoint_and_verify_against_it(services, agent, manager, tmp_path):
    await some_history(services, agent, manager)
    path, key_file, other = tmp_path / "cp.jsonl", tmp_path / "audit.key", tmp_path / "other.key"
    key_file.write_text("a" * 48 + "\n")
    other.write_text("b" * 48 + "\n")
    env = {
        **os.environ,
        "DATABASE_URL": services.settings.sql_url,
        "CHARGEDESK_DATA_DIR": str(services.settings.data_dir),
        "CHARGEDESK_AUDIT__CHECKPOINT_KEY_FILE": str(key_file),
        "CHARGEDESK_AUDIT__CHECKPOINT_FILE": str(path),
    }
    written = chargedesk(env, "audit", "checkpoint")
    assert written.returncode == 0, written.stderr
    assert json.loads(written.stdout)["seq"] == 8
    ok = chargedesk(env, "audit", "verify", "--checkpoint", str(path))
    assert ok.returncode == 0, ok.stderr
    assert "intact: 8 entries, matching 1 signed checkpoint" in ok.stdout

    await rewrite(services, 4, amount=1)
    plain = chargedesk(env, "audit", "verify")
    assert plain.returncode == 0 and "hash chain only" in plain.stdout
    caught = chargedesk(env, "audit", "verify", "--checkpoint", str(path))
    assert caught.returncode == 1
    assert "BROKEN at entry 1: " in caught.stderr and "were rewritten" in caught.stderr
    forged = chargedesk(env, "audit", "verify", "--checkpoint", str(path), "--key-file", str(other))
    assert forged.returncode == 1 and "REFUSED" in forged.stderr
