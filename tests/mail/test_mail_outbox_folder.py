"""Without SMTP_URL, each email becomes one .eml file in the outbox folder."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default

import pytest
from sqlalchemy import update

from bot.mail.outbox import SENT, deliver, pending_ids, status
from bot.store.tables import EmailRow
from tests.mail.mailtools import PDF, queue_receipt, with_mail

pytestmark = pytest.mark.storage


async def test_each_email_is_one_file_however_often_it_is_delivered(services, tmp_path):
    folder = tmp_path / "outbox"
    mail = with_mail(services, outbox_dir=folder)
    first = await queue_receipt(mail, "R-1")
    second = await queue_receipt(mail, "R-2")

    assert await deliver(mail, first) == SENT
    assert await deliver(mail, first) == SENT  # already sent: nothing written
    assert await deliver(mail, second) == SENT

    assert sorted(p.name for p in folder.iterdir()) == sorted([f"{first}.eml", f"{second}.eml"])
    message = message_from_bytes((folder / f"{first}.eml").read_bytes(), policy=default)
    assert message["Subject"] == "Your receipt R-1"
    assert message["X-ChargeDesk-Document"] == "R-1"
    [attachment] = list(message.iter_attachments())
    assert attachment.get_content() == PDF
    assert (await status(mail.db, first)).state == SENT


async def test_a_claim_taken_over_after_a_crash_rewrites_the_same_file(services, tmp_path):
    folder = tmp_path / "outbox"
    mail = with_mail(services, outbox_dir=folder, timeout=1.0)
    email_id = await queue_receipt(mail)
    # A deliverer claimed it and died before writing anything down.
    long_ago = datetime.now(UTC) - timedelta(minutes=5)
    async with mail.db.write() as session:
        await session.execute(
            update(EmailRow)
            .where(EmailRow.id == email_id)
            .values(state="sending", claimed_at=long_ago, attempts=1)
        )
    (folder).mkdir()
    (folder / f"{email_id}.eml").write_bytes(b"half a message from the crashed attempt")

    assert await pending_ids(mail.db, lease=timedelta(seconds=2)) == [email_id]
    assert await deliver(mail, email_id) == SENT

    assert [p.name for p in folder.iterdir()] == [f"{email_id}.eml"]
    assert b"X-ChargeDesk-Document: R-2026-0001" in (folder / f"{email_id}.eml").read_bytes()
    assert (await status(mail.db, email_id)).attempts == 2
    assert await pending_ids(mail.db) == []


async def test_a_live_claim_is_left_alone(services, tmp_path):
    mail = with_mail(services, outbox_dir=tmp_path / "outbox")
    email_id = await queue_receipt(mail)
    async with mail.db.write() as session:
        await session.execute(
            update(EmailRow)
            .where(EmailRow.id == email_id)
            .values(state="sending", claimed_at=datetime.now(UTC))
        )
    assert await pending_ids(mail.db) == []
    assert await deliver(mail, email_id) == "busy"
    assert not (tmp_path / "outbox").exists()


async def test_the_default_folder_is_under_the_data_dir(services):
    mail = with_mail(services)
    email_id = await queue_receipt(mail)
    assert await deliver(mail, email_id) == SENT
    assert (services.settings.data_dir / "outbox" / f"{email_id}.eml").is_file()
