"""Importing customers, charges and the rest into the ledger gateway's tables."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.gateways.base import LookupQuery
from bot.gateways.ledger.gateway import LedgerGateway
from bot.gateways.ledger.importer import (
    ImportSummary,
    LedgerImportError,
    import_data,
    import_file,
)
from bot.models import ChargeStatus, DisputeStatus, InvoiceStatus, SubscriptionStatus
from bot.money import Money
from bot.store.db import Database
from bot.store.tables import (
    LedgerCharge,
    LedgerCustomer,
    LedgerDispute,
    LedgerInvoice,
    LedgerRefund,
    LedgerSubscription,
)

TABLES = (
    LedgerCustomer,
    LedgerCharge,
    LedgerRefund,
    LedgerSubscription,
    LedgerInvoice,
    LedgerDispute,
)


@pytest.fixture
async def ledger_db(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 't.db'}")
    await db.migrate()
    yield db
    await db.close()


async def counts(db: Database) -> dict[str, int]:
    async with db.read() as s:
        return {
            t.__tablename__: await s.scalar(select(func.count()).select_from(t)) or 0
            for t in TABLES
        }


def jane_data() -> dict[str, Any]:
    return {
        "customers": [
            {
                "id": "cus_jane",
                "email": "Jane.Doe@Example.COM",
                "name": "Jane Doe",
                "created": "2025-01-15T09:30:00Z",
            }
        ],
        "charges": [
            {
                "id": "ch_1",
                "customer": "cus_jane",
                "amount": 4200,
                "currency": "eur",
                "status": "succeeded",
                "amount_refunded": 0,
                "created": "2026-10-01T10:00:00Z",
                "description": "Pro plan",
                "invoice": "in_1",
            },
            {
                "id": "ch_2",
                "customer": "cus_jane",
                "amount": 4900,
                "currency": "EUR",
                "status": "partially_refunded",
                "amount_refunded": 1500,
                # No zone: read as UTC.
                "created": "2026-09-01T12:00:00",
            },
            {
                "id": "ch_auth",
                "customer": "cus_jane",
                "amount": 25000,
                "currency": "EUR",
                "status": "authorized",
                "created": "2026-10-02T08:00:00+02:00",
            },
            {
                "id": "ch_failed",
                "customer": "cus_jane",
                "amount": 4900,
                "currency": "EUR",
                "status": "failed",
                "failure_message": "Your card was declined.",
                "created": "2026-10-03T08:00:00Z",
            },
        ],
        "refunds": [
            {"id": "re_1", "charge": "ch_2", "amount": 1000, "currency": "EUR"},
            {
                "id": "re_2",
                "charge": "ch_2",
                "amount": 500,
                "currency": "EUR",
                "reason": "goodwill",
            },
        ],
        "subscriptions": [
            {
                "id": "sub_1",
                "customer": "cus_jane",
                "plan": "Pro",
                "status": "active",
                "amount": 4900,
                "currency": "EUR",
                "current_period_end": "2026-11-01T00:00:00Z",
            }
        ],
        "invoices": [
            {
                "id": "in_1",
                "customer": "cus_jane",
                "number": "2026-0001",
                "status": "paid",
                "amount_due": 4200,
                "currency": "EUR",
                "created": "2026-10-01T10:00:00Z",
                "charge": "ch_1",
            }
        ],
        "disputes": [
            {
                "id": "dp_1",
                "charge": "ch_1",
                "amount": 4200,
                "currency": "EUR",
                "reason": "fraudulent",
                "status": "needs_response",
                "evidence_due_by": "2026-10-20T00:00:00Z",
            }
        ],
    }


def write_csv(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --- JSON -------------------------------------------------------------------------------


async def test_json_import_round_trips_through_lookup(ledger_db: Database, tmp_path: Path) -> None:
    path = tmp_path / "export.json"
    path.write_text(json.dumps(jane_data()), encoding="utf-8")

    summary = await import_file(ledger_db, path)

    assert summary == ImportSummary(
        customers=1, charges=4, refunds=2, subscriptions=1, invoices=1, disputes=1
    )
    assert str(summary) == (
        "imported 1 customer, 4 charges, 2 refunds, 1 subscription, 1 invoice, 1 dispute"
    )
    [profile] = await LedgerGateway(ledger_db).lookup(LookupQuery.parse("jane.doe@example.com"))
    assert profile.customer.id == "cus_jane"
    assert profile.customer.email == "jane.doe@example.com"  # stored lower-cased
    assert profile.customer.created == datetime(2025, 1, 15, 9, 30, tzinfo=UTC)

    charges = {c.id: c for c in profile.charges}
    ch_1 = charges["ch_1"]
    assert ch_1.amount == Money.of(4200, "EUR")
    assert ch_1.status == ChargeStatus.succeeded
    assert ch_1.amount_captured == 4200  # defaults to the amount once captured
    assert ch_1.invoice_id == "in_1"
    assert ch_1.refundable == Money.of(4200, "EUR")
    assert charges["ch_2"].refunded == Money.of(1500, "EUR")
    assert charges["ch_2"].created == datetime(2026, 9, 1, 12, tzinfo=UTC)
    assert charges["ch_auth"].amount_captured == 0  # nothing captured yet
    assert charges["ch_auth"].created == datetime(2026, 10, 2, 6, tzinfo=UTC)
    assert charges["ch_failed"].failure_message == "Your card was declined."

    assert {r.id: r.amount.minor for r in profile.refunds} == {"re_1": 1000, "re_2": 500}
    [sub] = profile.subscriptions
    assert (sub.status, sub.amount, sub.interval) == (
        SubscriptionStatus.active,
        Money.of(4900, "EUR"),
        "month",
    )
    [invoice] = profile.invoices
    assert invoice.status == InvoiceStatus.paid
    assert invoice.amount_paid == Money.of(4200, "EUR")  # paid means paid in full
    [dispute] = profile.disputes
    assert dispute.status == DisputeStatus.needs_response
    assert dispute.evidence_due_by == datetime(2026, 10, 20, tzinfo=UTC)


async def test_import_data_takes_a_dict(ledger_db: Database) -> None:
    summary = await import_data(ledger_db, {"customers": jane_data()["customers"]})
    assert str(summary) == "imported 1 customer"
    assert str(await import_data(ledger_db, {})) == "imported nothing"


async def test_reimport_updates_instead_of_duplicating(ledger_db: Database, tmp_path: Path) -> None:
    path = tmp_path / "export.json"
    path.write_text(json.dumps(jane_data()), encoding="utf-8")
    first = await import_file(ledger_db, path)
    before = await counts(ledger_db)

    second = await import_file(ledger_db, path)

    assert second == first
    assert await counts(ledger_db) == before
    data = jane_data()
    data["customers"][0]["name"] = "Jane Q. Doe"
    del data["customers"][0]["created"]
    await import_data(ledger_db, data)
    assert await counts(ledger_db) == before
    [profile] = await LedgerGateway(ledger_db).lookup(LookupQuery.parse("cus_jane"))
    assert profile.customer.name == "Jane Q. Doe"
    # No `created` in the update keeps the one on record.
    assert profile.customer.created == datetime(2025, 1, 15, 9, 30, tzinfo=UTC)


async def test_unknown_customer_is_refused_and_nothing_written(ledger_db: Database) -> None:
    data = jane_data()
    data["charges"][0]["customer"] = "cus_ghost"

    with pytest.raises(LedgerImportError) as caught:
        await import_data(ledger_db, data, source="export.json")

    assert (
        "export.json:charges row 1: customer: no customer cus_ghost in this import or in the ledger"
        in str(caught.value)
    )
    assert set((await counts(ledger_db)).values()) == {0}


async def test_references_may_point_at_rows_already_in_the_ledger(ledger_db: Database) -> None:
    await import_data(ledger_db, {"customers": jane_data()["customers"]})
    data = jane_data()
    del data["customers"]
    summary = await import_data(ledger_db, data)
    assert summary.charges == 4


async def test_unknown_charge_reference_is_refused(ledger_db: Database) -> None:
    data = jane_data()
    data["disputes"][0]["charge"] = "ch_nope"
    with pytest.raises(LedgerImportError, match="disputes row 1: charge: no charge ch_nope"):
        await import_data(ledger_db, data)


async def test_amount_refunded_must_match_the_refunds_given(ledger_db: Database) -> None:
    data = jane_data()
    data["refunds"][1]["amount"] = 700

    with pytest.raises(LedgerImportError) as caught:
        await import_data(ledger_db, data)

    assert (
        "data:charges row 2: amount_refunded: is 15.00 EUR but the charge's refunds "
        "(re_1, re_2) add up to 17.00 EUR" in str(caught.value)
    )
    assert set((await counts(ledger_db)).values()) == {0}


async def test_without_refunds_amount_refunded_is_taken_as_stated(ledger_db: Database) -> None:
    data = jane_data()
    del data["refunds"]
    await import_data(ledger_db, data)
    charge = await LedgerGateway(ledger_db).get_charge("ch_2")
    assert charge.refunded == Money.of(1500, "EUR")


async def test_refunds_are_checked_against_a_charge_already_in_the_ledger(
    ledger_db: Database,
) -> None:
    data = jane_data()
    refunds = data.pop("refunds")
    await import_data(ledger_db, data)

    with pytest.raises(
        LedgerImportError, match=r"refunds row 1: amount: charge ch_2 has refunded 15\.00 EUR"
    ):
        await import_data(ledger_db, {"refunds": refunds[:1]})
    assert (await counts(ledger_db))["ledger_refunds"] == 0

    assert (await import_data(ledger_db, {"refunds": refunds})).refunds == 2


async def test_row_problems_are_all_reported(ledger_db: Database) -> None:
    data = jane_data()
    charge = data["charges"][0]
    charge.update(currency="XYZ", status="paid", colour="blue")
    data["charges"][1]["amount"] = 49.5  # a float is never an exact amount
    data["charges"][2]["amount_captured"] = 100  # authorized: nothing captured yet
    data["customers"][0]["email"] = "not-an-email"
    data["customers"].append({"id": "cus_jane", "email": "twin@example.com"})

    with pytest.raises(LedgerImportError) as caught:
        await import_data(ledger_db, data)

    message = str(caught.value)
    assert message.startswith("import refused, nothing was written (")
    for expected in (
        "data:charges row 1: currency: unknown currency 'XYZ'",
        "data:charges row 1: status: Input should be 'succeeded'",
        "data:charges row 1: colour: unknown field: expected id, customer, currency,",
        "data:charges row 2: amount: 49.5 is not an amount",
        "data:charges row 3: amount_captured: an authorized charge has captured nothing",
        "data:customers row 1: email: 'not-an-email' is not an email address",
        "data:customers row 2: id: duplicate id cus_jane (also at data:customers row 1)",
    ):
        assert expected in message
    # Rows pointing at an invalid row are not reported again as dangling.
    assert "no customer cus_jane" not in message
    assert set((await counts(ledger_db)).values()) == {0}


async def test_at_most_twenty_problems_are_listed(ledger_db: Database) -> None:
    rows = [{"id": f"cus_{n}", "email": "nope"} for n in range(25)]
    with pytest.raises(LedgerImportError) as caught:
        await import_data(ledger_db, {"customers": rows})
    assert len(caught.value.problems) == 25
    lines = str(caught.value).splitlines()
    assert lines[0] == "import refused, nothing was written (25 problems):"
    assert len(lines) == 1 + 20 + 1
    assert lines[-1].strip() == "... and 5 more"


async def test_a_json_list_holds_one_kind(ledger_db: Database, tmp_path: Path) -> None:
    path = tmp_path / "customers.json"
    path.write_text(json.dumps(jane_data()["customers"]), encoding="utf-8")
    assert str(await import_file(ledger_db, path)) == "imported 1 customer"


async def test_unknown_section_is_refused(ledger_db: Database) -> None:
    with pytest.raises(LedgerImportError, match="unknown key 'payouts'"):
        await import_data(ledger_db, {"payouts": []})


# --- CSV --------------------------------------------------------------------------------


async def test_csv_amounts_are_decimal_major_units(ledger_db: Database, tmp_path: Path) -> None:
    customers = write_csv(
        tmp_path / "customers.csv",
        "id,email,name,created",
        "cus_jane,JANE.DOE@example.com,Jane Doe,2025-01-15T09:30:00Z",
        "cus_yuki,yuki.tanaka@example.com,Yuki Tanaka,",
        "cus_fatima,fatima@example.com,Fatima,2025-03-01",
    )
    charges = write_csv(
        tmp_path / "october.csv",
        "id,customer,amount,currency,status,amount_refunded,created,description",
        "ch_1,cus_jane,42.00,EUR,succeeded,,2026-10-01T10:00:00Z,Pro plan",
        'ch_2,cus_jane,"1,049.50",EUR,partially_refunded,49.50,2026-10-02T10:00:00Z,"Seats, 20"',
        "ch_3,cus_yuki,500,JPY,succeeded,0,2026-10-03T10:00:00Z,",
        "ch_4,cus_fatima,1.250,KWD,succeeded,,2026-10-04T10:00:00Z,",
    )

    assert str(await import_file(ledger_db, customers)) == "imported 3 customers"
    assert str(await import_file(ledger_db, charges, kind="charges")) == "imported 4 charges"

    gateway = LedgerGateway(ledger_db)
    [jane] = await gateway.lookup(LookupQuery.parse("jane.doe@example.com"))
    assert jane.customer.email == "jane.doe@example.com"
    charges_by_id = {c.id: c for c in jane.charges}
    assert charges_by_id["ch_1"].amount == Money.of(4200, "EUR")
    assert charges_by_id["ch_2"].amount == Money.of(104950, "EUR")
    assert charges_by_id["ch_2"].refunded == Money.of(4950, "EUR")
    assert charges_by_id["ch_2"].description == "Seats, 20"
    assert (await gateway.get_charge("ch_3")).amount == Money.of(500, "JPY")
    assert (await gateway.get_charge("ch_4")).amount == Money.of(1250, "KWD")
    [fatima] = await gateway.lookup(LookupQuery.parse("cus_fatima"))
    assert fatima.customer.created == datetime(2025, 3, 1, tzinfo=UTC)
    [yuki] = await gateway.lookup(LookupQuery.parse("cus_yuki"))
    assert yuki.customer.created is not None  # no date given: the import's time


async def test_csv_jpy_with_decimals_is_refused_with_its_row(
    ledger_db: Database, tmp_path: Path
) -> None:
    await import_data(ledger_db, {"customers": [{"id": "cus_yuki"}]})
    charges = write_csv(
        tmp_path / "charges.csv",
        "id,customer,amount,currency,status,created",
        "ch_ok,cus_yuki,500,JPY,succeeded,2026-10-01T10:00:00Z",
        "ch_bad,cus_yuki,500.5,JPY,succeeded,2026-10-01T10:00:00Z",
    )

    with pytest.raises(LedgerImportError) as caught:
        await import_file(ledger_db, charges)

    assert "charges.csv:row 3: amount: JPY has no minor unit: '500.5' cannot have decimals" in str(
        caught.value
    )
    assert (await counts(ledger_db))["ledger_charges"] == 0  # not even the valid row


async def test_csv_reimport_is_idempotent(ledger_db: Database, tmp_path: Path) -> None:
    customers = write_csv(
        tmp_path / "customers.csv",
        "id,email,name",
        "cus_1,a@example.com,A",
        "cus_2,b@example.com,B,,",
    )
    subscriptions = write_csv(
        tmp_path / "subscriptions.csv",
        "id,customer,plan,status,amount,currency,cancel_at_period_end",
        "sub_1,cus_1,Pro,active,49.00,EUR,true",
        "sub_2,cus_2,Basic,past_due,5500,JPY,",
    )
    for _ in range(2):
        await import_file(ledger_db, customers)
        assert str(await import_file(ledger_db, subscriptions)) == "imported 2 subscriptions"

    assert (await counts(ledger_db))["ledger_customers"] == 2
    assert (await counts(ledger_db))["ledger_subscriptions"] == 2
    sub = await LedgerGateway(ledger_db).get_subscription("sub_1")
    assert sub.cancel_at_period_end
    assert sub.amount == Money.of(4900, "EUR")


async def test_csv_problems_name_file_row_and_field(ledger_db: Database, tmp_path: Path) -> None:
    invoices = write_csv(
        tmp_path / "invoices.csv",
        "id,customer,status,amount_due,amount_paid,currency,due_date",
        "in_1,cus_ghost,open,10.00,,EUR,2026-11-01",
        "in_2,cus_ghost,overdue,10.00,,EUR,2026-11-01",
        "in_3,cus_ghost,open,10.00,12.00,EUR,2026-11-01,extra",
        "in_4,cus_ghost,open,10.00,12.00,EUR,2026-11-01",
    )
    with pytest.raises(LedgerImportError) as caught:
        await import_file(ledger_db, invoices)
    message = str(caught.value)
    assert "invoices.csv:row 2: customer: no customer cus_ghost" in message
    assert "invoices.csv:row 3: status: Input should be 'draft', 'open'" in message
    assert "invoices.csv:row 4: 8 cells but the header has 7 columns" in message
    assert "invoices.csv:row 5: amount_paid: 12.00 EUR is more than the 10.00 EUR due" in message


async def test_csv_kind_must_be_known(ledger_db: Database, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "export.csv", "id", "cus_1")
    with pytest.raises(LedgerImportError, match=r"export\.csv: cannot tell what it holds"):
        await import_file(ledger_db, path)
    assert (await import_file(ledger_db, path, kind="customers")).customers == 1


async def test_billing_details_and_tax_id_are_imported_as_the_gateway_reads_them(
    ledger_db: Database,
) -> None:
    customer = {
        "id": "cus_de", "email": "max@example.de", "name": "Max GmbH", "country": "de",
        "address_line1": "Hauptstraße 5", "postal_code": "80331", "city": "München",
        "locale": "de_DE", "tax_id": "136 695 976",
    }  # fmt: skip
    await import_data(ledger_db, {"customers": [customer]})
    (profile,) = await LedgerGateway(ledger_db).lookup(LookupQuery.parse("max@example.de"))
    assert profile.customer.country == "DE" and profile.customer.locale == "de_DE"
    assert profile.customer.address is not None and profile.customer.address.city == "München"
    (tax_id,) = profile.tax_ids
    assert (tax_id.type, tax_id.value) == ("eu_vat", "DE136695976")  # prefixed by its country


async def test_a_tax_id_with_a_wrong_check_digit_is_named_and_nothing_written(
    ledger_db: Database,
) -> None:
    customer = {"id": "cus_pl", "email": "a@example.pl", "country": "PL", "tax_id": "PL5260250275"}
    with pytest.raises(LedgerImportError) as refused:
        await import_data(ledger_db, {"customers": [customer]})
    assert "tax_id" in str(refused.value) and "PL5260250275" in str(refused.value)
    assert (await counts(ledger_db))["ledger_customers"] == 0


async def test_invoice_lines_must_add_up_to_the_amount_due(ledger_db: Database) -> None:
    data = jane_data()
    data["invoices"][0]["lines"] = [{"description": "Pro", "quantity": 1, "amount": 1}]
    with pytest.raises(LedgerImportError) as refused:
        await import_data(ledger_db, data)
    assert "lines" in str(refused.value) and "add up to" in str(refused.value)
