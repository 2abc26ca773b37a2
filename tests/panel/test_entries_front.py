"""Front's entry (the plugin URL's `auth_secret`) and the email confirmation of unvouched sessions.

Front's secret is one value every teammate shares, so its sessions show no billing data
until the teammate types back a one-time code sent to the email the plugin named
(tests/panel/test_unconfirmed.py holds every page of such a session to it).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import select, update

from bot import identity
from bot.actors import Role
from bot.panel import session as panel_session
from bot.services import Services
from bot.settings import Settings
from bot.store.tables import AuditEntry, VerificationCode
from tests.panel.entries_support import (
    ALEX,
    FRONT_SECRET,
    JANE,
    NOBODY,
    client_for,
    csrf_of,
    emails_to,
    latest_code,
    opened,
    refused,
    session_row,
    sessions,
    with_helpdesk,
)

pytestmark = pytest.mark.storage


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return with_helpdesk(settings, "front", plugin_auth_secret=FRONT_SECRET)


@pytest.fixture
async def web(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    async for client in client_for(services):
        yield client


def plugin_url(auth_secret: str | None = FRONT_SECRET, **context: str) -> str:
    values = {"teammate": ALEX, "teammate_name": "Alex Agent", "conversation": "cnv_123",
              "contact": JANE, **context}  # fmt: skip
    if auth_secret is not None:
        values = {"auth_secret": auth_secret, **values}
    return f"/panel/entry/front?{urlencode({k: v for k, v in values.items() if v is not None})}"


async def test_the_plugin_url_opens_a_session_that_shows_nothing_until_the_email_is_confirmed(
    web, services
) -> None:
    answer = await web.get(plugin_url())
    session_id = opened(answer)
    assert answer.headers["location"].endswith("/confirm")  # not the card: nothing to show yet
    row = await session_row(services, session_id)
    assert (row.agent_email, row.ticket, row.requester) == (ALEX, "cnv_123", JANE)
    assert not row.vouched and row.confirmed_at is None
    live = await panel_session.load(services, session_id)
    assert live is not None and not live.admitted
    # Not even read-only staff: a customer's card is no lookup of theirs.
    assert panel_session.actor(services.settings, live).roles == {Role.customer}


async def test_each_load_of_the_plugin_is_its_own_session(web, services) -> None:
    # Front sends the same URL every time: there is nothing to tell a load from a replay,
    # which is why the session proves nothing until the code comes back.
    first, second = opened(await web.get(plugin_url())), opened(await web.get(plugin_url()))
    assert first != second and await sessions(services) == 2


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (plugin_url(auth_secret=None), "missing auth_secret"),
        (plugin_url(auth_secret="guessed"), "forged auth_secret"),
        (plugin_url(auth_secret=FRONT_SECRET + "x"), "forged auth_secret"),
        (plugin_url(teammate=""), "missing teammate"),
        (plugin_url(teammate="not-an-email"), "missing teammate"),
        (plugin_url(contact="nobody"), "malformed contact"),
        (plugin_url(teammate_name="a\nb"), "control characters"),
        (plugin_url(conversation="c" * 49), "too long"),
        (plugin_url() + "&teammate=" + NOBODY, "given twice"),
    ],
)
async def test_a_plugin_url_without_the_right_secret_or_context_is_refused(
    web, services, url, reason
) -> None:
    refused(await web.get(url), reason)
    assert await sessions(services) == 0


async def test_without_its_secret_front_entry_refuses_everything(services) -> None:
    from dataclasses import replace

    settings = with_helpdesk(services.settings, "front", plugin_auth_secret=None)
    async for web in client_for(replace(services, settings=settings)):
        refused(await web.get(plugin_url()), "not configured")


async def test_the_auth_secret_never_reaches_the_logs(web, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    opened(await web.get(plugin_url()))
    refused(await web.get(plugin_url(auth_secret=FRONT_SECRET[:-1])), "forged")
    # The bot's own records (the test's HTTP client logs the URLs it asks for itself).
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("bot"))
    assert "panel entry from front refused: forged auth_secret" in logged
    assert FRONT_SECRET[:-1] not in logged


async def test_markup_in_the_teammates_name_and_email_reaches_no_page_unescaped(web) -> None:
    evil_name = "<script>alert(1)</script>"
    evil_email = '"><img src=x onerror=alert(1)>@example.com'
    answer = await web.get(plugin_url(teammate_name=evil_name, teammate=evil_email))
    session_id = opened(answer)
    for path in (answer.headers["location"], f"/panel/s/{session_id}/confirm"):
        page = await web.get(path)
        assert page.status_code == 200, page.text
        assert "<script>alert" not in page.text and "<img src=x" not in page.text
        assert "&lt;script&gt;" in page.text or "&lt;img" in page.text


# --- the confirmation step ----------------------------------------------------------------


async def start(web: httpx.AsyncClient) -> tuple[str, str]:
    """A fresh Front session and the CSRF token of its confirmation page."""
    session_id = opened(await web.get(plugin_url()))
    page = await web.get(f"/panel/s/{session_id}/confirm")
    assert page.status_code == 200 and ALEX in page.text
    return session_id, csrf_of(page.text)


async def post(web, session_id: str, csrf: str | None, **fields: str) -> httpx.Response:
    data = {"csrf": csrf, **fields} if csrf is not None else fields
    return await web.post(f"/panel/s/{session_id}/confirm", data=data)


async def test_the_code_mailed_to_the_teammate_confirms_the_session(web, services) -> None:
    session_id, csrf = await start(web)
    sent = await post(web, session_id, csrf, action="send")
    assert sent.status_code == 303 and sent.headers["location"].endswith("/confirm?sent=1")
    assert "on its way" in (await web.get(sent.headers["location"])).text
    assert len(await emails_to(services, ALEX)) == 1  # to the session's email, through the outbox
    _, code = await latest_code(services, session_id)

    done = await post(web, session_id, csrf, action="check", code=f"{code[:3]} {code[3:]}")
    assert done.status_code == 303 and done.headers["location"].endswith("/card")
    live = await panel_session.load(services, session_id)
    assert live is not None and live.confirmed
    assert panel_session.actor(services.settings, live).has(Role.agent)
    async with services.db.read() as db:
        actions = list(await db.scalars(select(AuditEntry.action)))
    assert "panel_email_confirmed" in actions
    # Confirmed: the page sends the agent on.
    assert (await web.get(f"/panel/s/{session_id}/confirm")).status_code == 303


async def test_a_wrong_code_confirms_nothing_and_five_wrong_ones_use_the_code_up(
    web, services
) -> None:
    session_id, csrf = await start(web)
    await post(web, session_id, csrf, action="send")
    _, code = await latest_code(services, session_id)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for _ in range(identity.MAX_TRIES - 1):
        answer = await post(web, session_id, csrf, action="check", code=wrong)
        assert answer.status_code == 400 and "not right" in answer.text
    answer = await post(web, session_id, csrf, action="check", code=wrong)
    assert "wrong too often" in answer.text
    # Used up: even the right code does nothing now.
    answer = await post(web, session_id, csrf, action="check", code=code)
    assert answer.status_code == 400 and "No code is waiting" in answer.text
    assert (await session_row(services, session_id)).confirmed_at is None


async def test_an_expired_code_confirms_nothing(web, services) -> None:
    session_id, csrf = await start(web)
    await post(web, session_id, csrf, action="send")
    row, code = await latest_code(services, session_id)
    async with services.db.write() as db:
        await db.execute(
            update(VerificationCode)
            .where(VerificationCode.id == row.id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    answer = await post(web, session_id, csrf, action="check", code=code)
    assert answer.status_code == 400 and "expired" in answer.text
    assert (await session_row(services, session_id)).confirmed_at is None


async def test_a_code_of_one_session_confirms_no_other(web, services) -> None:
    first, csrf_first = await start(web)
    second, csrf_second = await start(web)
    await post(web, first, csrf_first, action="send")
    _, code = await latest_code(services, first)
    answer = await post(web, second, csrf_second, action="check", code=code)
    assert answer.status_code == 400 and "No code is waiting" in answer.text
    assert (await session_row(services, second)).confirmed_at is None


@pytest.mark.parametrize("csrf", [None, "forged"])
async def test_a_confirmation_post_without_the_sessions_csrf_token_does_nothing(
    web, services, csrf
) -> None:
    session_id, _ = await start(web)
    answer = await post(web, session_id, csrf, action="send")
    assert answer.status_code == 403
    assert await emails_to(services, ALEX) == []


async def test_a_confirmation_post_from_another_site_does_nothing(web, services) -> None:
    session_id, csrf = await start(web)
    answer = await web.post(
        f"/panel/s/{session_id}/confirm",
        data={"csrf": csrf, "action": "send"},
        headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
    )
    assert answer.status_code == 403 and await emails_to(services, ALEX) == []


async def test_codes_cannot_be_sent_over_and_over(web, services) -> None:
    session_id, csrf = await start(web)
    for _ in range(3):
        assert (await post(web, session_id, csrf, action="send")).status_code == 303
    answer = await post(web, session_id, csrf, action="send")
    assert answer.status_code == 429 and "Too many" in answer.text
    assert len(await emails_to(services, ALEX)) == 3


async def test_the_confirmation_page_needs_the_sessions_cookie(web, services) -> None:
    session_id, _ = await start(web)
    web.cookies.clear()
    assert (await web.get(f"/panel/s/{session_id}/confirm")).status_code == 401


async def test_the_code_is_in_no_log_and_no_stored_email(web, services, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    session_id, csrf = await start(web)
    await post(web, session_id, csrf, action="send")
    _, code = await latest_code(services, session_id)
    assert code not in "\n".join(r.getMessage() for r in caplog.records)
    (email,) = await emails_to(services, ALEX)
    assert code.encode() not in email.message  # filled in at send time only
