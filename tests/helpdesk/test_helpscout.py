"""Help Scout: signed webhooks in, notes out through the Mailbox API 2.0 (against the emulator)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from pydantic import SecretStr
from starlette.datastructures import Headers

from bot.helpdesk.base import Delivery, Forged, NewTicket
from bot.helpdesk.errors import HelpdeskRefused, HelpdeskUnavailable
from bot.helpdesk.helpscout import HelpScout, from_settings
from bot.settings import HelpScoutSettings
from chargedesk_emulators.helpscout import HelpScoutEmulator, helpscout_api


def settings_for(api: HelpScoutEmulator, **changes: object) -> HelpScoutSettings:
    values: dict[str, object] = {
        "app_id": SecretStr(api.app_id),
        "app_secret": SecretStr(api.app_secret),
        "secret_key": SecretStr(api.secret_key),
        "base_url": api.base_url,
        "timeout": 5,
    }
    return HelpScoutSettings(**(values | changes))


@pytest.fixture
def api() -> Iterator[HelpScoutEmulator]:
    with helpscout_api() as emulator:
        yield emulator


@pytest.fixture
async def desk(api: HelpScoutEmulator) -> AsyncIterator[HelpScout]:
    helpdesk = from_settings(settings_for(api))
    assert helpdesk is not None
    yield helpdesk
    await helpdesk.close()


def read(desk: HelpScout, body: bytes, headers: dict[str, str]) -> Delivery:
    return desk.read_delivery(body, Headers(headers), now=time.time())


# --- webhooks -------------------------------------------------------------------------


def test_a_new_conversation_becomes_a_ticket_from_its_customer(
    api: HelpScoutEmulator, desk: HelpScout
) -> None:
    conversation = api.add_conversation("jane.doe@example.com", "Charged twice", "Refund ch_123?")
    delivery = read(desk, *api.webhook(conversation))
    assert delivery.ticket == NewTicket(
        helpdesk="helpscout",
        ticket_id=str(conversation),
        requester_email="jane.doe@example.com",
        subject="Charged twice",
        text="Refund ch_123?",
    )
    assert delivery.answer is None


def test_other_events_are_verified_then_ignored(api: HelpScoutEmulator, desk: HelpScout) -> None:
    conversation = api.add_conversation()
    for event in ("convo.assigned", "convo.customer.reply.created", "customer.created"):
        assert read(desk, *api.webhook(conversation, event)) == Delivery()


@pytest.mark.parametrize(
    "tamper",
    ["unsigned", "wrong secret", "body changed", "signature of another body"],
)
def test_a_delivery_not_signed_with_our_secret_key_is_forged(
    api: HelpScoutEmulator, desk: HelpScout, tamper: str
) -> None:
    conversation = api.add_conversation()
    body, headers = api.webhook(conversation)
    if tamper == "unsigned":
        del headers["X-HelpScout-Signature"]
    elif tamper == "wrong secret":
        body, headers = api.webhook(conversation, secret_key="not-our-key")
    elif tamper == "body changed":
        body = body.replace(b"jane.doe@example.com", b"mallory@example.com")
    else:
        headers["X-HelpScout-Signature"] = api.headers(b"{}")["X-HelpScout-Signature"]
    with pytest.raises(Forged):
        read(desk, body, headers)


async def test_without_a_secret_key_every_delivery_is_refused(api: HelpScoutEmulator) -> None:
    helpdesk = from_settings(settings_for(api, secret_key=None))
    assert helpdesk is not None
    with pytest.raises(Forged, match="no secret"):
        read(helpdesk, *api.webhook(api.add_conversation()))
    await helpdesk.close()


def test_help_scout_is_off_without_its_client_credentials() -> None:
    assert from_settings(HelpScoutSettings()) is None
    assert from_settings(HelpScoutSettings(app_id=SecretStr("x"))) is None


# --- notes ----------------------------------------------------------------------------


async def test_a_note_is_posted_with_a_token_fetched_once(
    api: HelpScoutEmulator, desk: HelpScout
) -> None:
    conversation = api.add_conversation()
    first = await desk.post_note(str(conversation), "<p>Billing: <b>2 charges</b></p>")
    second = await desk.post_note(str(conversation), "<p>again</p>")
    assert [str(n.id) for n in api.notes(conversation)] == [first, second]
    assert api.notes(conversation)[0].body == "<p>Billing: <b>2 charges</b></p>"
    assert api.tokens_issued == 1
    token_request = api.requests_to("POST", "/v2/oauth2/token")[0].json()
    assert token_request["grant_type"] == "client_credentials"
    assert all(
        e.headers["authorization"].startswith("Bearer ")
        for e in api.requests_to("POST", "/v2/conversations")
    )


async def test_a_revoked_token_is_replaced_once_on_401(
    api: HelpScoutEmulator, desk: HelpScout
) -> None:
    conversation = api.add_conversation()
    await desk.post_note(str(conversation), "one")
    api.revoke_tokens()
    await desk.post_note(str(conversation), "two")
    assert api.tokens_issued == 2
    assert len(api.notes(conversation)) == 2


async def test_an_expired_token_is_renewed_before_help_scout_refuses_it() -> None:
    with helpscout_api(token_ttl=30) as api:  # within the client's safety margin: expired at once
        helpdesk = from_settings(settings_for(api))
        assert helpdesk is not None
        conversation = api.add_conversation()
        await helpdesk.post_note(str(conversation), "one")
        await helpdesk.post_note(str(conversation), "two")
        await helpdesk.close()
    assert api.tokens_issued == 2
    assert all(e.status != 401 for e in api.exchanges)


async def test_wrong_client_credentials_are_a_permanent_refusal(api: HelpScoutEmulator) -> None:
    helpdesk = from_settings(settings_for(api, app_secret=SecretStr("wrong")))
    assert helpdesk is not None
    with pytest.raises(HelpdeskRefused) as caught:
        await helpdesk.post_note(str(api.add_conversation()), "x")
    await helpdesk.close()
    assert caught.value.status == 401 and "wrong" not in str(caught.value)


async def test_find_note_finds_the_marker_across_pages() -> None:
    with helpscout_api(page_size=2) as api:
        helpdesk = from_settings(settings_for(api))
        assert helpdesk is not None
        conversation = str(api.add_conversation())
        wanted = await helpdesk.post_note(conversation, "<p>billing [cd:abc123]</p>")
        for n in range(4):
            await helpdesk.post_note(conversation, f"<p>later note {n}</p>")
        assert await helpdesk.find_note(conversation, "[cd:abc123]") == wanted
        assert await helpdesk.find_note(conversation, "[cd:missing]") is None
        pages = {e.query.get("page") for e in api.requests_to("GET", "/v2/conversations")}
        await helpdesk.close()
    assert pages == {"1", "2", "3"}


async def test_customer_threads_never_count_as_our_note(
    api: HelpScoutEmulator, desk: HelpScout
) -> None:
    conversation = api.add_conversation(text="please quote [cd:abc123] back")
    assert await desk.find_note(str(conversation), "[cd:abc123]") is None


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_rate_limits_and_server_errors_are_retryable(
    api: HelpScoutEmulator, desk: HelpScout, status: int
) -> None:
    conversation = api.add_conversation()
    api.fail_next(1, status, path_prefix="/v2/conversations")
    with pytest.raises(HelpdeskUnavailable) as caught:
        await desk.post_note(str(conversation), "x")
    assert caught.value.status == status
    assert api.notes(conversation) == []


async def test_forbidden_and_unknown_conversations_are_permanent(
    api: HelpScoutEmulator, desk: HelpScout
) -> None:
    api.fail_next(1, 403, path_prefix="/v2/conversations")
    with pytest.raises(HelpdeskRefused) as caught:
        await desk.post_note(str(api.add_conversation()), "x")
    assert caught.value.status == 403
    with pytest.raises(HelpdeskRefused) as missing:
        await desk.post_note("999", "x")
    assert missing.value.status == 404
    with pytest.raises(HelpdeskRefused):
        await desk.post_note("../users/me", "x")


async def test_a_timeout_is_retryable(api: HelpScoutEmulator) -> None:
    helpdesk = from_settings(settings_for(api, timeout=0.2))
    assert helpdesk is not None
    await helpdesk.post_note(str(api.add_conversation()), "warm the token")
    api.slow_next(1, 1.0)
    with pytest.raises(HelpdeskUnavailable, match="timed out"):
        await helpdesk.post_note(str(api.add_conversation()), "x")
    await helpdesk.close()


def test_the_emulator_signs_exactly_what_it_sends(api: HelpScoutEmulator) -> None:
    body, headers = api.webhook(api.add_conversation())
    assert json.loads(body)["_embedded"]["threads"][0]["type"] == "customer"
    assert headers["X-HelpScout-Event"] == "convo.created"


# --- end to end: the webhook route, the pipeline, the note ---------------------------


@pytest.fixture
def desk_settings(desk_settings, api: HelpScoutEmulator):
    """The pipeline's settings with Help Scout pointing at its emulator."""
    return desk_settings.model_copy(
        update={
            "helpdesk": desk_settings.helpdesk.model_copy(update={"helpscout": settings_for(api)})
        }
    )


