"""Only genuine deliveries are recorded: forged, unsigned, stale and replayed ones change nothing."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from bot.helpdesk.base import Forged
from bot.helpdesk.freshdesk import from_settings as freshdesk_settings
from bot.helpdesk.zendesk import Zendesk
from bot.helpdesk.zendesk import from_settings as zendesk_settings
from bot.settings import ConfigError, FreshdeskSettings, ZendeskSettings

pytestmark = pytest.mark.storage


async def test_zendesk_delivery_signed_with_another_secret_is_refused_and_nothing_recorded(
    bot, zendesk
):
    ticket = zendesk.ticket("Refund", "Please refund", requester_email="jane.doe@example.com")
    body, headers = zendesk.delivery(ticket, secret="not-the-signing-secret")
    answer = await bot.deliver("zendesk", body, headers)
    assert answer.status_code == 401
    assert await bot.rows() == []


async def test_zendesk_delivery_with_a_changed_body_is_refused(bot, zendesk):
    ticket = zendesk.ticket("Refund", "Please refund", requester_email="jane.doe@example.com")
    body, headers = zendesk.delivery(ticket)
    answer = await bot.deliver("zendesk", body.replace(b"jane.doe", b"evil"), headers)
    assert answer.status_code == 401
    assert await bot.rows() == []


@pytest.mark.parametrize(
    "missing", ["X-Zendesk-Webhook-Signature", "X-Zendesk-Webhook-Signature-Timestamp"]
)
async def test_unsigned_zendesk_delivery_is_refused(bot, zendesk, missing):
    ticket = zendesk.ticket("Refund", "Please refund", requester_email="jane.doe@example.com")
    body, headers = zendesk.delivery(ticket)
    del headers[missing]
    answer = await bot.deliver("zendesk", body, headers)
    assert answer.status_code == 401
    assert await bot.rows() == []


async def test_stale_zendesk_delivery_is_refused_even_with_a_good_signature(bot, zendesk):
    ticket = zendesk.ticket("Refund", "Please refund", requester_email="jane.doe@example.com")
    old = datetime.now(UTC) - timedelta(
        seconds=bot.services.settings.helpdesk.zendesk.webhook_tolerance + 60
    )
    body, headers = zendesk.delivery(ticket, at=old)
    answer = await bot.deliver("zendesk", body, headers)
    assert answer.status_code == 401
    assert await bot.rows() == []


async def test_replayed_zendesk_delivery_records_nothing_more(bot, zendesk):
    ticket = zendesk.ticket("Refund", "Please refund", requester_email="jane.doe@example.com")
    body, headers = zendesk.delivery(ticket)
    first = await bot.deliver("zendesk", body, headers)
    replay = await bot.deliver("zendesk", body, headers)
    assert first.json() == {"received": "recorded"}
    assert replay.status_code == 200 and replay.json() == {"received": "duplicate"}
    assert len(await bot.rows()) == 1


async def test_freshdesk_delivery_with_a_wrong_secret_is_refused_and_nothing_recorded(
    bot, freshdesk
):
    ticket = freshdesk.ticket("Refund", "Please refund", requester_email="jane.doe@example.com")
    body, headers = freshdesk.delivery(ticket, secret="guessed-secret")
    answer = await bot.deliver("freshdesk", body, headers)
    assert answer.status_code == 401
    assert await bot.rows() == []


async def test_freshdesk_delivery_without_the_secret_header_is_refused(bot, freshdesk):
    ticket = freshdesk.ticket("Refund", "Please refund", requester_email="jane.doe@example.com")
    body, headers = freshdesk.delivery(ticket, header="X-Something-Else")
    answer = await bot.deliver("freshdesk", body, headers)
    assert answer.status_code == 401
    assert await bot.rows() == []


async def test_replayed_freshdesk_delivery_records_nothing_more(bot, freshdesk):
    """Freshdesk stamps nothing, so age cannot refuse a replay: the once-per-ticket key does."""
    ticket = freshdesk.ticket("Refund", "Please refund", requester_email="jane.doe@example.com")
    body, headers = freshdesk.delivery(ticket)
    first = await bot.deliver("freshdesk", body, headers)
    replay = await bot.deliver("freshdesk", body, headers)
    assert (first.json(), replay.json()) == ({"received": "recorded"}, {"received": "duplicate"})
    assert len(await bot.rows()) == 1


@pytest.mark.parametrize("name", ["helpscout", "nosuchdesk"])
async def test_a_helpdesk_not_configured_has_no_webhook(bot, zendesk, name):
    ticket = zendesk.ticket("Refund", "Please refund", requester_email="jane.doe@example.com")
    body, headers = zendesk.delivery(ticket)
    answer = await bot.deliver(name, body, headers)
    assert answer.status_code == 404
    assert await bot.rows() == []


async def test_a_genuine_delivery_about_something_else_is_answered_and_ignored(bot, zendesk):
    from chargedesk_emulators.zendesk import sign, timestamp

    body = b'{"event": "test", "message": "Webhook test from Admin Center"}'
    stamp = timestamp()
    headers = {
        "X-Zendesk-Webhook-Signature-Timestamp": stamp,
        "X-Zendesk-Webhook-Signature": sign(zendesk.webhook_secret, stamp, body),
    }
    answer = await bot.deliver("zendesk", body, headers)
    assert (answer.status_code, answer.json()) == (200, {"received": "ignored"})
    assert await bot.rows() == []


def test_without_a_signing_secret_every_zendesk_delivery_is_refused(zendesk):
    desk = Zendesk(ZendeskSettings(base_url=zendesk.base_url, email="a@example.com", api_token="t"))
    ticket = zendesk.ticket("Refund", "Please refund", requester_email="jane.doe@example.com")
    with pytest.raises(Forged, match="no secret"):
        desk.read_delivery(*zendesk.delivery(ticket), now=time.time())


@pytest.mark.parametrize(
    ("section", "value"),
    [("zendesk", "evil.example/x?"), ("freshdesk", "evil.example/x?y=")],
)
def test_a_helpdesk_address_that_is_not_a_host_name_is_refused_at_start(section, value):
    if section == "zendesk":
        settings = ZendeskSettings(subdomain=value, email="a@example.com", api_token="t")
        build = zendesk_settings
    else:
        settings = FreshdeskSettings(domain=value, api_key="k")
        build = freshdesk_settings
    with pytest.raises(ConfigError):
        build(settings)
