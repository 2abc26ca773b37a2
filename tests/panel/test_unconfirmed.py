"""An unvouched panel session shows no billing data until its email is confirmed, and a browser
that confirmed is remembered for that helpdesk and that email only.

The attacker here holds a leaked Front plugin URL: a valid entry (Front's shared
`auth_secret`) naming any teammate. Every page and every POST of such a session is tried,
with what a real page would carry (the session's CSRF token, buttons and forms sealed for
that very session): none shows a customer or changes anything until the code comes back.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import func, select, update

from bot.actors import ChannelKind
from bot.commands.forms import form_for
from bot.commands.router import parse
from bot.helpdesk.helpscout import panel_entry as helpscout_entry
from bot.panel import browsers
from bot.panel import session as panel_session
from bot.panel.door import PanelDoor, Screen
from bot.services import Services
from bot.settings import Settings
from bot.store.tables import (
    ApprovalRow,
    AuditEntry,
    EmailRow,
    HelpdeskNote,
    LedgerRefund,
    PanelBrowserRow,
    PanelSessionRow,
)
from chargedesk_emulators.helpdesk_hosts import HelpdeskHosts
from tests.conftest import refunded
from tests.panel.conftest import buttons, forms, text
from tests.panel.entries_support import (
    ALEX,
    BASE,
    FRESHDESK_SECRET,
    FRONT_SECRET,
    JANE,
    MARIA,
    NOBODY,
    client_for,
    csrf_of,
    emails_to,
    latest_code,
    opened,
    session_row,
    with_helpdesk,
)

pytestmark = [pytest.mark.storage, pytest.mark.approvals]

OUTSIDER = "mallory@evil.example"  # a mailbox the attacker reads, listed nowhere
# What a page of a session that is not admitted must never carry: the demo's customers,
# their objects, and requests about them (long enough never to occur by chance in a token).
CUSTOMER_DATA = ("jane.doe@example.com", "Jane Doe", "cus_jane", "ch_jane_", "sub_jane",
                 "john.smith@example.com", "John Smith", "cus_john", "apr_")  # fmt: skip
OUR_FORMS = re.compile(r"/panel/s/pn_[A-Za-z0-9_-]+/(confirm|signout|forget)$")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings = with_helpdesk(settings, "front", plugin_auth_secret=FRONT_SECRET)
    settings = with_helpdesk(
        settings, "freshdesk", panel_secret=FRESHDESK_SECRET, domain="acme.freshdesk.com"
    )
    return with_helpdesk(settings, "helpscout")


@pytest.fixture
async def web(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    async for client in client_for(services):
        yield client


@pytest.fixture
async def other_web(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    """Another browser (its own cookies)."""
    async for client in client_for(services):
        yield client


def front_url(teammate: str = ALEX, conversation: str = "cnv_123", contact: str = JANE) -> str:
    query = {"auth_secret": FRONT_SECRET, "teammate": teammate, "teammate_name": "Alex Agent",
             "conversation": conversation, "contact": contact}  # fmt: skip
    return f"/panel/entry/front?{urlencode(query)}"


async def front(web: httpx.AsyncClient, teammate: str = ALEX, **context: str) -> httpx.Response:
    """Load Front's plugin for `teammate`: the entry's answer (303 somewhere)."""
    answer = await web.get(front_url(teammate, **context))
    opened(answer)
    return answer


def sid(answer: httpx.Response) -> str:
    return opened(answer)


def root(session_id: str) -> str:
    return f"/panel/s/{session_id}/"


async def confirm_by_code(
    web: httpx.AsyncClient, services: Services, session_id: str
) -> httpx.Response:
    """The agent asks for a code, reads it in their mailbox and types it: the answer."""
    page = await web.get(root(session_id) + "confirm")
    csrf = csrf_of(page.text)
    sent = await web.post(root(session_id) + "confirm", data={"csrf": csrf, "action": "send"})
    assert sent.status_code == 303, sent.text
    _, code = await latest_code(services, session_id)
    return await web.post(
        root(session_id) + "confirm", data={"csrf": csrf, "action": "check", "code": code}
    )


def no_customer_data(answer: httpx.Response) -> None:
    body = answer.text
    for datum in CUSTOMER_DATA:
        assert datum.lower() not in body.lower(), (datum, answer.request.url, text(body))
    # No button or form but the confirmation step's and signing out: nothing sealed to run.
    for form in forms(body):
        assert OUR_FORMS.search(form.action), form.action
    assert 'name="a"' not in body and 'name="f"' not in body


async def counts(services: Services) -> dict[str, int]:
    """What a click could change: requests, refunds, emails, ticket notes, audit entries."""
    async with services.db.read() as db:
        return {
            table.__tablename__: int(await db.scalar(select(func.count()).select_from(table)) or 0)
            for table in (ApprovalRow, LedgerRefund, EmailRow, HelpdeskNote, AuditEntry)
        }


async def sealed_for(services: Services, session_id: str) -> dict[str, str]:
    """A button and a refund form sealed for this very session, as an admitted page of it
    would draw them: the attacker cannot get these, so this is more than they could send."""
    door = PanelDoor(services)
    live = await panel_session.load(services, session_id)
    assert live is not None
    staff = panel_session.actor(services.settings, replace(live, confirmed=True))
    screen = Screen(live, staff)
    spec, raw = parse("refund ledger:ch_jane_1 reason: ")
    ctx = door.context(staff, screen.place, ChannelKind.internal)
    form = await form_for(ctx, spec, raw, "Refund ch_jane_1")
    receipt = {"run": "receipt ledger:ch_jane_1 send", "label": "Email", "v": None, "n": "n" * 24}
    lookup = {"run": "lookup cus_john", "label": "Look", "v": None, "n": "m" * 24}
    return {
        "receipt": door.seal(screen, receipt),
        "lookup": door.seal(screen, lookup),
        "form": door.form(screen, form).values["sealed"],
    }


async def request_a_refund(web: httpx.AsyncClient, session_id: str, amount: str) -> str:
    """From an admitted session's card: refund Jane's first charge; the request's ID."""
    card = await web.get(root(session_id) + "card")
    (button,) = [f for f in forms(card.text) if f.button == "Refund ch_jane_1"]
    page = await web.post(button.action, data=button.fields)
    (form,) = [f for f in forms(page.text) if f.action.endswith("/submit")]
    data = form.fields | {"f_amount": amount, "f_reason_code": "duplicate",
                          "f_reason_text": "charged twice"}  # fmt: skip
    done = await web.post(form.action, data=data)
    found = re.search(r"Waiting for approval (apr_[0-9a-f]+)", text(done.text))
    assert found, text(done.text)
    return found.group(1)


