"""The ledger's tax IDs: checked by the customer's country, one per customer, once per key."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bot.gateways.base import Capability, ErrorCode, GatewayError, LookupQuery
from bot.gateways.ledger.forward import Forwarder
from bot.gateways.ledger.gateway import LedgerGateway
from bot.models import TaxId
from bot.store.tables import LedgerCustomer, LedgerOperation
from bot.tax_ids import InvalidTaxId
from tests.fakes.forward_server import forward_endpoint

SECRET = "s3cret-s3cret-s3cret"


@pytest.fixture
async def ledger(services):
    gateway = LedgerGateway(services.db)
    yield gateway
    await gateway.close()


async def stored(services, customer_id: str) -> tuple[str | None, str | None]:
    async with services.db.read() as s:
        row = await s.get(LedgerCustomer, customer_id)
        assert row is not None
        return row.tax_id_type, row.tax_id_value


async def operations(services, action: str = "tax_id") -> int:
    async with services.db.read() as s:
        return await s.scalar(
            select(func.count())
            .select_from(LedgerOperation)
            .where(LedgerOperation.action == action)
        )


async def test_a_valid_number_is_saved_normalized_and_shows_in_the_profile(services, ledger):
    assert Capability.tax_id in ledger.capabilities
    # Jane lives in Ireland: her number may come without its IE prefix.
    added = await ledger.add_tax_id("cus_jane", "6388047 v", idempotency_key="tx-1")
    assert added == TaxId(
        gateway="ledger", id="cus_jane:tax_id", type="eu_vat", value="IE6388047V", country="IE"
    )
    assert await stored(services, "cus_jane") == ("eu_vat", "IE6388047V")
    [profile] = await ledger.lookup(LookupQuery.parse("jane.doe@example.com"))
    assert profile.tax_ids == (added,)
    async with services.db.read() as s:
        op = await s.get(LedgerOperation, "tx-1")
    assert (op.action, op.target_id) == ("tax_id", "cus_jane")


async def test_a_new_number_replaces_the_old_one(services, ledger):
    assert await stored(services, "cus_kowalski") == ("eu_vat", "PL5260250274")
    changed = await ledger.add_tax_id("cus_kowalski", "PL 521-301-72-28", idempotency_key="tx-2")
    assert (changed.value, changed.country) == ("PL5213017228", "PL")
    [profile] = await ledger.lookup(LookupQuery.parse("cus_kowalski"))
    assert [t.value for t in profile.tax_ids] == ["PL5213017228"]


@pytest.mark.parametrize(
    ("customer_id", "text", "message"),
    [
        (
            "cus_jane",
            "IE6388047X",
            "IE6388047X is not a valid EU VAT number for IE: check its digits",
        ),
        (
            "cus_jane",
            "6388047X",
            "6388047X is not a valid EU VAT number for IE: check its digits",
        ),
        (
            "cus_kowalski",
            "DE123456789",
            "DE123456789 is not a valid EU VAT number for DE: check its digits",
        ),
        (
            "cus_john",
            "12-3456789",
            "123456789 is not a tax ID that can be checked for US: write it with its country "
            "prefix (DE, FR, GB, ...) or as type:value (au_abn:51824753556)",
        ),
        (
            "cus_john",
            "us_ein:12-3456789",
            "cannot check 12-3456789 as us_ein: tax IDs are checked for the EU, the UK, "
            "Australia, New Zealand and Singapore only",
        ),
    ],
)
async def test_an_invalid_number_is_refused_and_nothing_changes(
    services, ledger, customer_id: str, text: str, message: str
):
    before = await stored(services, customer_id)
    with pytest.raises(InvalidTaxId) as info:
        await ledger.add_tax_id(customer_id, text, idempotency_key="tx-bad")
    assert info.value.code == ErrorCode.invalid_tax_id
    assert info.value.message == message
    assert await stored(services, customer_id) == before
    assert await operations(services) == 0


async def test_the_same_key_or_the_same_number_again_changes_nothing(services, ledger):
    first = await ledger.add_tax_id("cus_jane", "IE6388047V", idempotency_key="tx-3")
    retry = await ledger.add_tax_id("cus_jane", "IE6388047V", idempotency_key="tx-3")
    same_number = await ledger.add_tax_id(
        "cus_jane", "eu_vat:IE 6388047V", idempotency_key="tx-4", replace=True
    )
    assert first == retry == same_number
    assert await operations(services) == 1
    # A key that already did its work does it once: a different number under it is not applied.
    replayed = await ledger.add_tax_id("cus_jane", "IE3628739L", idempotency_key="tx-3")
    assert replayed == first
    assert await stored(services, "cus_jane") == ("eu_vat", "IE6388047V")


async def test_a_long_key_is_kept_by_its_hash_and_still_counts_once(services, ledger):
    key = "portal-tax:" + "s" * 64 + ":ledger:" + "cus_jane" + "x" * 60
    first = await ledger.add_tax_id("cus_jane", "IE6388047V", idempotency_key=key)
    replayed = await ledger.add_tax_id("cus_jane", "IE3628739L", idempotency_key=key)
    assert replayed == first
    async with services.db.read() as s:
        [stored_key] = await s.scalars(select(LedgerOperation.idempotency_key))
    assert stored_key.startswith("sha256:") and len(stored_key) <= 128


async def test_unknown_customers_and_reused_keys_are_clear_errors(services, ledger):
    with pytest.raises(GatewayError) as missing:
        await ledger.add_tax_id("cus_nobody", "IE6388047V", idempotency_key="tx-5")
    assert (missing.value.code, missing.value.message) == (
        ErrorCode.not_found,
        "no customer cus_nobody in the ledger",
    )
    await ledger.void("ch_jane_auth", idempotency_key="tx-6")
    with pytest.raises(GatewayError) as reused:
        await ledger.add_tax_id("cus_jane", "IE6388047V", idempotency_key="tx-6")
    assert reused.value.code == ErrorCode.rejected
    assert await stored(services, "cus_jane") == (None, None)


async def test_a_tax_id_change_is_forwarded_and_the_business_can_decline_it(services):
    with forward_endpoint(SECRET) as endpoint:
        gateway = LedgerGateway(
            services.db, forwarder=Forwarder(url=endpoint.url, secret=SECRET, timeout=5)
        )
        try:
            await gateway.add_tax_id("cus_jane", "IE6388047V", idempotency_key="tx-7")
            [sent] = endpoint.received
            assert (sent["type"], sent["target_id"], sent["idempotency_key"]) == (
                "tax_id",
                "cus_jane",
                "tx-7",
            )
            assert sent["tax_id"] == {"type": "eu_vat", "value": "IE6388047V", "country": "IE"}
            assert sent["object"]["email"] == "jane.doe@example.com"
            endpoint.answer = {"status": "failed", "code": "locked", "message": "VAT ID locked"}
            endpoint.status_code = 422
            with pytest.raises(GatewayError) as info:
                await gateway.add_tax_id("cus_jane", "IE3628739L", idempotency_key="tx-8")
            assert info.value.code == ErrorCode.rejected and "VAT ID locked" in info.value.message
            assert await stored(services, "cus_jane") == ("eu_vat", "IE6388047V")
        finally:
            await gateway.close()
