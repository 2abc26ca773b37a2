"""Reading a verification code the way its recipient would: from the email queued to them."""

from __future__ import annotations

import re
from email import message_from_bytes
from email.policy import default

from sqlalchemy import select

from bot import jobs
from bot.app import Services
from bot.store.tables import EmailRow


async def code_in_outbox(services: Services, email: str) -> str:
    """The six-digit code in the newest email queued to `email` (its job runs first)."""
    await jobs.run_worker(services, burst=True, poll_delay=0.05)
    async with services.db.read() as s:
        rows = list(await s.scalars(select(EmailRow).where(EmailRow.recipient == email)))
    assert rows, f"no email queued to {email}"
    newest = sorted(rows, key=lambda r: r.created)[-1]
    body = message_from_bytes(newest.message, policy=default).get_body(preferencelist=("plain",))
    assert body is not None
    found = re.search(r"\b(\d{6})\b", body.get_content())  # type: ignore[attr-defined]
    assert found is not None, "no code in the email"
    return found.group(1)