# --- the leaked plugin URL: nothing before the code -----------------------------------------


async def test_a_leaked_plugin_url_lands_on_who_front_says_you_are_and_the_code_step(
    web, services
) -> None:
    answer = await front(web)
    assert answer.headers["location"].endswith("/confirm")
    page = await web.get(answer.headers["location"])
    assert page.status_code == 200
    seen = text(page.text)
    assert f"Front says you are Alex Agent ({ALEX})." in seen
    assert f"Send a code to {ALEX}" in buttons(page.text)
    assert "not confirmed" in seen
    no_customer_data(page)
    # No way to the billing pages from here, not even a link.
    assert not re.search(r'href="[^"]*/(card|search|approvals)"', page.text)


GETS = ["", "card", "card?id=cus_jane", "card?id=ch_jane_1", "search", "approvals",
        "zendesk", "zendesk/ticket/42", "card?lang=de"]  # fmt: skip


@pytest.mark.parametrize("page", GETS)
async def test_every_page_of_an_unconfirmed_session_sends_it_to_the_code_step(
    web, services, page
) -> None:
    session_id = sid(await front(web))
    before = await counts(services)
    answer = await web.get(root(session_id) + page, headers={"Sec-Fetch-Site": "same-origin"})
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == root(session_id) + "confirm"
    no_customer_data(answer)
    no_customer_data(await web.get(answer.headers["location"]))
    assert await counts(services) == before


