"""Front: signed application webhooks in (the challenge too), comments out (against the emulator)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

import pytest
from pydantic import SecretStr
from starlette.datastructures import Headers

from bot.helpdesk.base import Delivery, Forged, NewTicket
from bot.helpdesk.errors import HelpdeskRefused, HelpdeskUnavailable
from bot.helpdesk.front import Front, from_settings
from bot.settings import FrontSettings
from chargedesk_emulators.front import FrontEmulator, front_api


def settings_for(api: FrontEmulator, **changes: object) -> FrontSettings:
    values: dict[str, object] = {
        "api_token": SecretStr(api.api_token),
        "app_secret": SecretStr(api.app_secret),
        "base_url": api.base_url,
        "timeout": 5,
    }
    return FrontSettings(**(values | changes))


@pytest.fixture
def api() -> Iterator[FrontEmulator]:
    with front_api() as emulator:
        yield emulator


@pytest.fixture
async def desk(api: FrontEmulator) -> AsyncIterator[Front]:
    helpdesk = from_settings(settings_for(api))
    assert helpdesk is not None
    yield helpdesk
    await helpdesk.close()


def read(desk: Front, body: bytes, headers: dict[str, str], now: float | None = None) -> Delivery:
    return desk.read_delivery(body, Headers(headers), now=time.time() if now is None else now)


# --- webhooks -------------------------------------------------------------------------


def test_an_inbound_message_becomes_a_ticket_from_its_sender(
    api: FrontEmulator, desk: Front
) -> None:
    conversation = api.add_conversation("jane.doe@example.com", "Charged twice", "Refund ch_9?")
    delivery = read(desk, *api.webhook(conversation))
    assert delivery.ticket is not None
    assert delivery.ticket == NewTicket(
        helpdesk="front",
        ticket_id=conversation,
        requester_email="jane.doe@example.com",
        subject="Charged twice",
        text="Refund ch_9?",
        delivery_id=delivery.ticket.delivery_id,
    )
    assert delivery.ticket.delivery_id and delivery.ticket.delivery_id.startswith("evt_")


def test_the_setup_challenge_is_answered_with_its_value(api: FrontEmulator, desk: Front) -> None:
    body, headers, value = api.challenge()
    assert read(desk, body, headers) == Delivery(answer={"challenge": value})


def test_a_challenge_with_a_wrong_signature_is_not_answered(
    api: FrontEmulator, desk: Front
) -> None:
    body, headers, _ = api.challenge(app_secret="not-ours")
    with pytest.raises(Forged):
        read(desk, body, headers)


def test_other_events_are_ignored(api: FrontEmulator, desk: Front) -> None:
    conversation = api.add_conversation()
    for kind in ("outbound_sent", "conversation_archived", "new_comment_added"):
        assert read(desk, *api.webhook(conversation, kind)) == Delivery()


@pytest.mark.parametrize(
    "tamper", ["unsigned", "no timestamp", "wrong secret", "body changed", "timestamp changed"]
)
def test_a_request_not_signed_with_our_app_secret_is_forged(
    api: FrontEmulator, desk: Front, tamper: str
) -> None:
    conversation = api.add_conversation()
    body, headers = api.webhook(conversation)
    if tamper == "unsigned":
        del headers["X-Front-Signature"]
    elif tamper == "no timestamp":
        del headers["X-Front-Request-Timestamp"]
    elif tamper == "wrong secret":
        body, headers = api.webhook(conversation, app_secret="not-ours")
    elif tamper == "body changed":
        body = body.replace(b"jane.doe@example.com", b"mallory@example.com")
    else:
        headers["X-Front-Request-Timestamp"] = str(int(headers["X-Front-Request-Timestamp"]) + 1)
    with pytest.raises(Forged):
        read(desk, body, headers)


def test_a_stale_request_is_refused_even_when_signed(api: FrontEmulator, desk: Front) -> None:
    conversation = api.add_conversation()
    an_hour_ago = int((time.time() - 3600) * 1000)
    body, headers = api.webhook(conversation, timestamp_ms=an_hour_ago)
    with pytest.raises(Forged, match="stale"):
        read(desk, body, headers)
    assert read(desk, body, headers, now=an_hour_ago / 1000 + 5).ticket is not None


async def test_without_an_app_secret_every_request_is_refused(api: FrontEmulator) -> None:
    helpdesk = from_settings(settings_for(api, app_secret=None))
    assert helpdesk is not None
    with pytest.raises(Forged, match="no secret"):
        read(helpdesk, *api.webhook(api.add_conversation()))
    await helpdesk.close()


def test_front_is_off_without_an_api_token() -> None:
    assert from_settings(FrontSettings(app_secret=SecretStr("x"))) is None


# --- comments -------------------------------------------------------------------------


async def test_a_comment_is_posted_with_the_api_token(api: FrontEmulator, desk: Front) -> None:
    conversation = api.add_conversation()
    comment_id = await desk.post_note(conversation, "Billing for jane\nCharges: 2")
    comments = api.comments(conversation)
    assert [c.id for c in comments] == [comment_id]
    assert comments[0].author == api.bot  # no author_id: Front's bot teammate for the token
    assert comments[0].body == "Billing for jane  \nCharges: 2"  # lines kept apart in Markdown
    posted = api.requests_to("POST", "/conversations")[0]
    assert posted.headers["authorization"] == f"Bearer {api.api_token}"
    assert posted.json() == {"body": "Billing for jane  \nCharges: 2"}


async def test_a_configured_teammate_writes_the_comments(api: FrontEmulator) -> None:
    teammate = api.add_teammate()
    helpdesk = from_settings(settings_for(api, author_id=teammate))
    assert helpdesk is not None
    conversation = api.add_conversation()
    await helpdesk.post_note(conversation, "x")
    await helpdesk.close()
    assert api.comments(conversation)[0].author["id"] == teammate


async def test_find_note_follows_fronts_pages(api: FrontEmulator, desk: Front) -> None:
    conversation = api.add_conversation()
    wanted = await desk.post_note(conversation, "billing [cd:abc]")
    for n in range(60):  # more than one page of 50, newest first: ours is on page two
        await desk.post_note(conversation, f"comment {n}")
    assert await desk.find_note(conversation, "[cd:abc]") == wanted
    assert await desk.find_note(conversation, "[cd:none]") is None
    assert any("page_token" in e.query for e in api.requests_to("GET", "/conversations"))


async def test_a_wrong_api_token_is_a_permanent_refusal(api: FrontEmulator) -> None:
    helpdesk = from_settings(settings_for(api, api_token=SecretStr("forged-token")))
    assert helpdesk is not None
    with pytest.raises(HelpdeskRefused) as caught:
        await helpdesk.post_note(api.add_conversation(), "x")
    await helpdesk.close()
    assert caught.value.status == 401 and "forged-token" not in str(caught.value)


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_rate_limits_and_server_errors_are_retryable(
    api: FrontEmulator, desk: Front, status: int
) -> None:
    conversation = api.add_conversation()
    api.fail_next(1, status)
    with pytest.raises(HelpdeskUnavailable) as caught:
        await desk.post_note(conversation, "x")
    assert caught.value.status == status
    assert api.comments(conversation) == []


async def test_forbidden_and_unknown_conversations_are_permanent(
    api: FrontEmulator, desk: Front
) -> None:
    api.fail_next(1, 403)
    with pytest.raises(HelpdeskRefused) as caught:
        await desk.post_note(api.add_conversation(), "x")
    assert caught.value.status == 403
    with pytest.raises(HelpdeskRefused) as missing:
        await desk.post_note("cnv_nope", "x")
    assert missing.value.status == 404


async def test_find_note_sees_the_marker_through_markdown_escapes(
    api: FrontEmulator, desk: Front
) -> None:
    conversation = api.add_conversation()
    # The pipeline's text renderer escapes `_` for Markdown: the stored comment has `cdn\_`.
    comment_id = await desk.post_note(conversation, "Summary\n-- ChargeDesk note cdn\\_a1b2")
    assert await desk.find_note(conversation, "ChargeDesk note cdn_a1b2") == comment_id


# --- end to end: the webhook route, the pipeline, the comment ------------------------


@pytest.fixture
def desk_settings(desk_settings, api: FrontEmulator):
    """The pipeline's settings with Front pointing at its emulator."""
    return desk_settings.model_copy(
        update={"helpdesk": desk_settings.helpdesk.model_copy(update={"front": settings_for(api)})}
    )


