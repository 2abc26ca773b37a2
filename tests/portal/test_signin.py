"""Signing in by a one-time code emailed through a real SMTP server, and the session cookie."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select

from bot import jobs
from bot.portal.app import CODE_SENDS_PER_HOUR
from bot.settings import PortalSettings
from bot.store.tables import AuditEntry
from bot.web import create_app
from chargedesk_emulators.smtp import FakeSmtp, smtp_server
from tests.mail.mailtools import with_mail
from tests.portal.conftest import BASE, JANE, form_page, open_as, post, session_cookie

pytestmark = pytest.mark.storage


@pytest.fixture
async def smtp() -> AsyncIterator[FakeSmtp]:
    async with smtp_server() as server:
        yield server


@pytest.fixture
async def mailing(services, smtp) -> AsyncIterator[tuple[httpx.AsyncClient, object]]:
    """A client of an app whose emails go to the test SMTP server, and those services."""
    mail = with_mail(services, smtp_url=smtp.url())
    app = create_app(mail.settings, mail)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
            yield http, mail


async def ask_code(client: httpx.AsyncClient, email: str) -> httpx.Response:
    _, token = await form_page(client, "/portal/signin")
    return await post(client, "/portal/signin", token, email=email)


async def test_sign_in_with_the_code_from_the_email(mailing, smtp, services):
    client, mail = mailing
    asked = await ask_code(client, "Jane.Doe@Example.com ")
    assert (asked.status_code, asked.headers["location"]) == (303, "/portal/signin/code")

    await jobs.run_worker(mail, burst=True, poll_delay=0.05)  # the worker sends the email
    assert len(smtp.received) == 1
    email = smtp.received[0].message
    assert email["To"] == JANE
    code = re.search(r"\b(\d{6})\b", email.get_body(("plain",)).get_content()).group(1)

    page, token = await form_page(client, "/portal/signin/code")
    assert 'autocomplete="one-time-code"' in page.text
    signed = await post(client, "/portal/signin/code", token, code=f"{code[:3]} {code[3:]}")

    assert (signed.status_code, signed.headers["location"]) == (303, "/portal/")
    history = await client.get("/portal/")
    assert history.status_code == 200 and "JANE-0001" in history.text
    async with services.db.read() as session:
        entry = await session.scalar(
            select(AuditEntry).where(AuditEntry.action == "portal_signed_in")
        )
    assert entry.detail == {"via": "email_code"} and entry.actor_name == JANE


async def test_an_address_not_on_file_gets_the_same_answer_and_no_email(mailing, smtp):
    client, mail = mailing
    asked = await ask_code(client, "nobody@example.com")
    assert (asked.status_code, asked.headers["location"]) == (303, "/portal/signin/code")
    await jobs.run_worker(mail, burst=True, poll_delay=0.05)
    assert smtp.received == []


async def test_a_wrong_code_shows_an_error_and_signs_nobody_in(mailing):
    client, mail = mailing
    await ask_code(client, JANE)
    await jobs.run_worker(mail, burst=True, poll_delay=0.05)  # the code exists once its job ran
    _, token = await form_page(client, "/portal/signin/code")

    wrong = await post(client, "/portal/signin/code", token, code="000000")
    garbled = await post(client, "/portal/signin/code", token, code="12ab")

    assert wrong.status_code == 400
    assert "That code is not right" in wrong.text and 'aria-invalid="true"' in wrong.text
    assert 'aria-describedby="code-error"' in wrong.text
    assert garbled.status_code == 400 and "six digits" in garbled.text
    assert (await client.get("/portal/")).status_code == 303


async def test_a_code_asked_for_in_another_browser_does_not_sign_this_one_in(mailing, smtp):
    client, mail = mailing
    await ask_code(client, JANE)
    await jobs.run_worker(mail, burst=True, poll_delay=0.05)
    code = re.search(r"\b(\d{6})\b", smtp.received[0].message.get_body(("plain",)).get_content())

    client.cookies.clear()  # another browser: its own session, its own browser ID
    _, token = await form_page(client, "/portal/signin/code")
    answer = await post(client, "/portal/signin/code", token, code=code.group(1))

    assert answer.status_code == 400 and "No code is waiting" in answer.text


async def test_asking_for_codes_too_often_shows_a_message(client):
    answers = [await ask_code(client, JANE) for _ in range(4)]
    # Three codes an hour per browser (bot/identity.py); then the page says so.
    assert [a.status_code for a in answers] == [303, 303, 303, 429]
    assert "Too many codes were asked for" in answers[-1].text


async def test_codes_from_one_address_are_limited_across_browsers(client):
    statuses = []
    for n in range(CODE_SENDS_PER_HOUR + 1):
        client.cookies.clear()
        statuses.append((await ask_code(client, f"someone{n}@example.com")).status_code)
    assert statuses == [303] * CODE_SENDS_PER_HOUR + [429]


async def test_an_invalid_email_is_shown_next_to_the_field(client):
    answer = await ask_code(client, "not-an-email")
    assert answer.status_code == 400
    assert "Enter an email address like name@example.com" in answer.text
    assert 'aria-describedby="email-error"' in answer.text and 'value="not-an-email"' in answer.text


async def test_the_session_cookie_is_httponly_lax_and_scoped(client, services):
    opened = await open_as(client, services, JANE)
    cookie = session_cookie(opened).lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/portal" in cookie
    assert "secure" not in cookie  # plain http here: a Secure cookie would never come back
    assert f"max-age={services.settings.portal.session_hours * 3600}" in cookie


async def test_the_cookie_is_secure_behind_https(services):
    settings = services.settings.model_copy(
        update={"portal": PortalSettings(base_url="https://billing.example.com")}
    )
    services.settings = settings
    app = create_app(settings, services)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="https://billing.example.com"
        ) as client:
            opened = await open_as(client, services, JANE)
            page = await client.get("/portal/")
    assert "; secure" in session_cookie(opened).lower()
    assert page.status_code == 200
    assert page.headers["strict-transport-security"].startswith("max-age=")


async def test_signing_out_ends_the_session(client, services):
    await open_as(client, services, JANE)
    _, token = await form_page(client, "/portal/")

    answer = await post(client, "/portal/signout", token)

    assert (answer.status_code, answer.headers["location"]) == (
        303,
        "/portal/signin?reason=signed_out",
    )
    after = await client.get("/portal/")
    assert after.status_code == 303
    assert "You have signed out" in (await client.get(answer.headers["location"])).text
