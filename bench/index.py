"""The billing index at scale: a million charges written, and reports over them.

    python bench/index.py [--charges 1000000] [--database-url postgresql://…]

Writes `--charges` charges (over 10,000 customers, a year, three currencies, a refund for
one charge in twenty) into the index the way a sync does (`bot.index.store.upsert`, one
transaction per 5,000), then times `report revenue` for the year by month and by week and
`report invoices`, each against the floor of the same grouped SQL sent straight through
the database driver in the same run. The target: a report over a million charges in under
2 s, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import bench_services, quiet_logs, table
from sqlalchemy import text

from bot.gateways.base import LookupQuery
from bot.index.rows import name_key
from bot.index.search import find
from bot.index.store import upsert
from bot.reports.period import parse_period
from bot.reports.revenue import revenue_report
from bot.services import Services

CURRENCIES = (("EUR", 2), ("USD", 2), ("JPY", 0))
START = datetime(2026, 1, 1, tzinfo=UTC)
BATCH = 5_000


def _rows(first: int, count: int, synced: datetime) -> list[dict[str, object]]:
    rows = []
    for n in range(first, first + count):
        currency, digits = CURRENCIES[n % 3]
        created = START + timedelta(seconds=(n * 31_536_000) // 1_000_003 % 31_536_000)
        base = {
            "gateway": "ledger", "customer_id": f"cus_{n % 10_000}", "email": None, "name": None,
            "name_key": None, "number": None, "currency": currency, "exponent": digits,
            "created": created, "due": None, "paid_at": None, "synced_at": synced,
        }  # fmt: skip
        amount = 1_000 + n % 9_000
        rows.append(base | {"kind": "charge", "object_id": f"ch_{n}", "related_id": None,
                            "amount": amount, "amount_settled": 0, "status": "succeeded"})  # fmt: skip
        if n % 20 == 0:
            rows.append(base | {"kind": "refund", "object_id": f"re_{n}", "related_id": f"ch_{n}",
                                "amount": amount // 2, "amount_settled": None, "status": "succeeded"})  # fmt: skip
    return rows


async def fill(services: Services, charges: int) -> float:
    started = time.perf_counter()
    synced = datetime.now(UTC)
    for first in range(0, charges, BATCH):
        async with services.db.write() as session:
            await upsert(session, _rows(first, min(BATCH, charges - first), synced))
        if first and first % 100_000 == 0:
            print(f"  {first:,} charges written", file=sys.stderr)
    async with services.db.write() as session:
        await upsert(session, _customers(synced))
    return time.perf_counter() - started


FIRST = ("Ana", "Ben", "Chloé", "Dara", "Émile", "Fatima", "Grzegorz", "Hana", "Ivan", "Jane")
LAST = ("Lima", "O'Brien", "Nguyen", "Müller", "Tanaka", "Doe", "Kowalski", "Smith")


def _customers(synced: datetime) -> list[dict[str, object]]:
    """The 10,000 customers the charges belong to, each with a name, an email and an invoice
    number, as a sync writes them: what `lookup` searches in the index."""
    rows: list[dict[str, object]] = []
    for n in range(10_000):
        name = f"{FIRST[n % 10]} {LAST[n // 10 % 8]} {n}"
        base = {
            "gateway": "ledger", "customer_id": f"cus_{n}", "email": f"c{n}@example{n % 50}.com",
            "name": name, "name_key": name_key(name), "related_id": None, "amount": None,
            "amount_settled": None, "currency": None, "exponent": None, "status": None,
            "created": START, "due": None, "paid_at": None, "synced_at": synced,
        }  # fmt: skip
        rows.append(base | {"kind": "customer", "object_id": f"cus_{n}", "number": None})
        rows.append(base | {"kind": "invoice", "object_id": f"in_{n}", "number": f"INV-{n:06d}"})
    return rows


async def searches(services: Services) -> list[list[str]]:
    """`lookup`'s index query for a name, part of an email, an invoice and an order number."""
    rows = []
    for label, query in (
        ("a name (`lookup o'brien 4259`)", LookupQuery("name", "o'brien 4259")),
        ("a name matching many (`lookup müller`)", LookupQuery("name", "müller")),
        ("part of an email (`lookup c4259@`)", LookupQuery("partial_email", "c4259@")),
        ("an invoice number (`lookup INV-004259`)", LookupQuery("invoice_number", "INV-004259")),
        ("an order number no charge has (`lookup #4259`)", LookupQuery("id", "4259")),
    ):
        best = min([await timed(find(services, [query], ["ledger"])) for _ in range(5)])
        found = len((await find(services, [query], ["ledger"])).hits)
        rows.append([label, f"{best * 1000:.1f} ms", str(found)])
    return rows


