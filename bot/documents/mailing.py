"""Email a document to its customer: the PDF attached, replies going to the helpdesk.

The email is built and queued in SQL in one transaction (with the document
itself when it is issued automatically), then handed to the job queue; the
worker sends it, retries it, and never sends it twice (`bot/mail/outbox.py`).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from email.message import EmailMessage

from sqlalchemy.ext.asyncio import AsyncSession

from bot import jobs
from bot.actors import Actor
from bot.audit.log import AuditRecord, append
from bot.billing_links import add_link, grant_of
from bot.documents.issue import IssuedDocument
from bot.errors import UserError
from bot.mail import outbox, placeholders
from bot.mail.message import build_message
from bot.services import Services
from bot.translations import N_, gettext

log = logging.getLogger(__name__)

# The words are the `email` messages of the catalogs (`bot/translations.py`); {number},
# {seller} and {name} are filled in. Subject and body per document kind:
_WORDS = {
    "invoice": (N_("email", "invoice_subject"), N_("email", "invoice_body")),
    "receipt": (N_("email", "receipt_subject"), N_("email", "receipt_body")),
    "credit_note": (N_("email", "credit_note_subject"), N_("email", "credit_note_body")),
}


def compose(
    services: Services, document: IssuedDocument, to: str, *, pages_url: str | None = None
) -> tuple[str, EmailMessage]:
    """(subject, message) of the email carrying `document` to `to`, in the document's language.

    `pages_url` is a signed link to the customer's billing pages, named in the email (or the
    placeholder of one, filled in at send time).
    """
    content = document.content
    language = content.language
    fields = {"number": content.number, "seller": content.seller.name, "name": content.buyer.name}
    subject, body = (
        gettext(language, "email", key, **fields) for key in _WORDS[content.kind.value]
    )
    pages = ""
    if pages_url:
        days = services.settings.portal.link_days
        pages = gettext(language, "email", "pages", days=days, url=pages_url) + "\n\n"
    reply = gettext(language, "email", "reply")
    message = build_message(
        settings=services.settings,
        sender_name=content.seller.name,
        to=to,
        subject=subject,
        text=f"{body}\n\n{pages}{reply}\n\n{content.seller.name}\n",
        attachments=[(document.filename, document.pdf, "application/pdf")],
        customer=f"{content.source_gateway}:{content.customer_id or '-'}",
        document=content.number,
        kind=content.kind.value,
    )
    return subject, message


async def queue_document_email(
    services: Services, session: AsyncSession, document: IssuedDocument, *, purpose: str
) -> str | None:
    """Queue the email inside the caller's transaction; None if that purpose was queued before."""
    to = recipient(document)
    grant = grant_of(await add_link(services, session, to, issued_by=f"email:{purpose}"))
    # The link itself is made when the email is sent: stored, it would be a key at rest.
    subject, message = compose(services, document, to, pages_url=placeholders.link(grant))
    return await outbox.queue(
        session,
        purpose=purpose,
        recipient=to,
        subject=subject,
        message=message,
        document_id=document.id,
    )


def recipient(document: IssuedDocument) -> str:
    """The customer's email on file; UserError (one line) when there is none or it is unusable."""
    to = (document.customer_email or document.content.buyer.email or "").strip()
    if not to:
        raise UserError("no_email", f"{document.number}: the customer has no email address on file")
    # One plain address: a line break or a second address would inject headers or recipients.
    local, at, domain = to.rpartition("@")
    if (
        not at
        or not local
        or "." not in domain
        or len(to) > 320
        or any(c.isspace() or not c.isprintable() or c in ',;<>()[]\\"' for c in to)
    ):
        raise UserError(
            "bad_email",
            f"{document.number}: the customer's email on file is not a usable address ({to!r}); "
            "correct it at the gateway",
        )
    return to


async def send_document(services: Services, document: IssuedDocument, *, actor: Actor) -> str:
    """Email `document` to its customer (at most once a day per document); says where it went."""
    day = datetime.now(UTC).date().isoformat()
    async with services.db.write() as session:
        email_id = await queue_document_email(
            services, session, document, purpose=f"send:{document.id}:{day}"
        )
        if email_id is not None:
            await append(
                session,
                AuditRecord(
                    actor=actor,
                    action=f"email_{document.kind.value}",
                    outcome="queued",
                    gateway=document.content.source_gateway,
                    object_id=document.content.source_id,
                    customer_id=document.content.customer_id,
                    detail={"number": document.number, "email_id": email_id},
                ),
            )
    to = recipient(document)
    if email_id is None:
        return f"{document.number} was already emailed to {to} today"
    await deliver_soon(services, email_id)
    return f"{document.number} queued to {to}"


async def deliver_soon(services: Services, email_id: str) -> None:
    """Hand a queued email to the job queue; if Redis is down the sweeper sends it later."""
    try:
        await jobs.enqueue_email(services, email_id)
    except Exception:
        log.warning(
            "could not enqueue email %s now; the sweeper will send it", email_id, exc_info=True
        )