@pytest.mark.storage
async def test_a_delivery_sent_three_times_gets_exactly_one_note(
    bot, api: HelpScoutEmulator
) -> None:
    conversation = api.add_conversation("jane.doe@example.com", "Charged twice", "Help")
    body, headers = api.webhook(conversation)
    answers = [await bot.deliver("helpscout", body, headers) for _ in range(3)]
    assert [a.json()["received"] for a in answers] == ["recorded", "duplicate", "duplicate"]
    await bot.work()
    await bot.work()
    notes = api.notes(conversation)
    assert len(notes) == 1
    assert "ChargeDesk billing summary" in notes[0].body and "€120.00" in notes[0].body
    assert api.tokens_issued == 1


@pytest.mark.storage
async def test_a_forged_delivery_is_refused_by_the_route(bot, api: HelpScoutEmulator) -> None:
    body, headers = api.webhook(api.add_conversation(), secret_key="not-ours")
    answer = await bot.deliver("helpscout", body, headers)
    assert answer.status_code == 401 and await bot.rows() == []


@pytest.mark.storage
async def test_a_note_whose_answer_was_lost_is_found_not_posted_again(
    bot, api: HelpScoutEmulator
) -> None:
    conversation = api.add_conversation("jane.doe@example.com", "Charged twice", "Help")
    api.fail_next(1, 502, after=True, path_prefix=f"/v2/conversations/{conversation}/notes")
    await bot.deliver("helpscout", *api.webhook(conversation))
    await bot.work()
    await bot.work()
    assert len(api.notes(conversation)) == 1
    (row,) = await bot.rows()
    assert (row.state, row.note_id) == ("posted", str(api.notes(conversation)[0].id))
