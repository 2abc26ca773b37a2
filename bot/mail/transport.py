"""Hand a built message to the world: SMTP when `SMTP_URL` is set, else one `.eml` file per email.

SMTP URLs:
  smtp://[user:password@]host[:port]            plain, upgraded with STARTTLS when the server offers it (port 25)
  smtp+starttls://[user:password@]host[:port]   STARTTLS required (port 587)
  smtps://[user:password@]host[:port]           implicit TLS (port 465)

Failures come out as `TemporaryFailure` (try again later) or `PermanentFailure`
(the server refused this email for good). Anything going wrong before the mail
transaction (connecting, greeting, STARTTLS, login) is about the server or the
account, so it is temporary; in the transaction (MAIL, RCPT, DATA) a 5xx answer
is permanent and a 4xx answer, a dropped connection or a timeout temporary.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import aiosmtplib

from bot.settings import Settings

log = logging.getLogger(__name__)

_SCHEMES = {
    "smtp": (25, None, False),
    "smtp+starttls": (587, True, False),
    "smtps": (465, False, True),
}


class MailError(Exception):
    """A send that did not happen; the message is safe to show and store (no secrets)."""


class TemporaryFailure(MailError):
    """Worth trying again later."""


class PermanentFailure(MailError):
    """Trying again would fail the same way."""


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    start_tls: bool | None  # None: upgrade when offered
    use_tls: bool
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def safe_url(self, scheme: str) -> str:
        """The URL for logs: the password is never shown."""
        user = f"{self.username}:***@" if self.username else ""
        return f"{scheme}://{user}{self.host}:{self.port}"


def parse_smtp_url(url: str) -> tuple[str, SmtpTarget]:
    """(scheme, target) of an SMTP URL; ValueError naming the problem (never the password)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise ValueError(
            f"SMTP_URL: scheme must be smtp, smtp+starttls or smtps, not {parts.scheme!r}"
        )
    if not parts.hostname:
        raise ValueError("SMTP_URL: no host")
    default_port, start_tls, use_tls = _SCHEMES[scheme]
    try:
        port = parts.port or default_port
    except ValueError:
        raise ValueError("SMTP_URL: the port is not a number from 1 to 65535") from None
    return scheme, SmtpTarget(
        host=parts.hostname,
        port=port,
        start_tls=start_tls,
        use_tls=use_tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


def describe(settings: Settings) -> str:
    """Where emails go, for logs ("via smtp://user:***@host:587", "to folder ..."); ValueError on a bad SMTP_URL."""
    if settings.smtp_url is None:
        return f"to folder {outbox_dir(settings)}"
    scheme, target = parse_smtp_url(settings.smtp_url.get_secret_value())
    return f"via {target.safe_url(scheme)}"


def outbox_dir(settings: Settings) -> Path:
    """Where emails are written when there is no SMTP server."""
    return settings.mail.outbox_dir or Path(settings.data_dir) / "outbox"


async def send(
    settings: Settings,
    message_bytes: bytes,
    *,
    sender: str,
    recipients: Sequence[str],
    email_id: str,
) -> str:
    """Send one message, or write it to `<outbox>/<email_id>.eml`; returns a line saying where it went.

    Handing the message over is bounded by `settings.mail.timeout` (and closing
    the connection by half that), so a claim on the email outlives any send.
    """
    if settings.smtp_url is None:
        async with _bounded(settings.mail.timeout):
            return await _to_folder(outbox_dir(settings), email_id, message_bytes)
    try:
        scheme, target = parse_smtp_url(settings.smtp_url.get_secret_value())
    except ValueError as exc:
        # The email is fine; the configuration is not. Retried once it is fixed.
        raise TemporaryFailure(str(exc)) from None
    return await _smtp(
        target,
        target.safe_url(scheme),
        settings.mail.timeout,
        message_bytes,
        sender=sender,
        recipients=recipients,
    )


async def _to_folder(folder: Path, email_id: str, message_bytes: bytes) -> str:
    try:
        return await asyncio.to_thread(_write_eml, folder, email_id, message_bytes)
    except OSError as exc:  # a full disk or a missing permission can be fixed
        raise TemporaryFailure(f"cannot write to {folder}: {exc}") from None


async def _smtp(
    target: SmtpTarget,
    where: str,
    seconds: float,
    message_bytes: bytes,
    *,
    sender: str,
    recipients: Sequence[str],
) -> str:
    client = aiosmtplib.SMTP(
        hostname=target.host,
        port=target.port,
        username=target.username,
        password=target.password,
        use_tls=target.use_tls,
        start_tls=target.start_tls,
        timeout=seconds,
    )
    try:
        async with _bounded(seconds):
            try:
                # Greeting, EHLO, STARTTLS, login: whatever goes wrong here is the
                # server's or the account's, never this email's, so it is temporary.
                await client.connect()
            except (aiosmtplib.SMTPException, OSError) as exc:
                raise TemporaryFailure(f"{where}: {_describe(exc)}") from None
            errors, answer = await _transaction(client, where, message_bytes, sender, recipients)
    finally:
        await _hang_up(client, seconds / 2)
    if errors:  # some recipients refused, others accepted: the email went out
        log.warning("%s refused some recipients: %s", where, errors)
    return f"{where}: {answer}"


async def _transaction(
    client: aiosmtplib.SMTP,
    where: str,
    message_bytes: bytes,
    sender: str,
    recipients: Sequence[str],
) -> tuple[dict[str, object], str]:
    """MAIL, RCPT, DATA: a 5xx answer here is about this email, and final."""
    try:
        return await client.sendmail(sender, list(recipients), message_bytes)
    except aiosmtplib.SMTPRecipientsRefused as exc:
        detail = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
        final = all(refused.code >= 500 for refused in exc.recipients)
        failure = PermanentFailure if final else TemporaryFailure
        raise failure(f"{where} refused the recipients: {detail}") from None
    except aiosmtplib.SMTPResponseException as exc:
        failure = PermanentFailure if exc.code >= 500 else TemporaryFailure
        raise failure(f"{where} answered {exc.code} {exc.message}") from None
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise TemporaryFailure(f"{where}: {_describe(exc)}") from None
    except ValueError as exc:  # aiosmtplib refuses an address it cannot put in an envelope
        raise PermanentFailure(f"bad address: {exc}") from None


async def _hang_up(client: aiosmtplib.SMTP, seconds: float) -> None:
    # After DATA was accepted the email is sent: a failing QUIT must not make it a failure.
    if client.is_connected:
        with suppress(aiosmtplib.SMTPException, OSError):
            await client.quit(timeout=seconds)
    client.close()


@asynccontextmanager
async def _bounded(seconds: float) -> AsyncIterator[None]:
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        raise TemporaryFailure(f"no answer within {seconds:g}s") from None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return f"login rejected: {exc.code} {exc.message}"
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return f"answered {exc.code} {exc.message}"
    return f"{type(exc).__name__}: {exc}"


def _write_eml(folder: Path, email_id: str, message_bytes: bytes) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{email_id}.eml"
    # Written beside its final name, then renamed: a reader never sees half a file,
    # and a retry replaces the same file instead of adding a second.
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{email_id}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(message_bytes)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return str(path)