POSTS: list[tuple[str, Any]] = [
    ("search", {"q": JANE}),
    ("search", {"q": "cus_john"}),
    ("act", "receipt"),
    ("act", "lookup"),
    ("submit", "form"),
]


@pytest.mark.parametrize(("page", "what"), POSTS)
async def test_every_post_of_an_unconfirmed_session_is_refused_and_changes_nothing(
    web, services, page, what
) -> None:
    session_id = sid(await front(web))
    confirm_page = await web.get(root(session_id) + "confirm")
    csrf = csrf_of(confirm_page.text)
    sealed = await sealed_for(services, session_id)
    if what == "form":
        data = {"f": sealed["form"], "f_amount": "120", "f_reason_code": "duplicate",
                "f_reason_text": "x"}  # fmt: skip
    elif isinstance(what, str):
        data = {"a": sealed[what]}
    else:
        data = what
    before = await counts(services)

    answer = await web.post(root(session_id) + page, data={"csrf": csrf, **data})

    assert answer.status_code == 403, answer.text
    assert "Confirm your email first" in text(answer.text)
    assert "Nothing was done" in text(answer.text)
    no_customer_data(answer)
    assert await counts(services) == before
    assert await refunded(services, "ch_jane_1") == 0
    assert await emails_to(services, JANE) == []


async def test_a_teammates_requests_and_approvals_stay_hidden_from_a_session_naming_them(
    web, other_web, services
) -> None:
    # Alex, at his own desk, confirms and asks for a refund over his limit on cnv_123.
    alex = sid(await front(other_web))
    assert (await confirm_by_code(other_web, services, alex)).status_code == 303
    request = await request_a_refund(other_web, alex, "80")
    mine = await other_web.get(root(alex) + "approvals")
    assert request in text(mine.text)

    # The leaked URL, naming Alex on the same conversation, and then Maria the manager.
    for teammate in (ALEX, MARIA):
        session_id = sid(await front(web, teammate))
        for page in ("card", "approvals", "confirm"):
            answer = await web.get(root(session_id) + page)
            no_customer_data(answer)
            assert request not in answer.text


async def test_an_attackers_own_mailbox_is_no_way_in(web, services) -> None:
    # Anyone holding Front's secret can name a mailbox they read: proving it must not admit.
    session_id = sid(await front(web, OUTSIDER))
    page = await web.get(root(session_id) + "confirm")
    assert f"{OUTSIDER} is not among ChargeDesk's agents for Front" in text(page.text)
    assert buttons(page.text) == ["Sign out", "Sign out and forget this browser"]
    no_customer_data(page)
    for action in ("send", "check"):
        answer = await web.post(
            root(session_id) + "confirm",
            data={"csrf": csrf_of(page.text), "action": action, "code": "123456"},
        )
        assert answer.status_code == 403
        no_customer_data(answer)
    assert await emails_to(services, OUTSIDER) == []
    # Even proved (a code that came back before the email was taken off the lists), an
    # email listed nowhere opens nothing.
    await panel_session.confirm(services, session_id)
    held = await web.get(root(session_id) + "card")
    assert held.status_code == 303 and held.headers["location"].endswith("/confirm")
    no_customer_data(await web.get(held.headers["location"]))


# --- confirmed: the card, and the browser remembered ---------------------------------------


