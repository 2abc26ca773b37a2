"""Codes: the answer never tells whether an email is on file, not even by its timing."""

from __future__ import annotations

import re
from email import message_from_bytes
from email.policy import default

import pytest
from sqlalchemy import func, select

from bot import identity, jobs
from bot.mail.transport import outbox_dir
from bot.store.tables import EmailRow, VerificationCode

pytestmark = pytest.mark.storage


async def rows(services, table) -> int:  # type: ignore[no-untyped-def]
    async with services.db.read() as s:
        return await s.scalar(select(func.count()).select_from(table)) or 0


async def test_asking_does_the_same_work_whether_or_not_the_email_is_on_file(services):
    on_file = await identity.send_code(services, "test:a", "jane.doe@example.com")
    unknown = await identity.send_code(services, "test:b", "nobody@example.com")
    # Same words, and nothing looked up or written before the answer: the job does that.
    assert on_file.replace("jane.doe@example.com", "X") == unknown.replace(
        "nobody@example.com", "X"
    )
    assert await rows(services, VerificationCode) == 0
    await jobs.run_worker(services, burst=True, poll_delay=0.05)
    async with services.db.read() as s:
        codes = list(await s.scalars(select(VerificationCode.email)))
        emails = list(await s.scalars(select(EmailRow.recipient)))
    assert codes == ["jane.doe@example.com"] and emails == ["jane.doe@example.com"]


async def test_codes_are_kept_only_as_keyed_hashes(services):
    await identity.send_code(services, "test:a", "jane.doe@example.com")
    await jobs.run_worker(services, burst=True, poll_delay=0.05)
    async with services.db.read() as s:
        row = await s.scalar(select(VerificationCode))
        email = await s.scalar(select(EmailRow))
    assert row is not None and email is not None
    delivered = (outbox_dir(services.settings) / f"{email.id}.eml").read_bytes()
    body = message_from_bytes(delivered, policy=default).get_body(("plain",)).get_content()
    code = re.findall(r"\b\d{6}\b", body)[0]
    assert code not in row.code_hash and len(row.code_hash) == 64
    assert code.encode() not in email.message and code not in email.subject
    assert await identity.check_code(services, "test:a", code) == "jane.doe@example.com"
    with pytest.raises(identity.UserError) as again:
        await identity.check_code(services, "test:a", code)
    assert again.value.code == "no_code"  # single use
