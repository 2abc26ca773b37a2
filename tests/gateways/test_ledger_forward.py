"""With a forward URL, the business's signed-webhook answer decides each action."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bot.gateways.base import ErrorCode, GatewayError
from bot.gateways.ledger.forward import Forwarder
from bot.gateways.ledger.gateway import LedgerGateway
from bot.money import Money
from bot.store.tables import LedgerRefund
from tests.fakes.forward_server import forward_endpoint

SECRET = "s3cret-s3cret-s3cret"
TEN_EUR = Money(minor=1000, currency="EUR")


@pytest.fixture
def endpoint():
    with forward_endpoint(SECRET) as ep:
        yield ep


@pytest.fixture
async def ledger(services, endpoint):
    gateway = LedgerGateway(
        services.db, forwarder=Forwarder(url=endpoint.url, secret=SECRET, timeout=5)
    )
    yield gateway
    await gateway.close()


async def refunds(services) -> int:
    async with services.db.read() as s:
        return await s.scalar(
            select(func.count())
            .select_from(LedgerRefund)
            .where(LedgerRefund.charge_id == "ch_jane_1")
        )


async def test_refund_is_forwarded_signed_with_the_whole_charge(services, ledger, endpoint):
    refund = await ledger.refund("ch_jane_1", TEN_EUR, reason="goodwill", idempotency_key="apr_1")
    assert refund.amount == TEN_EUR
    assert endpoint.bad_signatures == 0
    sent = endpoint.received[0]
    assert sent["type"] == "refund" and sent["idempotency_key"] == "apr_1"
    assert sent["amount"] == {"minor": 1000, "currency": "EUR", "exponent": 2, "value": "10.00"}
    assert sent["object"]["id"] == "ch_jane_1" and sent["object"]["amount"] == 12000
    assert sent["object"]["exponent"] == 2  # the charge's integers say their digits too


async def test_the_business_declining_means_no_refund(services, ledger, endpoint):
    endpoint.answer = {
        "status": "failed",
        "code": "order_shipped",
        "message": "order already shipped",
    }
    endpoint.status_code = 422
    with pytest.raises(GatewayError) as info:
        await ledger.refund("ch_jane_1", TEN_EUR, reason="goodwill", idempotency_key="apr_2")
    assert info.value.code == ErrorCode.rejected
    assert info.value.raw_code == "order_shipped"
    assert "order already shipped" in info.value.message
    assert await refunds(services) == 0


async def test_a_failing_endpoint_is_unavailable_and_nothing_is_recorded(
    services, ledger, endpoint
):
    endpoint.status_code = 503
    endpoint.answer = {"status": "failed"}
    with pytest.raises(GatewayError) as info:
        await ledger.refund("ch_jane_1", TEN_EUR, reason="goodwill", idempotency_key="apr_3")
    assert info.value.code == ErrorCode.unavailable
    assert await refunds(services) == 0


async def test_a_retry_with_the_same_key_is_one_refund_at_both_ends(services, ledger, endpoint):
    first = await ledger.refund("ch_jane_1", TEN_EUR, reason="goodwill", idempotency_key="apr_4")
    second = await ledger.refund("ch_jane_1", TEN_EUR, reason="goodwill", idempotency_key="apr_4")
    assert first.id == second.id
    assert len(endpoint.done) == 1
    assert await refunds(services) == 1


async def test_a_wrong_secret_is_refused_by_the_business(services, endpoint):
    gateway = LedgerGateway(
        services.db, forwarder=Forwarder(url=endpoint.url, secret="wrong-secret-wrong", timeout=5)
    )
    with pytest.raises(GatewayError):
        await gateway.refund("ch_jane_1", TEN_EUR, reason="goodwill", idempotency_key="apr_5")
    await gateway.close()
    assert endpoint.bad_signatures == 1
    assert await refunds(services) == 0


async def test_a_forwarded_amount_says_its_digits_so_a_partner_cannot_misread_it(
    services, ledger, endpoint
):
    fils = Money(minor=1250, currency="KWD")  # 1.250 KWD, three digits
    await ledger.refund("ch_fatima_1", fils, reason="goodwill", idempotency_key="apr_kwd")
    sent = endpoint.received[0]
    assert sent["amount"] == {"minor": 1250, "currency": "KWD", "exponent": 3, "value": "1.250"}
    assert sent["object"]["currency"] == "KWD" and sent["object"]["exponent"] == 3