async def test_after_the_code_the_card_shows_and_the_browser_is_remembered(web, services) -> None:
    session_id = sid(await front(web))
    done = await confirm_by_code(web, services, session_id)

    assert done.status_code == 303 and done.headers["location"] == root(session_id) + "card"
    card = await web.get(done.headers["location"])
    assert card.status_code == 200
    assert "Jane Doe" in text(card.text) and "Refund ch_jane_1" in buttons(card.text)
    # The browser's cookie: long-lived, for every panel address, made for a helpdesk iframe.
    cookie = next(
        h for h in done.headers.get_list("set-cookie") if h.startswith(f"{browsers.COOKIE}=")
    )
    parts = [p.strip() for p in cookie.split(";")]
    for part in ("Path=/panel", "Max-Age=2592000", "HttpOnly", "Secure", "SameSite=None",
                 "Partitioned"):  # fmt: skip
        assert part in parts, (part, cookie)
    value = parts[0].split("=", 1)[1]
    assert ALEX not in value and "alex" not in value.lower()  # a signed row ID, no email
    async with services.db.read() as db:
        (row,) = (await db.scalars(select(PanelBrowserRow))).all()
        actions = list(await db.scalars(select(AuditEntry.action).order_by(AuditEntry.seq)))
    assert value.startswith(row.id + ".")
    assert (row.helpdesk, row.agent_email, row.revoked_at) == ("front", ALEX, None)
    assert timedelta(days=29, hours=23) < row.expires_at - row.created <= timedelta(days=30)
    assert actions[-2:] == ["panel_email_confirmed", "panel_browser_trusted"]


async def test_the_next_front_load_in_that_browser_opens_confirmed(web, services) -> None:
    first = sid(await front(web))
    await confirm_by_code(web, services, first)

    again = await front(web, conversation="cnv_456")
    second = sid(again)

    assert second != first and again.headers["location"] == root(second) + "card"
    card = await web.get(again.headers["location"])
    assert "Jane Doe" in text(card.text) and "Refund ch_jane_1" in buttons(card.text)
    row = await session_row(services, second)
    assert row.confirmed_at is not None and row.trusted_browser is not None
    assert len(await emails_to(services, ALEX)) == 1  # no second code
    async with services.db.read() as db:
        entry = await db.scalar(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1))
    assert entry is not None and entry.action == "panel_email_confirmed"
    assert entry.detail == {"helpdesk": "front", "session": second, "via": "trusted_browser",
                            "browser": row.trusted_browser}  # fmt: skip


async def test_the_remembered_browser_opens_nothing_for_another_email(web, services) -> None:
    await confirm_by_code(web, services, sid(await front(web)))

    maria = await front(web, MARIA)  # the manager's email, in Alex's browser

    assert maria.headers["location"].endswith("/confirm")
    row = await session_row(services, sid(maria))
    assert row.confirmed_at is None and row.trusted_browser is None
    no_customer_data(await web.get(root(sid(maria)) + "card"))


async def test_the_remembered_browser_opens_nothing_in_another_helpdesk(web, services) -> None:
    await confirm_by_code(web, services, sid(await front(web)))
    link = HelpdeskHosts(BASE).freshdesk_url(FRESHDESK_SECRET, agent=ALEX, requester=JANE)
    answer = await web.get(link.removeprefix(BASE))
    assert answer.headers["location"].endswith("/confirm")
    assert (await session_row(services, sid(answer))).confirmed_at is None


async def test_another_browser_is_not_remembered(web, other_web, services) -> None:
    await confirm_by_code(web, services, sid(await front(web)))
    elsewhere = await front(other_web)
    assert elsewhere.headers["location"].endswith("/confirm")


def browser_cookie(web: httpx.AsyncClient) -> str:
    """The remembered browser's cookie in this browser's jar."""
    (value,) = [c.value for c in web.cookies.jar if c.name == browsers.COOKIE]
    assert value
    return value


def _with_cookie(web: httpx.AsyncClient, value: str) -> None:
    web.cookies.delete(browsers.COOKIE)
    web.cookies.set(browsers.COOKIE, value, domain="localhost.local", path="/panel")


@pytest.mark.parametrize(
    "forge",
    [
        lambda real, row: row,  # the row ID alone (it is in the audit log)
        lambda real, row: f"{row}.{'A' * 43}",  # a made-up signature
        lambda real, row: real[:-1] + ("A" if real[-1] != "A" else "B"),  # one character off
        lambda real, row: "pb_" + "x" * 24 + real[len(row) :],  # another ID, this signature
        lambda real, row: real + "<script>",  # junk after it
        lambda real, row: "x" * 4000,  # junk
    ],
)
async def test_a_forged_browser_cookie_confirms_nothing(web, services, forge) -> None:
    await confirm_by_code(web, services, sid(await front(web)))
    real = browser_cookie(web)
    _with_cookie(web, forge(real, real.split(".")[0]))

    answer = await front(web, conversation="cnv_9")

    assert answer.headers["location"].endswith("/confirm")
    assert (await session_row(services, sid(answer))).confirmed_at is None


