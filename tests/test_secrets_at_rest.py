"""Bearer secrets (one-time codes, billing-page links) reach their recipient and nowhere else.

Not in any SQL table (the queued emails hold placeholders, filled in at send
time), not in a subject line, not in the `serve` access log, not in the
chargedesk.log file. The emails still arrive, retried, through a real SMTP
server, with a code that verifies and a link that opens the billing pages.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import inspect, select

from bot import jobs
from bot.actors import Actor, Channel, ChannelKind, Role
from bot.billing_links import issue_link, token
from bot.commands import Context, dispatch
from bot.keys import signing_key
from bot.portal.redact import RedactLinks
from bot.services import Services
from bot.store.tables import Base
from bot.web import create_app
from chargedesk_emulators.smtp import FakeSmtp, smtp_server
from tests.conftest import REPO
from tests.mail.mailtools import with_mail
from tests.portal.conftest import BASE, JANE, path_of
from tests.test_cli_run import free_port

pytestmark = pytest.mark.storage

SHARED = Channel(platform="slack", id="C0SHARED001", kind=ChannelKind.shared)
INTERNAL = Channel(platform="slack", id="C0AGENTS001", kind=ChannelKind.internal)
JANE_CHAT = Actor(platform="slack", id="UJANE00001", name="Jane", roles=frozenset({Role.customer}))
AGENT = Actor(platform="slack", id="UAGENT0001", name="Alex", roles=frozenset({Role.agent}))


@pytest.fixture
async def smtp() -> AsyncIterator[FakeSmtp]:
    async with smtp_server() as server:
        yield server


async def stored(services: Services) -> list[tuple[str, str, str]]:
    """(table, column, text) of every text, JSON and binary value in the database.

    A stored email is read as its recipient would too (decoded MIME parts), so a
    secret hidden by quoted-printable or base64 counts as stored.
    """
    found: list[tuple[str, str, str]] = []
    async with services.db.read() as session:
        connection = await session.connection()
        names = set(await connection.run_sync(lambda c: inspect(c).get_table_names()))
        for table in Base.metadata.sorted_tables:
            if table.name not in names:
                continue
            for row in (await session.execute(select(table))).all():
                for column, value in zip(table.columns, row, strict=True):
                    for text in _texts(value):
                        found.append((table.name, column.name, text))
    return found


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (dict, list)):
        return [json.dumps(value)]
    if isinstance(value, bytes):
        texts = [value.decode("latin-1")]
        if b"\nSubject:" in value or value.startswith(b"Subject:") or b"Message-ID:" in value:
            for part in message_from_bytes(value, policy=default).walk():
                if part.get_content_maintype() == "text":
                    texts.append(part.get_content())  # type: ignore[attr-defined]
        return texts
    return []


def holding(texts: list[tuple[str, str, str]], secret: str) -> list[str]:
    """Where `secret` (as a whole word) is found."""
    pattern = re.compile(rf"(?<![\w]){re.escape(secret)}(?![\w])")
    return [f"{table}.{column}" for table, column, text in texts if pattern.search(text)]


def signature(link: str) -> str:
    return link.rsplit(".", 1)[1]


async def test_codes_and_links_are_delivered_but_stored_nowhere(services, smtp: FakeSmtp):
    mail = with_mail(services, smtp_url=smtp.url(), retry_seconds=0.05)
    # The first try of each email is greylisted: what the retry sends must still be right.
    smtp.rcpt_answers = ["451 4.3.0 Greylisted, try again later"] * 2

    asked = await dispatch(Context(mail, JANE_CHAT, SHARED), f"verify {JANE}")
    sent = await dispatch(Context(mail, AGENT, INTERNAL), "invoice send in_jane_paid")
    assert asked.error is None and sent.error is None, (asked.error, sent.error)
    await jobs.run_worker(mail, burst=True, poll_delay=0.05)

    assert smtp.rcpt_attempts == 4 and len(smtp.received) == 2
    by_kind = {r.message["X-ChargeDesk-Kind"]: r.message for r in smtp.received}
    code_email, invoice_email = by_kind[None], by_kind["invoice"]
    code = re.findall(r"\b\d{6}\b", code_email.get_body(("plain",)).get_content())[0]
    assert code not in code_email["Subject"]
    body = invoice_email.get_body(("plain",)).get_content()
    link = next(word for word in body.split() if "/portal/l/" in word)

    texts = await stored(mail)
    assert holding(texts, code) == []
    assert holding(texts, signature(link)) == []
    assert not any(link in text or link.split("/portal/l/")[1] in text for _, _, text in texts)

    # What was delivered works: the code verifies, the link opens Jane's pages.
    verified = await dispatch(Context(mail, JANE_CHAT, SHARED), f"verify {code}")
    assert verified.error is None, verified.error
    chat_link = (await dispatch(Context(mail, JANE_CHAT, SHARED), "portal")).cards[0].actions[0]
    assert chat_link.url is not None
    app = create_app(mail.settings, mail)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client,
    ):
        for url in (link, chat_link.url):
            client.cookies.clear()
            assert (await client.get(path_of(url))).headers["location"] == "/portal/"
            assert "Jane Doe" in (await client.get("/portal/")).text
    assert holding(await stored(mail), signature(chat_link.url)) == []


async def test_a_customer_name_that_looks_like_a_placeholder_gets_no_other_link(services):
    from bot.mail import placeholders

    john = await issue_link(services, "john.smith@example.com", issued_by="test")
    forged = placeholders.link(john.rsplit("/", 1)[1].split(".")[0]).encode()
    rendered = await placeholders.render(services, b"Hello " + forged, JANE)
    assert rendered == b"Hello " + forged  # John's link is made only in emails to John


def test_our_logs_redact_links_even_inside_tracebacks(tmp_path: Path):
    log_file = tmp_path / "chargedesk.log"
    handler = logging.FileHandler(log_file)
    handler.addFilter(RedactLinks())
    logger = logging.getLogger("tests.redaction")
    logger.addHandler(handler)
    secret = token(b"k" * 32, "pg_abcdefghijklmnopqrstuvwx", datetime.now(UTC) + timedelta(days=7))
    try:
        try:
            raise RuntimeError(f"could not open https://x.example/portal/l/{secret}")
        except RuntimeError:
            logger.exception("billing page %s failed", f"/portal/l/{secret}")
        logger.warning("path was /portal/l/%s", secret)
    finally:
        logger.removeHandler(handler)
        handler.close()
    written = log_file.read_text()
    assert signature(secret) not in written
    assert written.count("pg_abcdefghijklmnopqrstuvwx.[redacted]") == 3  # message, error, warning


async def test_serve_logs_no_link_in_its_access_log_or_its_log_file(services, tmp_path):
    """`chargedesk serve` as deployed (uvicorn's own log setup): links requested, logs read after."""
    genuine = await issue_link(services, JANE, issued_by="test")
    forged = token(signing_key(services.settings), "pg_notarealgrant000000000", datetime.now(UTC))
    data, port = tmp_path / "serve", free_port()
    data.mkdir()
    proc = _serve(services, data, port)
    try:
        await asyncio.to_thread(_wait, port, proc)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            opened = await client.get(path_of(genuine))
            refused = await client.get(f"/portal/l/{forged}?lang=de")
            junk = await client.get(f"/portal/l/{signature(genuine)}")
    finally:
        output = await asyncio.to_thread(_stop, proc)
    assert (opened.status_code, refused.status_code, junk.status_code) == (303, 303, 403)
    log_file = (data / "chargedesk.log").read_text()
    for secret in (signature(genuine), signature(forged)):
        assert secret not in output and secret not in log_file
    # The requests were logged, by the access log, with the key part cut out.
    grant = genuine.rsplit("/", 1)[1].split(".")[0]
    assert f"GET /portal/l/{grant}.[redacted] HTTP/1.1" in output
    assert "GET /portal/l/[redacted] HTTP/1.1" in output


def _serve(services: Services, data: Path, port: int) -> subprocess.Popen[str]:
    settings = services.settings
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "CHARGEDESK_DATA_DIR": str(data),
        "DATABASE_URL": settings.sql_url,
        "REDIS_URL": str(settings.redis_url),
        "CHARGEDESK_REDIS_PREFIX": settings.redis_prefix,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "serve", "--port", str(port)],
        env=env, cwd=data, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def _wait(port: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError(proc.stdout.read() if proc.stdout else "serve did not start")


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    return out
