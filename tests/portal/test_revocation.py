"""Revoking access ends it at once: the links given out, and every session they opened.

Jane verifies in chat (the code comes over a real SMTP server), takes a billing
link with `portal`, opens it, and her cookie is copied (a shared computer, a
leaked header). After an agent's `unlink`, or her own sign-out, neither the
link nor any copy of that cookie opens her pages again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import update
from starlette.applications import Starlette

from bot import jobs
from bot.actors import Actor, Channel, ChannelKind, Role
from bot.billing_links import issue_link
from bot.cards.model import Reply
from bot.commands import Context, dispatch
from bot.portal.app import COOKIE
from bot.services import Services
from bot.store.tables import PortalSession
from bot.web import create_app
from chargedesk_emulators.smtp import FakeSmtp, smtp_server
from tests.commands.test_customer import code_from_mail
from tests.mail.mailtools import with_mail
from tests.portal.conftest import BASE, JANE, JOHN, form_page, path_of, post

pytestmark = pytest.mark.storage

SHARED = Channel(platform="slack", id="C0SHARED001", kind=ChannelKind.shared)
INTERNAL = Channel(platform="slack", id="C0AGENTS001", kind=ChannelKind.internal)
JANE_CHAT = Actor(platform="slack", id="UJANE00001", name="Jane", roles=frozenset({Role.customer}))
AGENT = Actor(platform="slack", id="UAGENT0001", name="Alex", roles=frozenset({Role.agent}))
SESSION_ENDED = "/portal/signin?reason=session_ended"


@pytest.fixture
async def smtp() -> AsyncIterator[FakeSmtp]:
    async with smtp_server() as server:
        yield server


@pytest.fixture
def mail(services: Services, smtp: FakeSmtp) -> Services:
    return with_mail(services, smtp_url=smtp.url())


@pytest.fixture
async def pages(mail: Services) -> AsyncIterator[Starlette]:
    app = create_app(mail.settings, mail)
    async with app.router.lifespan_context(app):
        yield app


def browser(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)


async def say(services: Services, actor: Actor, line: str, channel: Channel = SHARED) -> Reply:
    reply = await dispatch(Context(services, actor, channel), line)
    assert reply.error is None, reply.error
    return reply


async def chat_link(mail: Services, smtp: FakeSmtp) -> str:
    """Jane verifies in chat and asks for her billing page: the link she is given."""
    await say(mail, JANE_CHAT, f"verify {JANE}")
    await say(mail, JANE_CHAT, f"verify {await code_from_mail(mail, smtp, JANE)}")
    reply = await say(mail, JANE_CHAT, "portal")
    [button] = reply.cards[0].actions
    assert button.url is not None
    return button.url


async def opened(app: Starlette, link: str) -> tuple[httpx.AsyncClient, str]:
    """A browser signed in by `link`, and a copy of its session cookie."""
    client = browser(app)
    answer = await client.get(path_of(link))
    assert (answer.status_code, answer.headers["location"]) == (303, "/portal/")
    assert (await client.get("/portal/")).status_code == 200
    cookie = client.cookies.get(COOKIE)
    assert cookie is not None
    return client, cookie


async def with_cookie(app: Starlette, cookie: str) -> httpx.Response:
    """The history page asked for by someone who only holds a copy of the cookie."""
    async with browser(app) as thief:
        return await thief.get("/portal/", headers={"cookie": f"{COOKIE}={cookie}"})


def ended(answer: httpx.Response) -> bool:
    return answer.status_code == 303 and answer.headers["location"] == SESSION_ENDED


@pytest.mark.parametrize("who", [JANE_CHAT.key, JANE])
async def test_unlinking_refuses_the_link_given_in_chat_and_every_copy_of_its_session(
    mail, smtp, pages, who
):
    link = await chat_link(mail, smtp)
    client, cookie = await opened(pages, link)
    assert (await with_cookie(pages, cookie)).status_code == 200  # a copy works, as any would

    done = await say(mail, AGENT, f"unlink {who} reason: chat account taken over", INTERNAL)

    assert "1 billing page link" in done.cards[0].sections[0].text
    assert ended(await client.get("/portal/"))
    assert ended(await with_cookie(pages, cookie))
    refused = await browser(pages).get(path_of(link))
    assert refused.status_code == 403 and "withdrawn" in refused.text


async def test_unlinking_an_email_ends_document_email_links_and_code_sessions_too(
    mail, smtp, pages
):
    # A link from a document email, and a session signed in by a code on the pages.
    sent = await dispatch(Context(mail, AGENT, INTERNAL), "invoice send in_jane_paid")
    assert sent.error is None, sent.error
    await jobs.run_worker(mail, burst=True, poll_delay=0.05)
    [emailed] = [r.message for r in smtp.received if JANE in r.rcpt_tos]
    body = emailed.get_body(("plain",)).get_content()
    emailed_link = next(word for word in body.split() if "/portal/l/" in word)
    _, email_cookie = await opened(pages, emailed_link)

    by_code = browser(pages)
    _, token = await form_page(by_code, "/portal/signin")
    await post(by_code, "/portal/signin", token, email=JANE)
    code = await code_from_mail(mail, smtp, JANE)
    _, token = await form_page(by_code, "/portal/signin/code")
    assert (await post(by_code, "/portal/signin/code", token, code=code)).status_code == 303
    code_cookie = by_code.cookies.get(COOKIE)
    assert code_cookie is not None and (await by_code.get("/portal/")).status_code == 200

    john, john_cookie = await opened(pages, await issue_link(mail, JOHN, issued_by="test"))

    # Nobody is verified in chat on Jane's email: the agent can still withdraw her pages.
    done = await say(mail, AGENT, f"unlink {JANE} reason: mailbox compromised", INTERNAL)

    said = done.cards[0].sections[0].text
    assert "0 verified links, 1 billing page link, 2 billing page sessions" in said
    for cookie in (email_cookie, code_cookie):
        assert ended(await with_cookie(pages, cookie))
    refused = await browser(pages).get(path_of(emailed_link))
    assert refused.status_code == 403
    # John's session is his own business.
    assert (await with_cookie(pages, john_cookie)).status_code == 200
    await john.aclose()


async def test_verifying_as_another_email_withdraws_the_links_of_the_old_one(mail, smtp, pages):
    link = await chat_link(mail, smtp)
    _, cookie = await opened(pages, link)

    await say(mail, JANE_CHAT, f"verify {JOHN}")
    await say(mail, JANE_CHAT, f"verify {await code_from_mail(mail, smtp, JOHN)}")

    assert ended(await with_cookie(pages, cookie))
    assert (await browser(pages).get(path_of(link))).status_code == 403


async def test_signing_out_ends_the_session_for_every_copy_of_its_cookie(mail, pages):
    client, cookie = await opened(pages, await issue_link(mail, JANE, issued_by="test"))
    _, token = await form_page(client, "/portal/")

    signed_out = await post(client, "/portal/signout", token)

    assert signed_out.headers["location"] == "/portal/signin?reason=signed_out"
    assert ended(await with_cookie(pages, cookie))


async def test_a_session_ends_after_its_hours_whatever_the_cookie_says(mail, pages):
    client, cookie = await opened(pages, await issue_link(mail, JANE, issued_by="test"))
    async with mail.db.write() as session:
        await session.execute(
            update(PortalSession).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert ended(await with_cookie(pages, cookie))
    assert ended(await client.get("/portal/"))
