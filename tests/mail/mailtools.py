"""Helpers for the email tests: services with chosen mail settings, a queued receipt email."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pydantic import SecretStr

from bot.mail.message import build_message
from bot.mail.outbox import queue
from bot.services import Services

PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj <<>> endobj\n\x00\xff binary tail\n%%EOF\n"


def with_mail(services: Services, *, smtp_url: str | None = None, **mail: Any) -> Services:
    """The same stores, with other mail settings (fast retries unless told otherwise)."""
    settings = services.settings
    changes = {"retry_seconds": 0.05, "timeout": 5.0, "reply_to": "help@shop.example", **mail}
    return replace(
        services,
        settings=settings.model_copy(
            update={
                "smtp_url": SecretStr(smtp_url) if smtp_url is not None else None,
                "mail": settings.mail.model_copy(update=changes),
            }
        ),
    )


async def queue_receipt(services: Services, number: str = "R-2026-0001", **extra: Any) -> str:
    """Queue the email of one receipt (PDF attached) and commit; its email id."""
    message = build_message(
        settings=services.settings,
        sender_name="Shop Ltd",
        to="jane@example.com",
        subject=f"Your receipt {number}",
        text=f"Thank you for your payment. Receipt {number} is attached.",
        attachments=[(f"{number}.pdf", PDF, "application/pdf")],
        customer="ledger:cus_jane",
        document=number,
        kind="receipt",
        **extra,
    )
    async with services.db.write() as session:
        email_id = await queue(
            session,
            purpose=f"receipt:{number}",
            recipient="jane@example.com",
            subject=str(message["Subject"]),
            message=message,
            document_id=f"doc_{number}",
        )
    assert email_id is not None
    return email_id
