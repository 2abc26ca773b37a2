"""Intercom: signed webhook notifications in, admin notes out (against the emulator)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

import pytest
from pydantic import SecretStr
from starlette.datastructures import Headers

from bot.helpdesk.base import Delivery, Forged, NewTicket
from bot.helpdesk.errors import HelpdeskRefused, HelpdeskUnavailable
from bot.helpdesk.intercom import Intercom, from_settings
from bot.settings import IntercomSettings
from chargedesk_emulators.intercom import IntercomEmulator, intercom_api, schema_problems


def settings_for(api: IntercomEmulator, **changes: object) -> IntercomSettings:
    values: dict[str, object] = {
        "access_token": SecretStr(api.access_token),
        "client_secret": SecretStr(api.client_secret),
        "base_url": api.base_url,
        "timeout": 5,
    }
    return IntercomSettings(**(values | changes))


@pytest.fixture
def api() -> Iterator[IntercomEmulator]:
    with intercom_api() as emulator:
        yield emulator
    assert schema_problems(emulator.exchanges) == []


@pytest.fixture
async def desk(api: IntercomEmulator) -> AsyncIterator[Intercom]:
    helpdesk = from_settings(settings_for(api))
    assert helpdesk is not None
    yield helpdesk
    await helpdesk.close()


def read(
    desk: Intercom, body: bytes, headers: dict[str, str], now: float | None = None
) -> Delivery:
    return desk.read_delivery(body, Headers(headers), now=time.time() if now is None else now)


# --- webhooks -------------------------------------------------------------------------


def test_a_conversation_a_contact_opened_becomes_a_ticket(
    api: IntercomEmulator, desk: Intercom
) -> None:
    conversation = api.add_conversation(
        "jane.doe@example.com", "Invoice", "<p>Refund <b>in_42</b>, please &amp; thanks</p>"
    )
    body, headers = api.notification(conversation)
    delivery = read(desk, body, headers)
    assert delivery.ticket is not None
    assert delivery.ticket == NewTicket(
        helpdesk="intercom",
        ticket_id=conversation,
        requester_email="jane.doe@example.com",
        subject="Invoice",
        text="Refund in_42, please & thanks",
        delivery_id=delivery.ticket.delivery_id,
    )
    assert delivery.ticket.delivery_id and delivery.ticket.delivery_id.startswith("notif_")


def test_a_lead_is_a_requester_too(api: IntercomEmulator, desk: Intercom) -> None:
    conversation = api.add_conversation("lead@example.com", contact_type="lead")
    delivery = read(desk, *api.notification(conversation))
    assert delivery.ticket is not None and delivery.ticket.requester_email == "lead@example.com"


def test_other_topics_and_the_ping_are_ignored(api: IntercomEmulator, desk: Intercom) -> None:
    conversation = api.add_conversation()
    for topic in ("conversation.admin.replied", "conversation.user.replied", "contact.created"):
        assert read(desk, *api.notification(conversation, topic)) == Delivery()
    assert read(desk, *api.ping()) == Delivery()


@pytest.mark.parametrize("tamper", ["unsigned", "wrong secret", "body changed", "no sha1= prefix"])
def test_a_notification_not_signed_with_our_client_secret_is_forged(
    api: IntercomEmulator, desk: Intercom, tamper: str
) -> None:
    conversation = api.add_conversation()
    body, headers = api.notification(conversation)
    if tamper == "unsigned":
        del headers["X-Hub-Signature"]
    elif tamper == "wrong secret":
        body, headers = api.notification(conversation, client_secret="not-ours")
    elif tamper == "body changed":
        body = body.replace(b"jane.doe@example.com", b"mallory@example.com")
    else:
        headers["X-Hub-Signature"] = headers["X-Hub-Signature"].removeprefix("sha1=")
    with pytest.raises(Forged):
        read(desk, body, headers)


def test_a_stale_notification_is_refused_as_a_replay(api: IntercomEmulator, desk: Intercom) -> None:
    conversation = api.add_conversation()
    old = int(time.time()) - 3600
    body, headers = api.notification(conversation, created_at=old)
    with pytest.raises(Forged, match="stale"):
        read(desk, body, headers)
    assert read(desk, body, headers, now=old + 10).ticket is not None


def test_intercom_is_off_without_an_access_token() -> None:
    assert from_settings(IntercomSettings(client_secret=SecretStr("x"))) is None


# --- notes ----------------------------------------------------------------------------


async def test_a_note_is_written_by_the_tokens_admin_with_the_version_header(
    api: IntercomEmulator, desk: Intercom
) -> None:
    conversation = api.add_conversation()
    note_id = await desk.post_note(conversation, "<p>Billing: <b>EUR 12.50</b></p>")
    notes = api.notes(conversation)
    assert [n.id for n in notes] == [note_id]
    assert notes[0].body == "<p>Billing: <b>EUR 12.50</b></p>"
    assert notes[0].author["id"] == api.me
    reply = api.requests_to("POST", "/conversations")[0]
    assert reply.json() == {"message_type": "note", "type": "admin", "admin_id": api.me,
                            "body": "<p>Billing: <b>EUR 12.50</b></p>"}  # fmt: skip
    assert reply.headers["authorization"] == f"Bearer {api.access_token}"
    assert reply.headers["intercom-version"] == "2.16"
    await desk.post_note(conversation, "<p>again</p>")
    assert len(api.requests_to("GET", "/me")) == 1  # the admin is asked once


async def test_a_configured_admin_writes_the_notes(api: IntercomEmulator) -> None:
    admin = api.add_admin()
    helpdesk = from_settings(settings_for(api, admin_id=admin))
    assert helpdesk is not None
    conversation = api.add_conversation()
    await helpdesk.post_note(conversation, "<p>x</p>")
    await helpdesk.close()
    assert api.notes(conversation)[0].author["id"] == admin
    assert api.requests_to("GET", "/me") == []


async def test_find_note_looks_only_at_notes(api: IntercomEmulator, desk: Intercom) -> None:
    conversation = api.add_conversation(body="<p>quote [cd:abc] back to me</p>")
    assert await desk.find_note(conversation, "[cd:abc]") is None
    note_id = await desk.post_note(conversation, "<p>billing [cd:abc]</p>")
    await desk.post_note(conversation, "<p>something else</p>")
    assert await desk.find_note(conversation, "[cd:abc]") == note_id


async def test_a_wrong_access_token_is_a_permanent_refusal(api: IntercomEmulator) -> None:
    helpdesk = from_settings(settings_for(api, access_token=SecretStr("forged-token")))
    assert helpdesk is not None
    with pytest.raises(HelpdeskRefused) as caught:
        await helpdesk.post_note(api.add_conversation(), "x")
    await helpdesk.close()
    assert caught.value.status == 401 and "forged-token" not in str(caught.value)


@pytest.mark.parametrize("status", [429, 500, 502])
async def test_rate_limits_and_server_errors_are_retryable(
    api: IntercomEmulator, desk: Intercom, status: int
) -> None:
    conversation = api.add_conversation()
    await desk.find_note(conversation, "warm")  # nothing to fail but the call under test
    api.fail_next(1, status)
    with pytest.raises(HelpdeskUnavailable) as caught:
        await desk.post_note(conversation, "x")
    assert caught.value.status == status


async def test_forbidden_and_unknown_conversations_are_permanent(
    api: IntercomEmulator, desk: Intercom
) -> None:
    await desk.admin_id()
    api.fail_next(1, 403)
    with pytest.raises(HelpdeskRefused) as caught:
        await desk.post_note(api.add_conversation(), "x")
    assert caught.value.status == 403
    with pytest.raises(HelpdeskRefused) as missing:
        await desk.post_note("424242", "x")
    assert missing.value.status == 404


async def test_a_lost_answer_is_retryable_and_find_note_sees_the_note(
    api: IntercomEmulator, desk: Intercom
) -> None:
    conversation = api.add_conversation()
    await desk.admin_id()
    api.fail_next(1, 502, after=True)
    with pytest.raises(HelpdeskUnavailable):
        await desk.post_note(conversation, "<p>billing [cd:k1]</p>")
    assert await desk.find_note(conversation, "[cd:k1]") == api.notes(conversation)[0].id


# --- end to end: the webhook route, the pipeline, the note ---------------------------


@pytest.fixture
def desk_settings(desk_settings, api: IntercomEmulator):
    """The pipeline's settings with Intercom pointing at its emulator."""
    return desk_settings.model_copy(
        update={
            "helpdesk": desk_settings.helpdesk.model_copy(update={"intercom": settings_for(api)})
        }
    )