@pytest.mark.storage
async def test_an_event_sent_three_times_gets_exactly_one_comment(bot, api: FrontEmulator) -> None:
    conversation = api.add_conversation("jane.doe@example.com", "Charged twice", "Help")
    body, headers = api.webhook(conversation)
    answers = [await bot.deliver("front", body, headers) for _ in range(3)]
    assert [a.json()["received"] for a in answers] == ["recorded", "duplicate", "duplicate"]
    await bot.work()
    await bot.work()
    comments = api.comments(conversation)
    assert len(comments) == 1
    assert "ChargeDesk billing summary" in comments[0].body


@pytest.mark.storage
async def test_the_route_answers_fronts_challenge(bot, api: FrontEmulator) -> None:
    body, headers, value = api.challenge()
    answer = await bot.deliver("front", body, headers)
    assert (answer.status_code, answer.json()) == (200, {"challenge": value})
    assert await bot.rows() == []


@pytest.mark.storage
async def test_a_comment_whose_answer_was_lost_is_found_not_posted_again(
    bot, api: FrontEmulator
) -> None:
    conversation = api.add_conversation("jane.doe@example.com", "Charged twice", "Help")
    api.fail_next(1, 502, after=True, path_prefix=f"/conversations/{conversation}/comments")
    await bot.deliver("front", *api.webhook(conversation))
    await bot.work()
    await bot.work()
    assert len(api.comments(conversation)) == 1
    (row,) = await bot.rows()
    assert (row.state, row.note_id) == ("posted", api.comments(conversation)[0].id)
