"""The panel's own session: opened once per signed entry, carried by an embeddable cookie,
scoped to its own address, ended for every copy of its cookie, roles read on every request."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from bot.panel import session
from bot.panel.entry import EntryRefused
from bot.settings import HelpdeskSettings
from bot.store.tables import PanelSessionRow
from tests.panel.conftest import AGENT, JANE, STRANGER, TICKET, Panel, buttons, entry, text

pytestmark = pytest.mark.storage


async def test_an_entry_opens_a_session_with_a_cookie_made_for_a_helpdesk_iframe(panel: Panel):
    web = panel.client()
    answer = await web.post("/test/enter", json=entry(AGENT).__dict__)

    assert answer.status_code == 303
    location = answer.headers["location"]
    assert location.startswith("/panel/s/pn_") and location.endswith("/card")
    assert JANE not in location  # the requester stays on the server
    cookie = answer.headers["set-cookie"]
    sid = location.split("/")[3]
    parts = [p.strip() for p in cookie.split(";")]
    assert parts[0] == f"{session.COOKIE}={session.cookie_value(panel.services.settings, sid)}"
    assert sid not in parts[0]  # the cookie is a signature, not the ID
    for attribute in ("HttpOnly", "Secure", "SameSite=None", "Partitioned"):
        assert attribute in parts
    assert f"Path=/panel/s/{sid}/" in parts
    assert "Max-Age=28800" in parts  # [panel] session_hours, 8 by default
    assert answer.headers["cache-control"] == "no-store"

    card = await web.get(location)
    assert card.status_code == 200
    assert "Jane Doe" in text(card.text)


async def test_an_entry_without_a_requester_opens_the_search(panel: Panel):
    web = panel.client()
    answer = await web.post("/test/enter", json=entry(AGENT, requester=None).__dict__)
    assert answer.headers["location"].endswith("/search")
    page = await web.get(answer.headers["location"])
    assert page.status_code == 200 and "Email or ID" in text(page.text)


async def test_a_replayed_entry_opens_nothing(panel: Panel):
    given = entry(AGENT)
    first = await panel.client().post("/test/enter", json=given.__dict__)
    assert first.status_code == 303

    again = await panel.client().post("/test/enter", json=given.__dict__)

    assert again.status_code == 403 and again.text == "this entry was already used"
    assert "set-cookie" not in again.headers
    async with panel.services.db.read() as db:
        assert await db.scalar(select(func.count()).select_from(PanelSessionRow)) == 1
    with pytest.raises(EntryRefused, match="already used"):
        await session.start(panel.services, given)


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"helpdesk": "intercom"}, "does not open from"),
        ({"agent_email": "not-an-email"}, "no agent email"),
        ({"token_id": ""}, "no token ID"),
        ({"ticket": "9" * 55}, "ticket ID has 1 to 54"),
        ({"requester": "jane"}, "not an email"),
    ],
)
async def test_an_entry_that_names_nothing_usable_is_refused(panel: Panel, changes, why):
    given = entry(AGENT).__dict__ | changes
    answer = await panel.client().post("/test/enter", json=given)
    assert answer.status_code == 403 and why in answer.text
    async with panel.services.db.read() as db:
        assert await db.scalar(select(func.count()).select_from(PanelSessionRow)) == 0


async def test_without_its_cookie_a_session_opens_nothing(panel: Panel):
    alex = await panel.enter(AGENT)
    stranger = panel.client()  # knows the address (a log, a shoulder), not the cookie

    assert (await stranger.get(alex.root + "card")).status_code == 401
    stranger.cookies.set(session.COOKIE, "forged", domain="panel.test", path=alex.root)
    answer = await stranger.get(alex.root + "card")
    assert answer.status_code == 401
    assert "Jane" not in answer.text and "This panel has closed" in text(answer.text)


async def test_two_tickets_keep_two_sessions_and_one_cookie_opens_only_its_own(panel: Panel):
    alex = await panel.enter(AGENT)
    other = await panel.enter(AGENT, ticket="5151", requester="john.smith@example.com")
    # One browser with both panels open: each cookie goes to its own address only.
    alex.web.cookies.update(other.web.cookies)

    assert "Jane Doe" in text((await alex.get("card")).text)
    assert "John Smith" in text((await alex.web.get(other.root + "card")).text)
    # A cookie of one session, shown to another's address, opens nothing there.
    lone = panel.client()
    jar_value = alex.web.cookies.get(session.COOKIE, path=alex.root)
    lone.cookies.set(session.COOKIE, jar_value, domain="panel.test", path=other.root)
    assert (await lone.get(other.root + "card")).status_code == 401


async def test_an_ended_session_opens_nothing_for_any_copy_of_its_cookie(panel: Panel):
    alex = await panel.enter(AGENT)
    copy = panel.client()
    copy.cookies.update(alex.web.cookies)
    page = (await alex.get("card")).text

    out = await alex.click(page, "Sign out")

    assert out.status_code == 200 and "Signed out" in text(out.text)
    assert "Max-Age=0" in out.headers["set-cookie"]
    assert (await copy.get(alex.root + "card")).status_code == 401
    other = await panel.enter(AGENT)
    sid = other.root.split("/")[3]
    await session.end(panel.services, sid, "revoked")
    assert (await other.get("card")).status_code == 401


async def test_an_expired_session_opens_nothing(panel: Panel):
    alex = await panel.enter(AGENT)
    async with panel.services.db.write() as db:
        await db.execute(
            update(PanelSessionRow).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert (await alex.get("card")).status_code == 401


async def test_removing_an_agent_from_the_configuration_takes_their_actions_at_once(panel: Panel):
    alex = await panel.enter(AGENT)
    card = (await alex.get("card")).text
    assert "Refund ch_jane_1" in buttons(card)

    settings = panel.services.settings
    desk = settings.helpdesk.zendesk.model_copy(update={"agents": []})
    panel.services.settings = settings.model_copy(
        update={"helpdesk": HelpdeskSettings(zendesk=desk, front=settings.helpdesk.front)}
    )

    again = (await alex.get("card")).text
    assert "read-only" in text(again)
    assert [b for b in buttons(again) if b != "Sign out"] == []
    # The button drawn before, sent now: the router refuses it.
    refused = await alex.click(card, "Refund ch_jane_1")
    assert "refund needs the agent" in text(refused.text)


async def test_an_agent_nobody_listed_reads_the_card_and_acts_on_nothing(panel: Panel):
    nobody = await panel.enter(STRANGER)
    page = (await nobody.get("card")).text
    assert "ch_jane_1" in text(page) and "read-only" in text(page)
    assert buttons(page) == ["Sign out"]


async def test_an_unvouched_session_shows_nothing_until_its_email_is_confirmed(panel: Panel):
    alex = await panel.enter(AGENT, helpdesk="front", vouched=False)
    held = await alex.get("card")
    assert held.status_code == 303 and held.headers["location"] == alex.root + "confirm"
    page = (await alex.get("confirm")).text
    assert "Front says you are Alex (alex@example.com)." in text(page)
    assert "Jane" not in page and "ch_jane_1" not in page
    assert buttons(page) == [f"Send a code to {AGENT}", "Confirm", "Sign out",
                             "Sign out and forget this browser"]  # fmt: skip

    await session.confirm(panel.services, alex.root.split("/")[3])

    page = (await alex.get("card")).text
    assert "Refund ch_jane_1" in buttons(page) and "Jane Doe" in text(page)


async def test_a_session_lasts_the_hours_configured(panel: Panel):
    settings = panel.services.settings
    panel.services.settings = settings.model_copy(
        update={"panel": settings.panel.model_copy(update={"session_hours": 2})}
    )
    opened = await session.start(panel.services, entry(AGENT))
    left = opened.expires_at - datetime.now(UTC)
    assert timedelta(hours=1, minutes=59) < left <= timedelta(hours=2)
    assert "Max-Age=7200" in session.cookie_header(panel.services.settings, opened.id)


async def test_the_ticket_and_requester_are_what_the_entry_said(panel: Panel):
    opened = await session.start(panel.services, entry(AGENT, requester="Jane.Doe@Example.com"))
    assert opened.ticket == TICKET and opened.requester == JANE
    assert opened.helpdesk == "zendesk" and opened.trusted