_FLOOR = {
    "sqlite": "SELECT substr(created, 1, 7) AS b, currency, count(*), sum(amount) "
    "FROM billing_index WHERE kind = 'charge' AND created >= :s AND created < :e "
    "AND status IN ('succeeded','partially_refunded','refunded','disputed') GROUP BY b, currency",
    "postgresql": "SELECT to_char(date_trunc('month', timezone('UTC', created)), 'YYYY-MM') AS b, "
    "currency, count(*), sum(amount) FROM billing_index WHERE kind = 'charge' AND created >= :s "
    "AND created < :e AND status IN ('succeeded','partially_refunded','refunded','disputed') "
    "GROUP BY b, currency",
}


async def floor(services: Services) -> float:
    """The charges half of the monthly report as one raw SQL statement (the report runs three)."""
    period = parse_period("2026")
    dialect = "sqlite" if services.db.is_sqlite else "postgresql"
    start = period.start.replace(tzinfo=None) if dialect == "sqlite" else period.start
    end = period.end.replace(tzinfo=None) if dialect == "sqlite" else period.end
    started = time.perf_counter()
    async with services.db.read() as session:
        (await session.execute(text(_FLOOR[dialect]), {"s": start, "e": end})).all()
    return time.perf_counter() - started


async def timed(work) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    await work
    return time.perf_counter() - started


async def main(args: argparse.Namespace) -> None:
    quiet_logs(args.verbose)
    async with bench_services(database_url=args.database_url) as stores:
        services = stores.services
        print(f"database: {stores.database}")
        wrote = await fill(services, args.charges)
        if not services.db.is_sqlite:  # what autovacuum does soon after a sync this size
            async with services.db.write() as session:
                await session.execute(text("ANALYZE billing_index"))
        refunds = len(range(0, args.charges, 20))
        print(table(
            ["index writes", "rows", "seconds", "rows/s"],
            [["charges and refunds (upsert, 5,000 per transaction)", f"{args.charges + refunds:,}",
              f"{wrote:.1f}", f"{(args.charges + refunds) / wrote:,.0f}"]],
        ))  # fmt: skip
        year = parse_period("2026")
        rows = []
        base = min([await floor(services) for _ in range(3)])
        rows.append(["floor: the charges' monthly GROUP BY, raw SQL", f"{base:.2f} s", "1.00x"])
        for label, work in (
            ("report revenue 2026 (by month)", lambda: revenue_report(services, year)),
            ("report revenue 2026 week", lambda: revenue_report(services, year, by="week")),
        ):
            best = min([await timed(work()) for _ in range(3)])
            rows.append([label, f"{best:.2f} s", f"{best / base:.2f}x"])
        print(table(["report over the index (best of 3)", "time", "vs floor"], rows,
                    title=f"{args.charges:,} charges, {refunds:,} refunds, one year, three currencies"))  # fmt: skip
        print(table(["lookup's index query (best of 5)", "time", "customers"], await searches(services),
                    title="10,000 customers with names, emails and invoice numbers"))  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--charges", type=int, default=1_000_000)
    parser.add_argument("--database-url", help="postgresql://… (default: a temporary SQLite file)")
    parser.add_argument("--verbose", action="store_true")
    asyncio.run(main(parser.parse_args()))
