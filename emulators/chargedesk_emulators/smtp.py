"""A real SMTP server (aiosmtpd) on 127.0.0.1, port 0, in the test's own event loop.

It records what it accepts and can be told to answer the next RCPT or DATA
commands with an error (`451 ...` to make the client try again later, `550 ...`
to refuse for good), to take its time over DATA, and to require a login.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from typing import Any, cast

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        return cast(EmailMessage, message_from_bytes(self.data, policy=default))


@dataclass
class FakeSmtp:
    host: str = "127.0.0.1"
    port: int = 0
    received: list[Received] = field(default_factory=list)
    rcpt_answers: list[str] = field(default_factory=list)  # answers for the next RCPT commands
    data_answers: list[str] = field(default_factory=list)  # answers for the next DATA commands
    data_delay: float = 0.0
    login: tuple[str, str] | None = None  # (user, password) the server accepts
    rcpt_attempts: int = 0
    failed_logins: int = 0

    def url(self, scheme: str = "smtp", userinfo: str = "") -> str:
        user = f"{userinfo}@" if userinfo else ""
        return f"{scheme}://{user}{self.host}:{self.port}"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        self.rcpt_attempts += 1
        if self.rcpt_answers:
            return self.rcpt_answers.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        if self.data_answers:
            return self.data_answers.pop(0)
        self.received.append(
            Received(
                mail_from=envelope.mail_from or "",
                rcpt_tos=list(envelope.rcpt_tos),
                data=cast(bytes, envelope.content),
            )
        )
        return "250 2.0.0 Message accepted for delivery"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if isinstance(auth_data, LoginPassword) and self.login is not None:
            given = (auth_data.login.decode(), auth_data.password.decode())
            if given == self.login:
                return AuthResult(success=True)
        self.failed_logins += 1
        return AuthResult(success=False, handled=False)


@asynccontextmanager
async def smtp_server(
    *, login: tuple[str, str] | None = None, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[FakeSmtp]:
    """A running server; with `login`, it offers AUTH (over plain TCP: a test server only)."""
    fake = FakeSmtp(host=host, login=login)
    loop = asyncio.get_running_loop()

    def protocol() -> SMTP:
        return SMTP(
            fake,
            hostname="localhost",
            authenticator=fake.authenticate if login is not None else None,
            auth_require_tls=False,
            loop=loop,
        )

    server = await loop.create_server(protocol, fake.host, port)
    fake.port = server.sockets[0].getsockname()[1]
    try:
        yield fake
    finally:
        server.close()
        await server.wait_closed()


async def _serve(host: str, port: int) -> None:
    async with smtp_server(host=host, port=port) as fake:
        print(f"Try: SMTP_URL={fake.url()} chargedesk worker", flush=True)
        print(f"SMTP server listening on {fake.host}:{fake.port}", flush=True)  # last: banner done
        seen = 0
        while True:
            await asyncio.sleep(0.2)
            for received in fake.received[seen:]:
                message = received.message
                print(
                    f"  accepted {message['Subject']!r} for {', '.join(received.rcpt_tos)}",
                    flush=True,
                )
            seen = len(fake.received)


def main(argv: list[str] | None = None) -> None:
    """`python -m chargedesk_emulators.smtp [--host H] [--port P]`: accept mail until interrupted."""
    parser = argparse.ArgumentParser(description="A local SMTP server that accepts every message.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="default 0: a free port")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.host, args.port))


if __name__ == "__main__":
    main()
