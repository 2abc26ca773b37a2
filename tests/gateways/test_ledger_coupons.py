"""Ledger coupons come in with the import (JSON in minor units, CSV in major units), checked
row by row like every other kind; a coupon's percentage is kept exact (basis points)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from bot.gateways.base import GatewayError, LookupQuery
from bot.gateways.ledger.forward import Forwarder
from bot.gateways.ledger.gateway import LedgerGateway
from bot.gateways.ledger.importer import LedgerImportError, import_data, import_file
from bot.money import Money
from bot.store.db import Database
from tests.fakes.forward_server import forward_endpoint
from tests.gateways.test_ledger_import import ledger_db  # noqa: F401  (the fixture)


async def test_coupons_import_from_json_and_csv_and_read_back_exactly(
    ledger_db: Database,  # noqa: F811
    tmp_path: Path,
) -> None:
    summary = await import_data(ledger_db, {"coupons": [
        {"id": "HALFPAST", "percent_off": "12.5", "duration": "repeating", "duration_in_months": 6},
    ]})  # fmt: skip
    assert str(summary) == "imported 1 coupon"
    csv = tmp_path / "coupons.csv"
    csv.write_text("id,name,currency,amount_off,duration\nFIVER,Five off,EUR,5.00,once\n")
    await import_file(ledger_db, csv)
    gateway = LedgerGateway(ledger_db)
    half = await gateway.coupon("HALFPAST")
    assert half.percent_off == Decimal("12.5")
    assert half.describe() == "HALFPAST: 12.5% off for 6 months"
    fiver = await gateway.coupon("FIVER")
    assert fiver.amount_off == Money(minor=500, currency="EUR")
    assert fiver.describe() == "FIVER (Five off): €5.00 off once"


async def test_a_coupon_row_that_says_too_little_or_too_much_is_refused(
    ledger_db: Database,  # noqa: F811
) -> None:
    with pytest.raises(LedgerImportError) as refused:
        await import_data(ledger_db, {"coupons": [
            {"id": "NONE"},
            {"id": "BOTH", "percent_off": 10, "currency": "EUR", "amount_off": 100},
            {"id": "NOCUR", "amount_off": 100},
            {"id": "LOTS", "percent_off": 150},
            {"id": "WHEN", "percent_off": 10, "duration": "repeating"},
        ]})  # fmt: skip
    problems = "\n".join(refused.value.problems)
    assert "coupons row 1: percent_off: give either percent_off or amount_off" in problems
    assert "coupons row 2: percent_off: give either percent_off or amount_off" in problems
    assert "coupons row 3: currency: is needed beside amount_off" in problems
    assert "coupons row 4: percent_off" in problems
    assert "coupons row 5: duration_in_months" in problems
    assert len(refused.value.problems) == 5


async def test_applying_and_removing_are_forwarded_and_the_business_decides(services) -> None:
    secret = "s3cret-s3cret-s3cret"
    with forward_endpoint(secret) as endpoint:
        ledger = LedgerGateway(
            services.db, forwarder=Forwarder(url=endpoint.url, secret=secret, timeout=5)
        )
        try:
            endpoint.status_code, endpoint.answer = 422, {"status": "failed", "message": "no"}
            with pytest.raises(GatewayError):
                await ledger.apply_coupon("sub_jane_pro", "WELCOME10", idempotency_key="apr_c0")
            assert (await ledger.lookup(LookupQuery.parse("cus_jane")))[0].discounts == ()
            endpoint.status_code, endpoint.answer = 200, {"status": "succeeded"}
            await ledger.apply_coupon("sub_jane_pro", "WELCOME10", idempotency_key="apr_c1")
            await ledger.remove_discount("sub_jane_pro", idempotency_key="apr_c2")
            await ledger.remove_discount("sub_jane_pro", idempotency_key="apr_c2")  # a retry
        finally:
            await ledger.close()
    sent = [(r["type"], r.get("coupon"), r["object"]["id"]) for r in endpoint.received]
    assert sent == [
        ("coupon", "WELCOME10", "sub_jane_pro"),
        ("coupon", "WELCOME10", "sub_jane_pro"),
        ("remove_discount", None, "sub_jane_pro"),
    ]
