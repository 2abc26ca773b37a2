"""Exported CSV is data to a spreadsheet: no cell can start a formula (OWASP CSV Injection)."""

from __future__ import annotations

import csv
import io
import json

import pytest

from bot.actors import Actor, Role
from bot.audit.csv_safe import SafeDictWriter, SafeWriter, formula_safe
from bot.audit.log import AuditRecord, export, record
from tests.conftest import say

pytestmark = pytest.mark.storage

DANGEROUS = [
    "=1+1",
    "+1+1",
    "-1+1",
    "@SUM(A1:A9)",
    "\t=1+1",
    "\r=1+1",
    " =1+1",
    "\u00a0=1+1",
    "\uff1d1+1",  # full-width equals sign
    "\uff0b1+1",  # full-width plus sign
    '=HYPERLINK("http://x.co","y")',  # short enough for every column
    "-2+3+cmd|' /C calc'!A0",
    "@cmd|'/c calc'!A1",
]


def read_back(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


@pytest.mark.parametrize("payload", DANGEROUS)
async def test_every_text_cell_that_could_start_a_formula_is_neutralised(services, payload):
    attacker = Actor(platform="slack", id=payload, name=payload, roles=frozenset({Role.agent}))
    await record(
        services.db,
        AuditRecord(
            actor=attacker,
            action=payload,
            outcome=payload,
            gateway=payload,
            object_id=payload,
            customer_id=payload,
            reason=payload,
            approval_id=payload,
            approvers=[payload],
            gateway_request_id=payload,
        ),
    )
    out = io.StringIO(newline="")
    assert await export(services.db, "csv", out) == 1
    [row] = read_back(out.getvalue())
    for field in (
        "actor_id", "actor_name", "action", "outcome", "gateway", "object_id",
        "customer_id", "reason", "approval_id", "gateway_request_id",
    ):  # fmt: skip
        assert row[field] == "'" + payload, field
    # A list is written as JSON: it starts with `[`, so it is safe and stays exact.
    assert row["approvers"] == json.dumps([payload], ensure_ascii=False)


async def test_a_display_name_with_a_formula_reaches_the_spreadsheet_as_text(services, manager):
    agent = Actor(
        platform="slack",
        id="U0EVIL",
        name='=HYPERLINK("https://evil.example","x")',
        roles=frozenset({Role.agent}),
    )
    done = await say(services, agent, "refund ch_jane_1 10 reason: goodwill sorry")
    assert done.approval.state == "succeeded"
    out = io.StringIO(newline="")
    await export(services.db, "csv", out)
    rows = read_back(out.getvalue())
    assert {r["actor_name"] for r in rows} == {"'" + agent.name}
    # Every cell is quoted, the header too.
    assert all(line.startswith('"') for line in out.getvalue().splitlines() if line)


async def test_plain_numbers_and_ordinary_text_are_left_as_they_are(services, agent):
    await say(services, agent, "refund ch_jane_1 10 reason: goodwill -sorry =late")
    out = io.StringIO(newline="")
    await export(services.db, "csv", out)
    rows = read_back(out.getvalue())
    assert rows[-1]["amount"] == "1000" and rows[-1]["amount_decimal"] == "10.00"
    assert rows[-1]["reason"] == "goodwill -sorry =late"
    assert formula_safe("-12.50") == "-12.50" and formula_safe(-5) == -5
    assert formula_safe("-12.50\n=1+1") == "'-12.50\n=1+1"


@pytest.mark.parametrize("payload", DANGEROUS)
def test_the_safe_writers_neutralise_every_row_they_write(payload):
    out = io.StringIO(newline="")
    SafeWriter(out).writerows([[payload, "ok"]])
    dict_out = io.StringIO(newline="")
    writer = SafeDictWriter(dict_out, fieldnames=["a"])
    writer.writerows([{"a": payload}])
    assert next(csv.reader(io.StringIO(out.getvalue(), newline=""))) == ["'" + payload, "ok"]
    assert next(csv.reader(io.StringIO(dict_out.getvalue(), newline=""))) == ["'" + payload]
