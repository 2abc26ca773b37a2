"""Gapless numbering per entity and document type, one document per source, never changed."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys

import pytest
from sqlalchemy import func, select

from bot.approvals.executor import SYSTEM
from bot.audit.log import AuditFilter, query, verify
from bot.documents.issue import find, format_number, issue
from bot.documents.model import DocumentKind
from bot.store.tables import DocumentRow
from tests.conftest import REPO
from tests.documents.drafts import draft, plain_render

pytestmark = pytest.mark.storage


async def issue_receipt(services, charge_id: str, render=plain_render):  # type: ignore[no-untyped-def]
    return await issue(services.db, draft(charge_id), prefix="RCT", render=render, actor=SYSTEM)


async def seqs(services) -> list[int]:  # type: ignore[no-untyped-def]
    async with services.db.read() as s:
        return list(await s.scalars(select(DocumentRow.seq).order_by(DocumentRow.seq)))


def test_numbers_read_prefix_year_and_a_padded_sequence():
    assert format_number("INV", 2026, 42) == "INV-2026-000042"


async def test_numbers_follow_each_other_per_entity_and_kind(services):
    first = await issue_receipt(services, "ch_a")
    second = await issue_receipt(services, "ch_b")
    assert (first.number, second.number) == ("RCT-2026-000001", "RCT-2026-000002")
    invoice = draft("in_a").model_copy(update={"kind": DocumentKind.invoice})
    issued = await issue(services.db, invoice, prefix="INV", render=plain_render, actor=SYSTEM)
    assert issued.number == "INV-2026-000001"  # its own series
    other = draft("ch_c").model_copy(update={"entity": "other"})
    separate = await issue(services.db, other, prefix="US-RCT", render=plain_render, actor=SYSTEM)
    assert separate.number == "US-RCT-2026-000001"  # another legal entity, another series


async def test_asking_again_for_the_same_charge_returns_the_same_document(services):
    first = await issue_receipt(services, "ch_a")
    again = await issue_receipt(services, "ch_a")
    assert (again.id, again.number, again.new) == (first.id, first.number, False)
    assert await seqs(services) == [1]


async def test_a_failed_issue_leaves_no_gap(services):
    def broken(_content):  # type: ignore[no-untyped-def]
        raise RuntimeError("renderer crashed")

    await issue_receipt(services, "ch_a")
    with pytest.raises(RuntimeError):
        await issue_receipt(services, "ch_b", render=broken)
    third = await issue_receipt(services, "ch_c")
    assert third.number == "RCT-2026-000002"
    assert await seqs(services) == [1, 2]


async def test_concurrent_issues_in_one_process_number_without_gaps_or_twins(services):
    charges = [f"ch_{i}" for i in range(20)] * 2  # every charge asked for twice at once
    documents = await asyncio.gather(*(issue_receipt(services, c) for c in charges))
    assert await seqs(services) == list(range(1, 21))
    by_charge = {}
    for document in documents:
        by_charge.setdefault(document.content.source_id, set()).add(document.number)
    assert all(len(numbers) == 1 for numbers in by_charge.values())


async def test_processes_issuing_at_once_share_one_gapless_series(services, settings):
    env = {
        **os.environ,
        "CHARGEDESK_DATA_DIR": str(settings.data_dir),
        "DATABASE_URL": settings.sql_url,
        "REDIS_URL": settings.redis_url or "",
    }
    go = settings.data_dir / "go"
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.fakes.issue_process", f"ch_p{n}", "15", str(go),
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        for n in range(3)
    ]  # fmt: skip
    await asyncio.sleep(1.5)
    go.touch()
    outputs = [await asyncio.wait_for(p.communicate(), 120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    numbers = [n for out, _ in outputs for n in json.loads(out.decode().strip().splitlines()[-1])]
    assert sorted(numbers) == [format_number("RCT", 2026, i) for i in range(1, 46)]
    assert await seqs(services) == list(range(1, 46))


async def test_issuing_is_audited_with_the_pdfs_fingerprint(services):
    document = await issue_receipt(services, "ch_a")
    (entry,) = [
        e for e in await query(services.db, AuditFilter(limit=50)) if e.action == "issue_receipt"
    ]
    assert entry.detail["number"] == document.number
    stored = await find(services.db, document.number)
    assert stored is not None and stored.pdf == document.pdf
    assert entry.detail["sha256"] == hashlib.sha256(document.pdf).hexdigest()
    assert (await verify(services.db)).ok


async def test_documents_are_found_by_number_or_id(services):
    document = await issue_receipt(services, "ch_a")
    assert (await find(services.db, document.id)).number == document.number  # type: ignore[union-attr]
    assert await find(services.db, "RCT-2026-999999") is None
    async with services.db.read() as s:
        assert await s.scalar(select(func.count()).select_from(DocumentRow)) == 1
