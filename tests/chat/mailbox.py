"""Reading a verification code the way its recipient would: from the email delivered to them."""

from __future__ import annotations

import re
from email import message_from_bytes
from email.policy import default

from sqlalchemy import select

from bot import jobs
from bot.mail.transport import outbox_dir
from bot.services import Services
from bot.store.tables import EmailRow


async def code_in_outbox(services: Services, email: str) -> str:
    """The six-digit code in the newest email delivered to `email` (its jobs run first).

    Read from the `.eml` the worker wrote: the queued row holds no code, only
    where it goes (bot/mail/placeholders.py).
    """
    await jobs.run_worker(services, burst=True, poll_delay=0.05)
    async with services.db.read() as s:
        rows = list(await s.scalars(select(EmailRow).where(EmailRow.recipient == email)))
    assert rows, f"no email queued to {email}"
    newest = sorted(rows, key=lambda r: r.created)[-1]
    delivered = (outbox_dir(services.settings) / f"{newest.id}.eml").read_bytes()
    body = message_from_bytes(delivered, policy=default).get_body(preferencelist=("plain",))
    assert body is not None
    found = re.search(r"\b(\d{6})\b", body.get_content())  # type: ignore[attr-defined]
    assert found is not None, "no code in the email"
    return found.group(1)
