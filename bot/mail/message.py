"""Build an RFC 5322 message: From, Reply-To the helpdesk, attachments, ChargeDesk headers.

The message is built once, before it is queued, so every retry sends the very
same bytes under the same Message-ID (a receiving system can recognise a
repeat by it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

from bot.errors import UserError
from bot.mail.placeholders import PREFIX as PLACEHOLDER
from bot.settings import Settings

HEADER_CUSTOMER = "X-ChargeDesk-Customer"
HEADER_DOCUMENT = "X-ChargeDesk-Document"
HEADER_KIND = "X-ChargeDesk-Kind"

Attachment = tuple[str, bytes, str]  # (filename, content, MIME type such as "application/pdf")


def build_message(
    *,
    settings: Settings,
    sender_name: str,
    to: str,
    subject: str,
    text: str,
    html: str | None = None,
    attachments: Iterable[Attachment] = (),
    customer: str | None = None,
    document: str | None = None,
    kind: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> EmailMessage:
    """An email from `settings.mail.from_address`, shown as `from_name` (else `sender_name`).

    `customer` ("gateway:customer_id"), `document` (its number) and `kind` become
    the X-ChargeDesk-* headers, so a reply reaching the helpdesk carries its
    billing context. Raises HeaderRefused (a ValueError) on a line break in any header value.
    """
    mail = settings.mail
    ours = {HEADER_CUSTOMER: customer, HEADER_DOCUMENT: document, HEADER_KIND: kind}
    extra = {name: value for name, value in ours.items() if value is not None}
    extra.update(headers or {})
    display_name = mail.from_name or sender_name
    _no_line_breaks("sender name", display_name)
    _no_line_breaks("From address", mail.from_address)
    _no_line_breaks("To", to)
    _no_line_breaks("Subject", subject)
    if mail.reply_to is not None:
        _no_line_breaks("Reply-To", mail.reply_to)
    for name, value in extra.items():
        _no_line_breaks(f"header name {name!r}", name)
        _no_line_breaks(name, value)

    message = EmailMessage(policy=SMTP)
    message["From"] = Address(display_name=display_name, addr_spec=mail.from_address)
    message["To"] = to
    if mail.reply_to is not None:
        message["Reply-To"] = mail.reply_to
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain=_domain(mail.from_address))
    for name, value in extra.items():
        message[name] = value
    # A placeholder for a secret (bot/mail/placeholders.py) must stay verbatim in the stored bytes:
    # no quoted-printable line breaks or base64 around it (lines stay far below 998 octets).
    verbatim = PLACEHOLDER in text
    message.set_content(text, cte=("7bit" if text.isascii() else "8bit") if verbatim else None)
    if html is not None:
        message.add_alternative(html, subtype="html")
    for filename, content, mime in attachments:
        _no_line_breaks("attachment filename", filename)
        maintype, _, subtype = mime.partition("/")
        if not subtype:
            raise ValueError(
                f"attachment {filename!r}: MIME type must be type/subtype, not {mime!r}"
            )
        message.add_attachment(content, maintype=maintype, subtype=subtype, filename=filename)
    return message


class HeaderRefused(UserError, ValueError):
    """A header value that would break the message: refused in one line, never sent."""


def _no_line_breaks(what: str, value: str) -> None:
    # A CR or LF in a header value would let its text start new headers (or the body);
    # so would any other line break a mail system honours (NEL, LS, PS, VT, FF).
    if any(c in _BREAKS for c in value):
        raise HeaderRefused(
            "bad_header", f"email {what}: line breaks are not allowed in a header ({value!r})"
        )


_BREAKS = frozenset("\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")


def _domain(address: str) -> str:
    _, at, domain = address.rpartition("@")
    if not at or not domain:
        raise ValueError(f"mail.from_address: not an email address: {address!r}")
    return domain