async def test_an_expired_remembered_browser_confirms_nothing(web, services) -> None:
    await confirm_by_code(web, services, sid(await front(web)))
    async with services.db.write() as db:
        await db.execute(
            update(PanelBrowserRow).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert (await front(web, conversation="cnv_9")).headers["location"].endswith("/confirm")


async def test_a_shorter_trusted_days_applies_to_browsers_remembered_before(web, services) -> None:
    await confirm_by_code(web, services, sid(await front(web)))
    async with services.db.write() as db:
        await db.execute(
            update(PanelBrowserRow).values(created=datetime.now(UTC) - timedelta(days=8))
        )
    services.settings = services.settings.model_copy(
        update={"panel": services.settings.panel.model_copy(update={"trusted_days": 7})}
    )
    assert (await front(web, conversation="cnv_9")).headers["location"].endswith("/confirm")


async def test_with_trusted_days_zero_no_browser_is_remembered(web, services) -> None:
    services.settings = services.settings.model_copy(
        update={"panel": services.settings.panel.model_copy(update={"trusted_days": 0})}
    )
    session_id = sid(await front(web))
    done = await confirm_by_code(web, services, session_id)
    assert done.headers["location"].endswith("/card")
    assert not any(h.startswith(f"{browsers.COOKIE}=") for h in done.headers.get_list("set-cookie"))
    page = await web.get(root(session_id) + "confirm")  # admitted now: sent on
    assert page.status_code == 303
    assert (await front(web, conversation="cnv_9")).headers["location"].endswith("/confirm")


# --- revocation ----------------------------------------------------------------------------


async def test_forget_this_browser_revokes_it_and_ends_what_it_confirmed(web, services) -> None:
    first = sid(await front(web))
    await confirm_by_code(web, services, first)
    second = sid(await front(web, conversation="cnv_456"))  # opened by the remembered browser
    card = await web.get(root(first) + "card")
    (forget,) = [f for f in forms(card.text) if f.action.endswith("/forget")]
    assert forget.button == "Sign out and forget this browser"

    out = await web.post(forget.action, data=forget.fields)

    assert out.status_code == 200 and "this browser is no longer remembered" in text(out.text)
    cleared = out.headers.get_list("set-cookie")
    assert any(h.startswith(f"{browsers.COOKIE}=;") and "Max-Age=0" in h for h in cleared)
    assert any(h.startswith(f"{panel_session.COOKIE}=;") and "Max-Age=0" in h for h in cleared)
    async with services.db.read() as db:
        (row,) = (await db.scalars(select(PanelBrowserRow))).all()
        actions = list(await db.scalars(select(AuditEntry.action)))
    assert row.revoked_at is not None and "panel_browser_forgotten" in actions
    # This session and the one the browser confirmed are over.
    assert (await session_row(services, first)).ended_why == "signed_out"
    assert (await session_row(services, second)).ended_why == "browser_forgotten"
    # The old cookie, kept by a copy of the browser, confirms nothing any more.
    _with_cookie(web, browsers.cookie_value(services.settings, row.id))
    assert (await front(web, conversation="cnv_9")).headers["location"].endswith("/confirm")


async def test_plain_sign_out_keeps_the_browser_remembered(web, services) -> None:
    first = sid(await front(web))
    await confirm_by_code(web, services, first)
    card = await web.get(root(first) + "card")
    (signout,) = [f for f in forms(card.text) if f.action.endswith("/signout")]
    await web.post(signout.action, data=signout.fields)
    assert (await front(web, conversation="cnv_9")).headers["location"].endswith("/card")


@pytest.mark.parametrize(
    ("csrf", "headers"),
    [(None, {}), ("forged", {}), ("ok", {"Origin": "https://evil.example",
                                           "Sec-Fetch-Site": "cross-site"})],
)  # fmt: skip
async def test_forget_from_another_site_or_without_the_token_does_nothing(
    web, services, csrf, headers
) -> None:
    first = sid(await front(web))
    await confirm_by_code(web, services, first)
    token = csrf_of((await web.get(root(first) + "card")).text)
    data = {"csrf": token if csrf == "ok" else csrf} if csrf else {}
    answer = await web.post(root(first) + "forget", data=data, headers=headers)
    assert answer.status_code == 403
    async with services.db.read() as db:
        assert (await db.scalar(select(PanelBrowserRow.revoked_at))) is None
    assert (await session_row(services, first)).ended_at is None


async def test_taking_an_email_off_the_lists_takes_effect_on_the_next_click(web, services) -> None:
    first = sid(await front(web))
    await confirm_by_code(web, services, first)
    assert "Jane Doe" in text((await web.get(root(first) + "card")).text)

    services.settings = with_helpdesk(services.settings, "front", agents=[], managers=[MARIA])

    held = await web.get(root(first) + "card")
    assert held.status_code == 303 and held.headers["location"].endswith("/confirm")
    page = await web.get(held.headers["location"])
    assert f"{ALEX} is not among ChargeDesk's agents for Front" in text(page.text)
    no_customer_data(page)
    # A new load in the remembered browser: the email is proved, yet nothing opens.
    again = await front(web, conversation="cnv_9")
    assert again.headers["location"].endswith("/confirm")
    no_customer_data(await web.get(root(sid(again)) + "card"))


async def test_ending_an_agents_sessions_forgets_their_browsers(web, services) -> None:
    await confirm_by_code(web, services, sid(await front(web)))
    await panel_session.end_for_agent(services, ALEX, "account_removed")
    async with services.db.read() as db:
        assert (await db.scalar(select(PanelBrowserRow.revoked_at))) is not None
        live = await db.scalar(
            select(func.count())
            .select_from(PanelSessionRow)
            .where(PanelSessionRow.ended_at.is_(None))
        )
    assert live == 0
    assert (await front(web, conversation="cnv_9")).headers["location"].endswith("/confirm")


async def test_the_browser_cookie_never_reaches_the_logs(web, services, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    await confirm_by_code(web, services, sid(await front(web)))
    await front(web, conversation="cnv_9")
    value = browser_cookie(web)
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("bot"))
    assert value not in logged and value.split(".")[1] not in logged


# --- the rest is as it was -----------------------------------------------------------------


async def test_the_confirmation_page_speaks_the_language_picked(web, services) -> None:
    session_id = sid(await front(web))
    page = await web.get(root(session_id) + "confirm?lang=de")
    assert "Laut Front sind Sie Alex Agent" in text(page.text)
    assert (await session_row(services, session_id)).language == "de"


@pytest.mark.parametrize(("who", "acts"), [(ALEX, True), (NOBODY, False)])
async def test_a_vouched_session_is_unaffected(web, services, who, acts) -> None:
    # Help Scout vouched for the agent server-side: the card at once, no code, no browser.
    link = helpscout_entry.link(services.settings, agent_email=who, agent_name=None,
                                ticket="77", requester=JANE)  # fmt: skip
    answer = await web.get(link.removeprefix(services.settings.portal.base_url))
    assert answer.headers["location"].endswith("/card")
    card = await web.get(answer.headers["location"])
    assert card.status_code == 200 and "Jane Doe" in text(card.text)
    assert ("Refund ch_jane_1" in buttons(card.text)) is acts
    assert "Sign out and forget this browser" not in buttons(card.text)
    confirm = await web.get(root(sid(answer)) + "confirm")
    assert confirm.status_code == 303  # nothing to confirm
    async with services.db.read() as db:
        assert await db.scalar(select(func.count()).select_from(PanelBrowserRow)) == 0
