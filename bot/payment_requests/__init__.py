"""Payment requests: a customer asked to pay on the gateway's page (the ledger's: our billing
page, `hosted.py`), by email, until paid.

A request is a `payment_requests` row: `open`, then `paid` (the gateway's webhook says so),
`cancelled` (`request cancel <id>`) or `expired` (nobody paid within
`payment_requests.lifetime_days`). The first email and each reminder are queued in the mail
outbox, once each (the purpose names the request and the reminder's number), in the
transaction that records them; reminders are sent `payment_requests.reminder_days` after
the request by a periodic job (`bot/payment_requests/reminders.py`). Emails speak the
customer's language, chosen as for their documents (`document_locale`).

The pay link is a bearer secret: whoever has it can pay, and sees the amount and the
customer's name. Its URL is never stored, logged or audited: emails carry a placeholder that
the outbox fills in when it sends (`bot/mail/placeholders.py`), asking the gateway for the
link at that moment, and refuses to send once the request is no longer open.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

from babel import Locale
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot import jobs
from bot.actors import Actor
from bot.audit.log import AuditRecord, append
from bot.documents.build import document_locale
from bot.errors import UserError
from bot.gateways.base import Capability, Gateway
from bot.mail import outbox, placeholders
from bot.mail.message import build_message
from bot.models import Customer, PayLink, PayLinkStatus
from bot.money import Money
from bot.services import Services
from bot.settings import Settings
from bot.store.tables import PaymentRequestRow
from bot.translations import N_, gettext, language_of

log = logging.getLogger(__name__)
# The email's subject: the request's own, then every reminder's.
_SUBJECTS = (N_("email", "request_subject"), N_("email", "reminder_subject"))

OPEN, PAID, CANCELLED, EXPIRED = "open", "paid", "cancelled", "expired"
ID_PATTERN = r"^pr_[0-9a-f]{16}$"


def reminder_steps(settings: Settings) -> tuple[timedelta, ...]:
    """How long after the request each reminder goes, while it is open."""
    return tuple(timedelta(days=d) for d in settings.payment_requests.reminder_days)


def lifetime(settings: Settings) -> timedelta:
    """How long a request stays open unpaid before it expires."""
    return timedelta(days=settings.payment_requests.lifetime_days)


@dataclass(frozen=True)
class PaymentRequest:
    """A request as cards show it (never with its link's URL)."""

    id: str
    gateway: str
    customer_id: str
    email: str
    amount: Money
    description: str
    state: str
    link_id: str
    link_expires_at: datetime | None
    reminders_sent: int
    next_reminder_at: datetime | None
    created: datetime
    locale: str | None = None  # the customer's, for their emails and pay page


def view_of(row: PaymentRequestRow) -> PaymentRequest:
    return PaymentRequest(
        id=row.id, gateway=row.gateway, customer_id=row.customer_id, email=row.email,
        amount=Money(minor=row.amount, currency=row.currency), description=row.description,
        state=row.state, link_id=row.link_id, link_expires_at=row.link_expires_at,
        reminders_sent=row.reminders_sent, next_reminder_at=row.next_reminder_at,
        created=row.created, locale=row.locale,
    )  # fmt: skip


async def create(
    services: Services, actor: Actor, gateway: Gateway, customer: Customer, amount: Money,
    *, description: str, reason: str,
) -> tuple[PaymentRequest, PayLink]:  # fmt: skip
    """Make the pay link, record the request and queue its first email, in one transaction."""
    gateway.require(Capability.payment_link)
    if not customer.email:
        raise UserError(
            "no_email", f"{customer.id} has no email address: the request cannot be sent"
        )
    if placeholders.PREFIX in description:  # it would be filled in, or block the email
        raise UserError("invalid_arguments", "a description cannot hold {{chargedesk: text")
    request_id = f"pr_{secrets.token_hex(8)}"
    now = _now()
    schedule = reminder_steps(services.settings)
    locale, _ = document_locale(customer, services.settings.locale)
    row = PaymentRequestRow(
        id=request_id, gateway=gateway.name, customer_id=customer.id,
        email=customer.email.strip().lower(), amount=amount.minor, currency=amount.currency,
        description=description, state=OPEN, link_id="", requested_by=actor.key, created=now,
        reminders_sent=0, next_reminder_at=now + schedule[0] if schedule else None,
        locale=locale,
    )  # fmt: skip
    subject, message = compose(services, row, 0)  # refuses a header-breaking description first
    link = await gateway.create_pay_link(
        customer.id, amount, description=description, reference=request_id,
        idempotency_key=f"{request_id}:link:0",
    )  # fmt: skip
    row.link_id, row.link_expires_at = link.id, link.expires_at
    async with services.db.write() as session:
        session.add(row)
        await append(session, AuditRecord(
            actor=actor, action="request", outcome=OPEN, gateway=gateway.name,
            object_id=request_id, customer_id=customer.id, amount=amount, reason=reason,
            gateway_request_id=link.id, detail={"description": description, "to": row.email},
        ))  # fmt: skip
        email_id = await queue_email(session, row, 0, subject, message)
    await send_soon(services, email_id)
    return view_of(row), link


def compose(services: Services, row: PaymentRequestRow, number: int) -> tuple[str, EmailMessage]:
    """(subject, message) of the request's email `number` (0: the request, then reminders),
    in the customer's language (`row.locale`; the bot's own for a request made before)."""
    locale = row.locale or services.settings.locale
    language = language_of(Locale.parse(locale).language)
    amount = Money(minor=row.amount, currency=row.currency).format(locale)
    seller = services.branding.entities[services.branding.default_entity].legal_name
    words = {"amount": amount, "description": row.description, "seller": seller}
    subject = gettext(language, "email", _SUBJECTS[number > 0], **words)
    # The placeholder goes in after the words: a description cannot pose as one (refused at
    # `create`), and translated text is never parsed for one.
    body = gettext(language, "email", "request_body", **words, url=placeholders.pay(row.id))
    text = f"{body}\n\n{seller}\n"
    message = build_message(
        settings=services.settings, sender_name=seller, to=row.email, subject=subject,
        text=text, customer=f"{row.gateway}:{row.customer_id}", kind="payment_request",
    )  # fmt: skip
    return subject, message


async def queue_email(
    session: AsyncSession,
    row: PaymentRequestRow,
    number: int,
    subject: str,
    message: EmailMessage,
) -> str | None:
    return await outbox.queue(
        session, purpose=f"payment_request:{row.id}:{number}", recipient=row.email,
        subject=subject, message=message,
    )  # fmt: skip


async def send_soon(services: Services, email_id: str | None) -> None:
    if email_id is None:
        return
    try:
        await jobs.enqueue_email(services, email_id)
    except Exception:  # the sweeper sends it within a minute
        log.warning("payment request email %s: not enqueued now, the sweep sends it", email_id)


async def get(services: Services, request_id: str) -> PaymentRequest:
    async with services.db.read() as session:
        row = await session.get(PaymentRequestRow, request_id)
    if row is None:
        raise UserError("not_found", f"no payment request {request_id}")
    return view_of(row)


async def open_for(services: Services, customer_ids: list[tuple[str, str]]) -> list[PaymentRequest]:
    """The open requests of these (gateway, customer) pairs, oldest first."""
    if not customer_ids:
        return []
    async with services.db.read() as session:
        rows = await session.scalars(
            select(PaymentRequestRow)
            .where(
                PaymentRequestRow.state == OPEN,
                PaymentRequestRow.customer_id.in_([c for _, c in customer_ids]),
            )
            .order_by(PaymentRequestRow.created)
        )
        wanted = set(customer_ids)
        return [view_of(r) for r in rows if (r.gateway, r.customer_id) in wanted]


async def cancel(services: Services, actor: Actor, request_id: str) -> PaymentRequest:
    """Make the link unpayable at the gateway, then close the request: no reminder follows.
    A link found paid meanwhile marks the request paid instead."""
    request = await get(services, request_id)
    if request.state != OPEN:
        raise UserError("invalid_state", f"{request_id} is {request.state}: only open ones cancel")
    link = await services.gateways.get(request.gateway).cancel_pay_link(request.link_id)
    if link.status == PayLinkStatus.paid:
        await close(services, request_id, PAID, actor=actor, paid_with=link.charge_id)
    else:
        await close(services, request_id, CANCELLED, actor=actor)
    return await get(services, request_id)


async def close(
    services: Services, request_id: str, state: str, *, actor: Actor,
    paid_with: str | None = None, session: AsyncSession | None = None, why: str | None = None,
) -> bool:  # fmt: skip
    """open → `state`, once (a conditional update), audited; False if it was not open."""
    if session is None:
        async with services.db.write() as own:
            return await close(services, request_id, state, actor=actor, paid_with=paid_with,
                               session=own, why=why)  # fmt: skip
    changed = await session.execute(
        update(PaymentRequestRow)
        .where(PaymentRequestRow.id == request_id, PaymentRequestRow.state == OPEN)
        .values(state=state, closed_at=_now(), next_reminder_at=None, paid_with=paid_with)
        .execution_options(synchronize_session=False)
    )
    if changed.rowcount != 1:  # type: ignore[attr-defined]
        return False
    row = await session.get(PaymentRequestRow, request_id)
    assert row is not None
    await append(session, AuditRecord(
        actor=actor, action="request", outcome=state, gateway=row.gateway, object_id=row.id,
        customer_id=row.customer_id, amount=Money(minor=row.amount, currency=row.currency),
        reason=why, gateway_request_id=paid_with or row.link_id,
    ))  # fmt: skip
    return True


def _now() -> datetime:
    return datetime.now(UTC)
