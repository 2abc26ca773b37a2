"""Ledger payment requests paid on our billing page: `/portal/request/<signed token>`."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from bot import jobs
from bot.billing_links import token
from bot.gateways.ledger.forward import Forwarder
from bot.gateways.ledger.gateway import LedgerGateway
from bot.gateways.registry import Gateways
from bot.keys import signing_key
from bot.payment_requests import hosted, reminders
from bot.portal.redact import RedactLinks
from bot.store.tables import (
    AuditEntry,
    LedgerCharge,
    LedgerOperation,
    PaymentRequestRow,
    ProcessedEvent,
)
from tests.commands.test_payment_requests import assert_not_at_rest
from tests.conftest import say
from tests.fakes.forward_server import ForwardEndpoint, forward_endpoint
from tests.portal.conftest import BASE, csrf_of, path_of

pytestmark = pytest.mark.storage

WHY = "reason: pays by link"


async def ask(services: Any, agent: Any, what: str = "10.00 EUR Order 3") -> tuple[str, str]:
    """A ledger request to Jane: (its ID, the pay page's URL the agent was shown)."""
    reply = await say(services, agent, f"request ledger:cus_jane {what} {WHY}")
    assert reply.error is None, reply.error
    (card,) = reply.cards
    (url,) = [b.url for b in card.actions if b.url]
    request_id = card.title.split()[2].rstrip(":")
    return request_id, url


async def charges_for(services: Any, description: str) -> list[LedgerCharge]:
    async with services.db.read() as s:
        return list(
            await s.scalars(select(LedgerCharge).where(LedgerCharge.description == description))
        )


async def row_of(services: Any, request_id: str) -> PaymentRequestRow:
    async with services.db.read() as s:
        row = await s.get(PaymentRequestRow, request_id)
    assert row is not None
    return row


async def press_pay(client: httpx.AsyncClient, path: str, **headers: str) -> httpx.Response:
    page = await client.get(path)
    assert page.status_code == 200, page.text
    return await client.post(path, data={"csrf": csrf_of(page.text)}, headers=headers)


async def test_paying_a_ledger_request_records_one_charge_and_closes_it_paid(
    services, client, agent
):
    request_id, url = await ask(services, agent)
    assert url.startswith(f"{BASE}/portal/request/plink_")
    page = await client.get(path_of(url))
    assert page.status_code == 200
    assert "€10.00" in page.text and "Order 3" in page.text and "Pay €10.00" in page.text

    paid = await press_pay(client, path_of(url))
    assert paid.status_code == 303 and paid.headers["location"] == path_of(url)
    again = await client.post(path_of(url), data={"csrf": csrf_of(page.text)})  # replayed
    assert again.status_code == 303

    (charge,) = await charges_for(services, "Order 3")
    assert (charge.customer_id, charge.amount, charge.currency) == ("cus_jane", 1000, "EUR")
    assert charge.status == "succeeded" and charge.amount_captured == 1000
    row = await row_of(services, request_id)
    assert row.state == "paid" and row.paid_with == charge.id
    after = await client.get(path_of(url))
    assert (
        "This request is paid" in after.text
        and 'type="submit" class="button primary"' not in after.text
    )
    async with services.db.read() as s:
        outcomes = list(await s.scalars(
            select(AuditEntry.outcome).where(AuditEntry.action == "request")
        ))  # fmt: skip
        events = await s.scalar(select(func.count()).select_from(ProcessedEvent).where(
            ProcessedEvent.gateway == "ledger", ProcessedEvent.raw_type == "pay_link.paid"
        ))  # fmt: skip
    assert outcomes == ["open", "paid"] and events == 1


async def test_two_clicks_at_once_record_one_charge(services, agent):
    request_id, url = await ask(services, agent, "12.00 EUR Order 4")
    value = url.rsplit("/", 1)[1]
    pages = [await hosted.open_page(services, value) for _ in range(4)]
    done = await asyncio.gather(*(hosted.pay(services, page) for page in pages))
    assert {page.state for page in done} == {"paid"}
    assert len(await charges_for(services, "Order 4")) == 1
    assert (await row_of(services, request_id)).state == "paid"


async def test_a_forged_or_altered_token_is_refused_and_counted(services, client, agent):
    _, url = await ask(services, agent)
    path = path_of(url)
    link_id, stamp, signature = path.rsplit("/", 1)[1].split(".")
    later = int(stamp) + 3600
    for forged in (
        f"{link_id}.{stamp}.{signature[:-2]}xx",  # signature changed
        f"{link_id}.{later}.{signature}",  # expiry moved on
        f"plink_{'0' * 16}.{stamp}.{signature}",  # another link
        "garbage",
    ):
        answer = await client.get(f"/portal/request/{forged}")
        assert answer.status_code == 403, forged
        assert "This payment link is not valid" in answer.text
        assert "set-cookie" not in answer.headers
    assert await charges_for(services, "Order 3") == []


async def test_a_billing_link_grant_token_opens_no_pay_page(services, client):
    grant_token = token(
        signing_key(services.settings), "pg_abc", datetime.now(UTC) + timedelta(days=1)
    )
    answer = await client.get(f"/portal/request/{grant_token}")
    assert answer.status_code == 403


async def test_an_expired_token_says_so_and_cannot_pay(services, client, agent):
    request_id, url = await ask(services, agent)
    link_id = url.rsplit("/", 1)[1].split(".")[0]
    past = datetime.now(UTC) - timedelta(minutes=1)
    expired = token(signing_key(services.settings), link_id, past)
    page = await client.get(f"/portal/request/{expired}")
    assert page.status_code == 410 and "has expired" in page.text
    answer = await client.post(f"/portal/request/{expired}", data={"csrf": "x"})
    assert answer.status_code == 410
    assert await charges_for(services, "Order 3") == []
    assert (await row_of(services, request_id)).state == "open"


async def test_a_cross_site_or_tokenless_post_is_refused(services, client, app, agent):
    _, url = await ask(services, agent)
    path = path_of(url)
    refused = await press_pay(client, path, **{"sec-fetch-site": "cross-site"})
    assert refused.status_code == 403
    other_site = await press_pay(client, path, origin="https://evil.example")
    assert other_site.status_code == 403
    # Another site's form carries no session cookie, so no token of this session either.
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as stranger:
        forged = await stranger.post(path, data={"csrf": "guessed"})
    assert forged.status_code == 403
    assert await charges_for(services, "Order 3") == []


async def test_html_in_the_description_is_shown_as_text(services, client, agent):
    _, url = await ask(
        services, agent, '10.00 EUR <script>alert(1)</script><b onclick="x">Order</b>'
    )
    page = await client.get(path_of(url))
    assert "<script>alert(1)</script>" not in page.text and "<b onclick" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


async def test_a_cancelled_request_says_so_and_cannot_be_paid(services, client, agent):
    request_id, url = await ask(services, agent)
    page = await client.get(path_of(url))
    assert (await say(services, agent, f"request cancel {request_id}")).error is None
    answer = await client.post(path_of(url), data={"csrf": csrf_of(page.text)})
    assert answer.status_code == 303
    shown = await client.get(path_of(url))
    assert "This request was cancelled" in shown.text
    assert await charges_for(services, "Order 3") == []
    assert (await row_of(services, request_id)).state == "cancelled"


async def test_a_request_past_its_lifetime_expires_and_its_page_cannot_pay(services, client, agent):
    request_id, url = await ask(services, agent)
    row = await row_of(services, request_id)
    page = await client.get(path_of(url))
    assert await reminders.run(services, now=row.created + timedelta(days=14, minutes=1)) == 1
    await client.post(path_of(url), data={"csrf": csrf_of(page.text)})
    assert "This request has expired" in (await client.get(path_of(url))).text
    assert await charges_for(services, "Order 3") == []
    assert (await row_of(services, request_id)).state == "expired"


@asynccontextmanager
async def forwarding(services: Any, **answer: Any) -> AsyncIterator[ForwardEndpoint]:
    """The ledger (with its pay pages) as the only gateway, sending actions to the business."""
    secret = "forward-secret-123456"
    with forward_endpoint(secret) as endpoint:
        for name, value in answer.items():
            setattr(endpoint, name, value)
        ledger = LedgerGateway(
            services.db, forwarder=Forwarder(url=endpoint.url, secret=secret, timeout=5),
            pay_pages=functools.partial(hosted.page_url, services.settings),
        )  # fmt: skip
        services.gateways = Gateways([ledger], timeout=5)
        try:
            yield endpoint
        finally:
            await ledger.close()


async def test_pressing_pay_sends_the_charge_to_the_business_once(services, client, agent):
    async with forwarding(services) as endpoint:
        request_id, url = await ask(services, agent)
        assert endpoint.received == []  # a link is a record: nothing to collect yet
        page = await client.get(path_of(url))
        for _ in range(2):  # a double click, or the form sent again
            await client.post(path_of(url), data={"csrf": csrf_of(page.text)})
    (sent,) = endpoint.received
    assert sent["type"] == "charge" and sent["idempotency_key"] == f"{request_id}:pay"
    assert sent["amount"]["minor"] == 1000 and sent["payment_request"] == request_id
    (charge,) = await charges_for(services, "Order 3")
    async with services.db.read() as s:
        op = await s.get(LedgerOperation, f"{request_id}:pay")
    assert op is not None and op.result_id == charge.id and op.external_ref == "biz_1"


async def test_the_business_declining_leaves_the_request_open(services, client, agent):
    declined = {"status": "failed", "message": "no mandate"}
    async with forwarding(services, answer=declined, status_code=422):
        request_id, url = await ask(services, agent)
        answer = await press_pay(client, path_of(url))
    assert answer.status_code == 503
    assert await charges_for(services, "Order 3") == []
    assert (await row_of(services, request_id)).state == "open"


async def test_the_page_speaks_the_customers_language(services, client, agent):
    async with services.db.write() as s:
        from bot.store.tables import LedgerCustomer

        jane = await s.get(LedgerCustomer, "cus_jane")
        assert jane is not None
        jane.locale = "ja_JP"
    _, url = await ask(services, agent)
    page = await client.get(path_of(url))
    assert "お支払いのお願い" in page.text and "を支払う" in page.text


async def test_the_pay_page_token_is_in_no_log_line_no_stored_email_and_no_audit_export(
    services, client, agent, caplog
):
    caplog.set_level(logging.DEBUG)
    caplog.handler.addFilter(RedactLinks())  # as on the bot's own log handlers
    _, url = await ask(services, agent)
    await jobs.run_worker(services, burst=True)
    signature = url.rsplit(".", 1)[1]
    await press_pay(client, path_of(url))
    await client.get("/portal/request/" + url.rsplit("/", 1)[1][:-3] + "xyz")  # refused: logged
    assert "pay link refused" in caplog.text and signature not in caplog.text
    await assert_not_at_rest(services, signature)


async def test_a_payment_recorded_but_not_told_closes_the_request_when_the_page_opens(
    services, client, agent
):
    request_id, url = await ask(services, agent)
    row = await row_of(services, request_id)
    link = await services.gateways.get("ledger").pay_own_page_link(row.link_id)  # then a crash
    assert (await row_of(services, request_id)).state == "open"
    page = await client.get(path_of(url))
    assert "This request is paid" in page.text
    closed = await row_of(services, request_id)
    assert closed.state == "paid" and closed.paid_with == link.charge_id
    assert len(await charges_for(services, "Order 3")) == 1
