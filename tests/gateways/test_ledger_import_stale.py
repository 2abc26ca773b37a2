"""An import is a snapshot of the business's system, possibly older than what the bot did.

Re-importing it must never make the bot forget money it moved: what was refunded or
captured never goes down, states never go back, and the bot's own records stay. The
import is then refused, naming the row, and a refund after it is checked against what
really happened. Also here: inputs the readers cannot take (a huge CSV cell, deep JSON,
repeated JSON keys) give one line each, and errors quote at most a little of the input.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.demo.dataset import demo_data
from bot.gateways.base import GatewayError, LookupQuery
from bot.gateways.ledger.forward import Forwarder
from bot.gateways.ledger.gateway import LedgerGateway
from bot.gateways.ledger.importer import LedgerImportError, import_data, import_file
from bot.money import Money
from bot.services import Services
from bot.store.tables import LedgerCharge, LedgerRefund, LedgerSubscription
from tests.conftest import REPO, say
from tests.fakes.forward_server import forward_endpoint

EUR = "EUR"


def demo_row(kind: str, row_id: str, **changes: Any) -> dict[str, Any]:
    """The demo export's row as the business's system still has it, with `changes`."""
    [row] = [r for r in demo_data()[kind] if r["id"] == row_id]
    return {**row, **changes}


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def write_charges_csv(path: Path, *rows: dict[str, Any]) -> Path:
    """Charges as a spreadsheet exports them: decimal amounts, every column."""
    columns = ["id", "customer", "currency", "amount", "status", "amount_refunded"]
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(columns)
        for row in rows:
            amounts = {k: f"{row[k] / 100:.2f}" for k in ("amount", "amount_refunded")}
            out.writerow([{**row, **amounts}[c] for c in columns])
    return path


async def charge_row(services: Services, charge_id: str) -> LedgerCharge:
    async with services.db.read() as s:
        row = await s.get(LedgerCharge, charge_id)
        assert row is not None
        return row


async def refunds_of(services: Services, charge_id: str) -> dict[str, int]:
    async with services.db.read() as s:
        query = select(LedgerRefund).where(LedgerRefund.charge_id == charge_id)
        return {r.id: r.amount for r in await s.scalars(query)}


async def assert_refunds_add_up(services: Services, charge_id: str, refunded: int) -> None:
    charge = await charge_row(services, charge_id)
    assert charge.amount_refunded == refunded
    assert sum((await refunds_of(services, charge_id)).values()) == refunded


async def refund_80_of_jane_1(services: Services, manager: Any) -> str:
    reply = await say(services, manager, "refund ch_jane_1 80 reason: duplicate charged twice")
    assert reply.error is None and reply.approval is not None
    assert reply.approval.state == "succeeded"
    [refund_id] = await refunds_of(services, "ch_jane_1")
    return refund_id


# --- the audit's case: refunds ------------------------------------------------------------


@pytest.mark.storage
async def test_a_stale_json_import_cannot_undo_a_refund_and_the_full_refund_is_then_refused(
    services: Services, manager: Any, tmp_path: Path
) -> None:
    refund_id = await refund_80_of_jane_1(services, manager)
    stale = write_json(tmp_path / "export.json", {"charges": [demo_row("charges", "ch_jane_1")]})

    with pytest.raises(LedgerImportError) as refused:
        await import_file(services.db, stale)

    assert refused.value.problems == [
        "export.json:charges row 1: amount_refunded: is 0.00 EUR but charge ch_jane_1 has "
        f"refunded 80.00 EUR ({refund_id} by the bot) in the ledger: an import never lowers "
        "what was refunded; leave the row out, or write amount_refunded 80.00 EUR once your "
        "system has these refunds"
    ]
    await assert_refunds_add_up(services, "ch_jane_1", 8000)
    again = await say(services, manager, "refund ch_jane_1 120 reason: duplicate charged twice")
    assert again.error is not None and again.error.code == "amount_too_large"
    assert "only €40.00 of charge ch_jane_1 remains refundable" in again.error.message
    await assert_refunds_add_up(services, "ch_jane_1", 8000)


@pytest.mark.storage
async def test_a_stale_csv_import_cannot_undo_a_refund_and_the_full_refund_is_then_refused(
    services: Services, manager: Any, tmp_path: Path
) -> None:
    await refund_80_of_jane_1(services, manager)
    stale = write_charges_csv(tmp_path / "charges.csv", demo_row("charges", "ch_jane_1"))

    with pytest.raises(LedgerImportError) as refused:
        await import_file(services.db, stale)

    [problem] = refused.value.problems
    assert problem.startswith(
        "charges.csv:row 2: amount_refunded: is 0.00 EUR but charge ch_jane_1 has refunded 80.00 EUR"
    )
    again = await say(services, manager, "refund ch_jane_1 120 reason: duplicate charged twice")
    assert again.error is not None and again.error.code == "amount_too_large"
    await assert_refunds_add_up(services, "ch_jane_1", 8000)


@pytest.mark.storage
@pytest.mark.parametrize(
    ("stale", "refunds", "problem"),
    [
        # Fully refunded, says the export, by its own refund: it never heard of the bot's.
        (
            {"status": "refunded", "amount_refunded": 12000},
            [{"id": "re_theirs", "charge": "ch_jane_1", "amount": 12000, "currency": EUR}],
            "amount_refunded: is 120.00 EUR but the charge's refunds (",
        ),
        # Less than the bot refunded, but not nothing.
        (
            {"status": "partially_refunded", "amount_refunded": 2000},
            [],
            "amount_refunded: is 20.00 EUR but charge ch_jane_1 has refunded 80.00 EUR (",
        ),
        # The bot's refund listed under an id of the export's, beside the bot's own.
        (
            {"status": "partially_refunded", "amount_refunded": 8000},
            [{"id": "re_theirs", "charge": "ch_jane_1", "amount": 8000, "currency": EUR}],
            "amount_refunded: is 80.00 EUR but the charge's refunds (",
        ),
    ],
    ids=["own-full-refund", "lowered-not-zeroed", "same-refund-other-id"],
)
async def test_variants_of_a_stale_charge_row_are_refused_and_refunds_still_add_up(
    services: Services,
    manager: Any,
    stale: dict[str, Any],
    refunds: list[dict[str, Any]],
    problem: str,
) -> None:
    await refund_80_of_jane_1(services, manager)
    data = {"charges": [demo_row("charges", "ch_jane_1", **stale)], "refunds": refunds}

    with pytest.raises(LedgerImportError) as refused:
        await import_data(services.db, data)

    [line] = refused.value.problems
    assert line.startswith(f"data:charges row 1: {problem}"), line
    assert " by the bot" in line  # the refund the export never heard of is named
    await assert_refunds_add_up(services, "ch_jane_1", 8000)
    again = await say(services, manager, "refund ch_jane_1 41 reason: duplicate charged twice")
    assert again.error is not None and again.error.code == "amount_too_large"


@pytest.mark.storage
async def test_an_import_that_knows_the_bots_refund_merges_it_and_adds_what_is_new(
    services: Services, manager: Any
) -> None:
    refund_id = await refund_80_of_jane_1(services, manager)
    # The business's system has the bot's 80.00 and a 10.00 of its own since.
    newer = demo_row("charges", "ch_jane_1", status="partially_refunded", amount_refunded=9000)
    mine = {"id": "re_desk_1", "charge": "ch_jane_1", "amount": 1000, "currency": EUR}
    data = {"charges": [newer], "refunds": [mine]}

    await import_data(services.db, data)

    assert await refunds_of(services, "ch_jane_1") == {refund_id: 8000, "re_desk_1": 1000}
    await assert_refunds_add_up(services, "ch_jane_1", 9000)
    again = await say(services, manager, "refund ch_jane_1 31 reason: duplicate charged twice")
    assert again.error is not None and again.error.code == "amount_too_large"


@pytest.mark.storage
async def test_the_bots_refund_named_by_the_business_reference_is_one_refund_not_two(
    services: Services,
) -> None:
    secret = "s3cret-s3cret-s3cret"
    with forward_endpoint(secret) as endpoint:
        ledger = LedgerGateway(services.db, forwarder=Forwarder(url=endpoint.url, secret=secret))
        try:
            mine = await ledger.refund(
                "ch_jane_1", Money.of(8000, EUR), reason="duplicate", idempotency_key="apr_stale_1"
            )
            # Their export lists the refund under the reference they answered with.
            theirs = {"id": "biz_1", "charge": "ch_jane_1", "amount": 8000, "currency": EUR}
            export = demo_row(
                "charges", "ch_jane_1", status="partially_refunded", amount_refunded=8000
            )
            await import_data(services.db, {"charges": [export], "refunds": [theirs]})

            assert await refunds_of(services, "ch_jane_1") == {mine.id: 8000}
            await assert_refunds_add_up(services, "ch_jane_1", 8000)
            with pytest.raises(GatewayError, match=r"only €40\.00 of charge ch_jane_1 remains"):
                await ledger.refund(
                    "ch_jane_1", Money.of(12000, EUR), reason="x", idempotency_key="apr_stale_2"
                )
            # The business was asked to refund once, never for the stale 120.00.
            assert [r["idempotency_key"] for r in endpoint.received] == ["apr_stale_1"]
            # Named with another amount, it is refused rather than counted twice.
            with pytest.raises(LedgerImportError, match="biz_1 is your reference for the bot's"):
                await import_data(services.db, {"refunds": [{**theirs, "amount": 7000}]})
        finally:
            await ledger.close()


@pytest.mark.storage
async def test_the_bots_refund_row_keeps_its_amount_and_reason(
    services: Services, manager: Any
) -> None:
    refund_id = await refund_80_of_jane_1(services, manager)
    row = {"id": refund_id, "charge": "ch_jane_1", "amount": 12000, "currency": EUR}
    with pytest.raises(
        LedgerImportError,
        match=rf"refunds row 1: amount: is 120.00 EUR but refund {refund_id} is 80.00 EUR",
    ):
        await import_data(services.db, {"refunds": [row]})

    await import_data(services.db, {"refunds": [{**row, "amount": 8000, "reason": "rewritten"}]})
    async with services.db.read() as s:
        refund = await s.get(LedgerRefund, refund_id)
        assert refund is not None and refund.reason == "duplicate charged twice"
    await assert_refunds_add_up(services, "ch_jane_1", 8000)


@pytest.mark.storage
async def test_an_import_may_raise_what_was_refunded_but_never_lower_it(services: Services) -> None:
    # ch_jane_2 was imported 19.00 refunded, with no refund rows: the business's word.
    await import_data(
        services.db,
        {"charges": [demo_row("charges", "ch_jane_2", amount_refunded=2900)]},
    )
    assert (await charge_row(services, "ch_jane_2")).amount_refunded == 2900
    with pytest.raises(
        LedgerImportError,
        match=r"amount_refunded: is 19\.00 EUR but charge ch_jane_2 has refunded 29\.00 EUR",
    ):
        await import_data(services.db, {"charges": [demo_row("charges", "ch_jane_2")]})


# --- captures, voids, cancellations -------------------------------------------------------


@pytest.mark.storage
@pytest.mark.parametrize(
    ("stale", "problem"),
    [
        (
            {},
            "amount_captured: is 0.00 EUR but 100.00 EUR of charge ch_jane_auth was captured (by the bot, ",
        ),
        (
            {"status": "succeeded"},
            "amount_captured: is 250.00 EUR but 100.00 EUR of charge ch_jane_auth was captured (by the bot, ",
        ),
        (
            {"status": "succeeded", "amount_captured": 5000},
            "amount_captured: is 50.00 EUR but 100.00 EUR of charge ch_jane_auth was captured",
        ),
    ],
    ids=["back-to-authorized", "captured-in-full", "captured-less"],
)
async def test_a_reimport_cannot_change_what_the_bot_captured(
    services: Services, manager: Any, stale: dict[str, Any], problem: str
) -> None:
    reply = await say(services, manager, "capture ch_jane_auth 100 reason: shipped today")
    assert reply.error is None, reply.error

    with pytest.raises(LedgerImportError) as refused:
        await import_data(services.db, {"charges": [demo_row("charges", "ch_jane_auth", **stale)]})

    [line] = refused.value.problems
    assert line.startswith(f"data:charges row 1: {problem}")
    charge = await charge_row(services, "ch_jane_auth")
    assert (charge.status, charge.amount_captured) == ("succeeded", 10000)
    too_much = await say(services, manager, "refund ch_jane_auth 101 reason: duplicate twice")
    assert too_much.error is not None and too_much.error.code == "amount_too_large"


@pytest.mark.storage
async def test_an_imported_capture_is_never_lowered(services: Services) -> None:
    captured = demo_row("charges", "ch_jane_auth", status="succeeded", amount_captured=20000)
    await import_data(services.db, {"charges": [captured]})
    with pytest.raises(LedgerImportError, match=r"amount_captured: is 150\.00 EUR but 200\.00 EUR"):
        await import_data(services.db, {"charges": [{**captured, "amount_captured": 15000}]})


@pytest.mark.storage
async def test_a_voided_authorization_cannot_come_back_to_be_captured(
    services: Services, manager: Any
) -> None:
    reply = await say(services, manager, "void ch_jane_auth reason: order canceled")
    assert reply.error is None, reply.error

    with pytest.raises(LedgerImportError) as refused:
        await import_data(services.db, {"charges": [demo_row("charges", "ch_jane_auth")]})

    [line] = refused.value.problems
    assert line.startswith(
        "data:charges row 1: status: is authorized but charge ch_jane_auth is voided (by the bot, "
    )
    capture = await say(services, manager, "capture ch_jane_auth reason: shipped")
    assert capture.error is not None
    assert (await charge_row(services, "ch_jane_auth")).status == "voided"


@pytest.mark.storage
async def test_a_canceled_subscription_does_not_come_back_to_life(
    services: Services, manager: Any
) -> None:
    reply = await say(
        services, manager, "cancel sub_jane_pro now reason: requested_by_customer moving"
    )
    assert reply.error is None, reply.error

    with pytest.raises(
        LedgerImportError,
        match=r"subscriptions row 1: status: is active but subscription sub_jane_pro is canceled \(by the bot",
    ):
        await import_data(
            services.db, {"subscriptions": [demo_row("subscriptions", "sub_jane_pro")]}
        )
    # A file that agrees keeps the bot's cancellation time.
    async with services.db.read() as s:
        before = (await s.get(LedgerSubscription, "sub_jane_pro")).canceled_at  # type: ignore[union-attr]
    agreed = demo_row("subscriptions", "sub_jane_pro", status="canceled")
    await import_data(services.db, {"subscriptions": [agreed]})
    async with services.db.read() as s:
        after = await s.get(LedgerSubscription, "sub_jane_pro")
        assert after is not None and after.status == "canceled" and after.canceled_at == before


@pytest.mark.storage
@pytest.mark.parametrize("status", ["active", "past_due"])
async def test_a_cancellation_at_period_end_is_not_undone_by_a_stale_import(
    services: Services, manager: Any, status: str
) -> None:
    reply = await say(
        services, manager, "cancel sub_jane_pro period-end reason: requested_by_customer"
    )
    assert reply.error is None, reply.error
    stale = demo_row("subscriptions", "sub_jane_pro", status=status)

    with pytest.raises(
        LedgerImportError,
        match="cancel_at_period_end: is false but subscription sub_jane_pro is set to cancel",
    ):
        await import_data(services.db, {"subscriptions": [stale]})
    # The period ending is the cancellation the bot asked for: that may come in.
    ended = demo_row("subscriptions", "sub_jane_pro", status="canceled")
    await import_data(services.db, {"subscriptions": [ended]})


@pytest.mark.storage
async def test_the_tax_id_the_bot_set_stays_unless_the_file_names_the_same(
    services: Services,
) -> None:
    ledger = LedgerGateway(services.db)
    await ledger.add_tax_id("cus_jane", "IE6388047V", idempotency_key="tx-stale")
    jane = demo_row("customers", "cus_jane")
    assert not jane.get("tax_id")

    await import_data(services.db, {"customers": [jane]})  # says nothing of it: kept
    [kept] = (await ledger.lookup(LookupQuery.parse("cus_jane")))[0].tax_ids
    assert kept.value == "IE6388047V"
    with pytest.raises(LedgerImportError, match="tax_id: is IE3628739L but the bot set IE6388047V"):
        await import_data(services.db, {"customers": [{**jane, "tax_id": "IE3628739L"}]})
    await import_data(services.db, {"customers": [{**jane, "tax_id": "IE 6388047 V"}]})


# --- the rest of the class: states and amounts that never go back --------------------------


@pytest.mark.storage
@pytest.mark.parametrize(
    ("kind", "row", "problem"),
    [
        ("charges", demo_row("charges", "ch_jane_1", amount=99900), "amount: is 999.00 EUR but charge ch_jane_1 is 120.00 EUR"),
        ("charges", demo_row("charges", "ch_jane_1", currency="USD"), "currency: is USD but charge ch_jane_1 is in EUR"),
        ("charges", demo_row("charges", "ch_jane_1", customer="cus_john"), "customer: charge ch_jane_1 belongs to customer cus_jane"),
        ("charges", demo_row("charges", "ch_jane_failed", status="succeeded", failure_message=None), "status: is succeeded but charge ch_jane_failed is failed"),
        ("charges", demo_row("charges", "ch_jane_disputed", status="succeeded"), "status: is succeeded but charge ch_jane_disputed is disputed (dp_jane_1 not won)"),
        ("subscriptions", demo_row("subscriptions", "sub_jane_starter", status="active", canceled_at=None), "status: is active but subscription sub_jane_starter is canceled"),
        ("invoices", demo_row("invoices", "in_jane_paid", status="open", amount_paid=12000), "status: is open but invoice in_jane_paid is paid"),
        ("invoices", demo_row("invoices", "in_jane_paid", amount_paid=0), "amount_paid: is 0.00 EUR but 120.00 EUR of invoice in_jane_paid is paid"),
        ("invoices", demo_row("invoices", "in_jane_open", amount_due=100), "amount_due: is 1.00 EUR but invoice in_jane_open is 49.00 EUR"),
        ("disputes", demo_row("disputes", "dp_jane_1", amount=100), "amount: is 1.00 EUR but dispute dp_jane_1 is 49.00 EUR"),
    ],
    ids=["charge-amount", "charge-currency", "charge-customer", "failed-to-succeeded",
         "disputed-to-succeeded", "canceled-to-active", "paid-to-open", "paid-lowered",
         "finalized-amount", "dispute-amount"],
)  # fmt: skip
async def test_a_reimport_cannot_rewrite_what_the_ledger_holds(
    services: Services, kind: str, row: dict[str, Any], problem: str
) -> None:
    with pytest.raises(LedgerImportError) as refused:
        await import_data(services.db, {kind: [row]})
    assert refused.value.problems[0].startswith(f"data:{kind} row 1: {problem}")


@pytest.mark.storage
async def test_states_still_move_forward(services: Services) -> None:
    lost = demo_row("disputes", "dp_jane_1", status="lost")
    paid = demo_row("invoices", "in_jane_open", status="paid")
    await import_data(services.db, {"disputes": [lost], "invoices": [paid]})
    with pytest.raises(
        LedgerImportError, match="status: is needs_response but dispute dp_jane_1 is lost"
    ):
        await import_data(services.db, {"disputes": [demo_row("disputes", "dp_jane_1")]})
    won = {"disputes": [demo_row("disputes", "dp_jane_1", status="won")]}
    with pytest.raises(LedgerImportError, match="dispute dp_jane_1 is lost"):
        await import_data(services.db, won)


# --- inputs the readers cannot take --------------------------------------------------------


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "CHARGEDESK_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(REPO)}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    return env


def chargedesk_import(env: dict[str, str], path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "import", str(path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=path.parent,
        timeout=120,
    )


def test_cli_refuses_a_huge_csv_cell_and_deep_json_in_one_line_each(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    huge = tmp_path / "customers.csv"
    huge.write_text("id,name\ncus_1,Ann\ncus_2," + "x" * (129 * 1024) + "\n", encoding="utf-8")
    deep = write_json(tmp_path / "export.json", None)
    deep.write_text('{"customers": ' + "[" * 100_000 + "]" * 100_000 + "}", encoding="utf-8")
    keys = tmp_path / "keys.json"
    keys.write_text('{"customers": [{"id": "cus_1", "name": "A", "name": "B"}]}', encoding="utf-8")

    results = {path.name: chargedesk_import(cli_env, path) for path in (huge, deep, keys)}

    for name, done in results.items():
        assert done.returncode == 1, (name, done.stderr)
        assert "Traceback" not in done.stderr, done.stderr
        [line] = [x for x in done.stderr.splitlines() if x.startswith("nothing imported")]
        assert len(line) < 200, line
    assert (
        "nothing imported: customers.csv:row 3: a cell is longer than 131072 characters"
        in results["customers.csv"].stderr
    )
    assert (
        "nothing imported: export.json: not valid JSON: nested too deeply"
        in results["export.json"].stderr
    )
    assert (
        "nothing imported: keys.json:customers row 1: duplicate key 'name'"
        in results["keys.json"].stderr
    )
    fine = write_json(tmp_path / "customers.json", [{"id": "cus_1"}])
    assert chargedesk_import(cli_env, fine).stdout.strip() == "imported 1 customer"


async def test_deep_json_inside_a_row_is_a_problem_of_that_row(
    ledger_db: Any, tmp_path: Path
) -> None:
    nested = "[" * 900 + "]" * 900
    path = tmp_path / "export.json"
    path.write_text(
        f'{{"charges": [{{"id": "ch_1", "currency": "EUR", "status": "succeeded", "amount": {nested}}}]}}'
    )
    with pytest.raises(LedgerImportError) as refused:
        await import_file(ledger_db, path)
    [line] = refused.value.problems
    assert (
        line
        == "export.json:charges row 1: amount: [[[...]]] is not an amount: use an integer in minor units (4200 for 42.00 EUR)"
    )


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('{"charges": [], "charges": [{"id": "ch_1"}]}', "export.json: duplicate key 'charges'"),
        ('{"customers": [{"id": "cus_1"}, {"id": "cus_2", "email": "a@b.co", "email": "c@d.co"}]}',
         "export.json:customers row 2: duplicate key 'email'"),
        ('{"invoices": [{"id": "in_1", "lines": [{"amount": 1, "amount": 2}]}]}',
         "export.json:invoices row 1.lines[0]: duplicate key 'amount'"),
    ],
    ids=["section", "row", "nested"],
)  # fmt: skip
async def test_duplicate_json_keys_are_refused_naming_the_key_and_where(
    ledger_db: Any, tmp_path: Path, text: str, where: str
) -> None:
    path = tmp_path / "export.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(LedgerImportError) as refused:
        await import_file(ledger_db, path)
    assert refused.value.problems == [f"{where}: each key once"]


async def test_errors_quote_at_most_a_little_of_the_input(ledger_db: Any, tmp_path: Path) -> None:
    long = "z" * 100_000
    rows = [
        {"id": "cus_1", "email": long},
        {"id": "cus_2", long: 1},
        {"id": long},
        {"id": "cus_3", "country": long},
    ]
    charges = [{"id": "ch_1", "currency": long, "amount": 1, "status": "succeeded"},
               {"id": "ch_2", "currency": "EUR", "amount": long, "status": "succeeded"}]  # fmt: skip
    with pytest.raises(LedgerImportError) as refused:
        await import_data(ledger_db, {"customers": rows, "charges": charges, long: []})
    with pytest.raises(LedgerImportError) as refused_rows:
        await import_data(ledger_db, {"customers": rows, "charges": charges})
    csv_path = tmp_path / "charges.csv"
    csv_path.write_text(f"id,currency,amount,status\nch_1,EUR,{'9' * 5000},succeeded\n")
    with pytest.raises(LedgerImportError) as refused_csv:
        await import_file(ledger_db, csv_path)

    problems = [*refused.value.problems, *refused_rows.value.problems, *refused_csv.value.problems]
    assert len(problems) >= 7
    for problem in problems:
        assert len(problem) < 250, problem
        assert "z" * 61 not in problem and "9" * 61 not in problem, problem
    assert sum("zzz..." in p or "999..." in p for p in problems) >= 4  # quoted, shortened


@pytest.fixture
async def ledger_db(tmp_path: Path) -> AsyncIterator[Any]:
    from bot.store.db import Database

    db = Database(f"sqlite+aiosqlite:///{tmp_path / 't.db'}")
    await db.migrate()
    yield db
    await db.close()