@pytest.mark.storage
async def test_a_notification_sent_three_times_gets_exactly_one_note(
    bot, api: IntercomEmulator
) -> None:
    conversation = api.add_conversation("jane.doe@example.com", "", "<p>Help with ch_jane_1</p>")
    body, headers = api.notification(conversation)
    answers = [await bot.deliver("intercom", body, headers) for _ in range(3)]
    assert [a.json()["received"] for a in answers] == ["recorded", "duplicate", "duplicate"]
    await bot.work()
    await bot.work()
    notes = api.notes(conversation)
    assert len(notes) == 1
    assert "ChargeDesk billing summary" in (notes[0].body or "")


@pytest.mark.storage
async def test_a_stale_notification_is_refused_by_the_route(bot, api: IntercomEmulator) -> None:
    body, headers = api.notification(api.add_conversation(), created_at=int(time.time()) - 3600)
    answer = await bot.deliver("intercom", body, headers)
    assert answer.status_code == 401 and await bot.rows() == []


@pytest.mark.storage
async def test_a_note_whose_answer_was_lost_is_found_not_posted_again(
    bot, api: IntercomEmulator
) -> None:
    conversation = api.add_conversation("jane.doe@example.com")
    api.fail_next(1, 502, after=True, path_prefix=f"/conversations/{conversation}/reply")
    await bot.deliver("intercom", *api.notification(conversation))
    await bot.work()
    await bot.work()
    assert len(api.notes(conversation)) == 1
    (row,) = await bot.rows()
    assert (row.state, row.note_id) == ("posted", api.notes(conversation)[0].id)
