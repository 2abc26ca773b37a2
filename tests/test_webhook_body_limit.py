"""A request body over 1 MiB is refused with 413 before it is read whole, on every route.

Webhooks and Slack's endpoint read the body before they can check a signature
(the billing pages' forms have a smaller cap of their own). Each case streams its body from a generator that counts
what the app pulled: a declared size over the cap is refused before the first
byte is read, a chunked body the moment it passes the cap.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import ClassVar

import httpx
import pytest

from bot.gateways.base import Gateway, WebhookRejected
from bot.gateways.events import GatewayEvent
from bot.gateways.registry import Gateways
from bot.web import create_app
from bot.webhooks import MAX_BODY, receive
from tests.chat.test_slack import api, slack  # noqa: F401  (fixtures)

pytestmark = pytest.mark.storage

CHUNK = 64 * 1024
ENDLESS = 64 * 1024 * 1024  # 64 MiB: what an attacker might send; never pulled in full


class Body:
    """`total` bytes in chunks, counting how many the app asked for."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.pulled < self.total:
            self.pulled += CHUNK
            yield b"x" * CHUNK


class Signed(Gateway):
    """A gateway that takes webhooks: a delivery it reads is refused for its signature."""

    name = "acme"
    read: ClassVar[list[int]] = []

    async def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> list[GatewayEvent]:
        self.read.append(len(body))
        raise WebhookRejected(self.name, "bad signature")


@pytest.fixture
async def http(services) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    Signed.read = []
    services.gateways = Gateways([*services.gateways, Signed()], timeout=2)
    app = create_app(services.settings, services)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bot") as client,
    ):
        yield client


@pytest.mark.parametrize("path", ["/webhooks/acme", "/webhooks/nobody"])
async def test_a_chunked_body_over_the_cap_is_refused_as_soon_as_it_passes_it(http, path):
    body = Body(ENDLESS)
    response = await http.post(path, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert body.pulled <= MAX_BODY + 2 * CHUNK  # stopped at the cap, not at 64 MiB
    assert Signed.read == []  # the gateway never saw it


async def test_a_declared_size_over_the_cap_is_refused_before_any_byte_is_read(http):
    body = Body(ENDLESS)
    response = await http.post(
        "/webhooks/acme",
        content=body,
        headers={"Content-Length": str(ENDLESS), "Content-Type": "application/json"},
    )
    assert response.status_code == 413 and "at most 1,048,576 bytes" in response.json()["error"]
    assert body.pulled <= CHUNK  # what the client had in flight; the app read none of it


async def test_a_body_just_under_the_cap_still_reaches_the_signature_check(http):
    response = await http.post("/webhooks/acme", content=b"{" + b" " * (MAX_BODY - 2) + b"}")
    assert response.status_code == 400  # read, then refused for its signature
    assert Signed.read == [MAX_BODY]


async def test_slacks_endpoint_is_capped_too(slack):  # noqa: F811
    body = Body(ENDLESS)
    response = await slack.http.post(
        "/slack/events", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413 and body.pulled <= MAX_BODY + 2 * CHUNK


async def test_receive_refuses_an_oversized_delivery_before_parsing_it(services):
    Signed.read = []
    services.gateways = Gateways([*services.gateways, Signed()], timeout=2)
    with pytest.raises(WebhookRejected, match="at most"):
        await receive(services, "acme", b"x" * (MAX_BODY + 1), {})
    assert Signed.read == []
