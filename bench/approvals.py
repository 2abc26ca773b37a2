"""Exactly-once under a storm of concurrent approvals, and sequential approval throughput.

    cd /work/main && PYTHONPATH=. python bench/approvals.py
    cd /work/main && PYTHONPATH=. python bench/approvals.py \\
        --database-url postgresql://postgres@127.0.0.1/test --redis-url redis://127.0.0.1:6379/0

Part 1: an agent asks to refund part of one 1,000.00 EUR charge; then 1,000
`decide(..., approve=True)` calls from 10 managers run at once. Exactly one may
execute: one state transition to succeeded, one row in ledger_refunds, one
ledger operation. The same again with one manager clicking 20 times at once
(a double-clicked button). Exits 1 if exactly-once does not hold in either.

Part 2: N refund requests (one per charge), then each approved in turn by a
manager: approvals executed per second, one at a time (goal: 100 a second). Beside
each decision the same number of bare transactions (as many reads and writes, one
primary-key SELECT each) runs through the same engine: that floor, measured in the
same run under the same load, is what the rate is a ratio to. Counted per decision
with SQLAlchemy engine events: transactions, SQL statements (BEGIN and COMMIT not
counted), aiosqlite thread hand-offs (SQLite), and Redis commands (the server's own
count). The stores are warmed by a few decisions first (not timed).

With --database-url a fresh `bench_<random>` database is created on that
PostgreSQL server and dropped afterwards; with --redis-url every key lives
under a random prefix and is deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import aiosqlite
from _common import add_customer, bench_services, quiet_logs, table
from sqlalchemy import event, func, select

from bot.actors import Actor, Role
from bot.approvals.policy import Policy
from bot.approvals.requests import decide, submit
from bot.approvals.workflow import ActionRequest, ApprovalView, State
from bot.audit.log import verify
from bot.errors import UserError
from bot.money import Money
from bot.services import Services
from bot.store.db import Database
from bot.store.tables import ApprovalRow, AuditEntry, LedgerCharge, LedgerOperation, LedgerRefund

AGENT = Actor(platform="bench", id="agent", name="Bench Agent", roles=frozenset({Role.agent}))
MANAGERS = [
    Actor(platform="bench", id=f"manager{i}", name=f"Manager {i}", roles=frozenset({Role.manager}))
    for i in range(10)
]
CHARGE_MINOR = 100_000  # 1,000.00 EUR
REFUND = Money(minor=1_000, currency="EUR")  # 10.00 EUR: a second execution could still pay
GOAL_PER_SECOND = 100  # sequential approve + execute (issue 19, DESIGN.md section 10)
WARMUP = 3  # decisions before the timed ones: connections opened, statements compiled


async def request_refund(services: Services, charge_id: str, amount: Money) -> ApprovalView:
    charge = await services.gateways.get("ledger").get_charge(charge_id)
    return await submit(
        services,
        AGENT,
        ActionRequest(
            action="refund",
            gateway="ledger",
            target_id=charge.id,
            customer_id=charge.customer_id,
            amount=amount,
            refundable=charge.refundable,
            reason="bench: duplicate charge",
        ),
    )


# --- part 1: the storm -------------------------------------------------------------------


async def storm(
    services: Services, attempts: int, managers: list[Actor], tag: str
) -> tuple[list[list[object]], bool]:
    """`attempts` concurrent approvals of one pending refund, spread over `managers`."""
    [charge_id] = await add_customer(
        services,
        customer_id=f"cus_{tag}",
        email=f"{tag}@example.com",
        charges=1,
        amount=CHARGE_MINOR,
        charge_prefix=f"ch_{tag}",
    )
    view = await request_refund(services, charge_id, REFUND)
    if view.state != State.pending:
        return [["submit", f"expected pending, got {view.state}"]], False

    async def attempt(i: int) -> ApprovalView:
        return await decide(services, managers[i % len(managers)], view.id, approve=True)

    started = time.perf_counter()
    results = await asyncio.gather(*(attempt(i) for i in range(attempts)), return_exceptions=True)
    wall = time.perf_counter() - started

    returned = Counter[str]()
    refused = Counter[str]()
    unexpected = Counter[str]()
    for result in results:
        if isinstance(result, UserError):
            refused[result.code] += 1
        elif isinstance(result, BaseException):
            unexpected[_describe_exception(result)] += 1
        else:
            returned[result.state.value] += 1

    async with services.db.read() as s:
        refunds = await s.scalar(
            select(func.count())
            .select_from(LedgerRefund)
            .where(LedgerRefund.charge_id == charge_id)
        )
        operations = await s.scalar(
            select(func.count())
            .select_from(LedgerOperation)
            .where(LedgerOperation.idempotency_key == view.id)
        )
        succeeded_entries = await s.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.approval_id == view.id, AuditEntry.outcome == "succeeded")
        )
        executing_entries = await s.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.approval_id == view.id, AuditEntry.outcome == "executing")
        )
        final = await s.get(ApprovalRow, view.id)
        charge = await s.get(LedgerCharge, charge_id)
    assert final is not None and charge is not None
    chain = await verify(services.db)

    winners = returned.get(State.succeeded.value, 0)
    exactly_once = (
        refunds == 1
        and operations == 1
        and succeeded_entries == 1
        and executing_entries == 1
        and winners == 1
        and final.state == State.succeeded.value
        and final.attempts == 1
        and charge.amount_refunded == REFUND.minor
    )
    rows: list[list[object]] = [
        [
            "attempts (concurrent decide, approve=True)",
            f"{attempts:,} from {len(managers)} manager{'s' if len(managers) > 1 else ''}",
        ],
        ["wall time", f"{wall:.2f} s"],
        ["attempts/s", f"{attempts / wall:,.0f}"],
        ["winners (decide returned state=succeeded)", winners],
        ["other returned views", _counts({k: v for k, v in returned.items() if k != "succeeded"})],
        ["refused (UserError by code)", _counts(refused)],
        ["unexpected exceptions", _counts(unexpected)],
        ["audit 'executing' / 'succeeded' entries", f"{executing_entries} / {succeeded_entries}"],
        ["ledger_refunds rows for the charge", refunds],
        ["ledger_operations rows for the approval", operations],
        ["charge amount_refunded", Money(minor=charge.amount_refunded, currency="EUR").plain()],
        ["final approval state / attempts", f"{final.state} / {final.attempts}"],
        ["audit chain", f"ok, {chain.entries} entries" if chain.ok else f"BROKEN: {chain.problem}"],
        ["exactly once", "PASS" if exactly_once else "FAIL"],
    ]
    return rows, exactly_once and chain.ok


def _describe_exception(exc: BaseException) -> str:
    """`IntegrityError (UniqueViolationError: duplicate key ... "pk_approval_votes")`, one line."""
    orig = getattr(exc, "orig", None)
    if orig is not None:
        inner = str(orig).splitlines()[0].split(": ", 1)[-1]
        return f"{type(exc).__name__} ({inner})"
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:100]}"


def _counts(counter: dict[str, int]) -> str:
    if not counter:
        return "0"
    return ", ".join(f"{k}: {v}" for k, v in sorted(counter.items(), key=lambda kv: -kv[1]))


# --- part 2: sequential throughput -------------------------------------------------------


@dataclass
class Tally:
    """What the engine did while `on`: transactions by kind, statements, thread hand-offs."""

    on: bool = False
    reads: int = 0
    writes: int = 0
    statements: int = 0
    handoffs: int = 0


@contextmanager
def counting(db: Database) -> Iterator[Tally]:
    """Count, through SQLAlchemy's engine events, what the engine does while `tally.on`."""
    tally = Tally()
    engine = db.engine.sync_engine

    def begin(conn: Any) -> None:
        if tally.on:
            # `Database.write()` marks its connections `immediate` (BEGIN IMMEDIATE on SQLite).
            if conn.get_execution_options().get("immediate", False):
                tally.writes += 1
            else:
                tally.reads += 1

    def statement(conn: Any, cursor: Any, sql: str, *_: Any) -> None:
        if tally.on and not sql.startswith("BEGIN"):
            tally.statements += 1

    # Every call into an aiosqlite connection is a trip to its thread and back.
    handoff = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if tally.on:
            tally.handoffs += 1
        return await handoff(self, fn, *args, **kwargs)

    event.listen(engine, "begin", begin)
    event.listen(engine, "before_cursor_execute", statement)
    aiosqlite.Connection._execute = counted  # type: ignore[method-assign]
    try:
        yield tally
    finally:
        aiosqlite.Connection._execute = handoff  # type: ignore[method-assign]
        event.remove(engine, "before_cursor_execute", statement)
        event.remove(engine, "begin", begin)


async def bare_transactions(db: Database, approval_id: str, reads: int, writes: int) -> None:
    """The floor: `reads` + `writes` transactions through the same engine, one SELECT each."""
    query = select(ApprovalRow.state).where(ApprovalRow.id == approval_id)
    for _ in range(reads):
        async with db.read() as s:
            await s.execute(query)
    for _ in range(writes):
        async with db.write() as s:
            await s.execute(query)


async def redis_commands(services: Services) -> int:
    """Commands the Redis server has processed so far (counting this INFO)."""
    return int((await services.redis.info("stats"))["total_commands_processed"])


async def sequential(
    services: Services, count: int
) -> tuple[list[list[object]], list[list[object]], bool]:
    """Rows of the timing table, rows of the per-decision table, and whether all succeeded."""
    charge_ids = await add_customer(
        services,
        customer_id="cus_seq",
        email="sequential@example.com",
        charges=count + WARMUP,
        amount=CHARGE_MINOR,
        charge_prefix="ch_seq",
    )
    started = time.perf_counter()
    views = [await request_refund(services, cid, REFUND) for cid in charge_ids]
    submit_wall = time.perf_counter() - started
    decided = [
        await decide(services, MANAGERS[i % len(MANAGERS)], view.id, approve=True)
        for i, view in enumerate(views[:WARMUP])
    ]

    approve_wall = approve_cpu = floor_wall = 0.0
    with counting(services.db) as tally:
        redis_before = await redis_commands(services)
        for i, view in enumerate(views[WARMUP:]):
            reads, writes = tally.reads, tally.writes
            tally.on = True
            started, cpu = time.perf_counter(), time.process_time()
            decided.append(
                await decide(services, MANAGERS[i % len(MANAGERS)], view.id, approve=True)
            )
            approve_wall += time.perf_counter() - started
            approve_cpu += time.process_time() - cpu
            tally.on = False
            # Right after it, under the same load: as many bare reads and writes.
            started = time.perf_counter()
            await bare_transactions(
                services.db, view.id, tally.reads - reads, tally.writes - writes
            )
            floor_wall += time.perf_counter() - started
        # Our own INFO calls (2) are not the decisions'; neither are the floor's (none: SQL).
        redis = await redis_commands(services) - redis_before - 1

    states = Counter(v.state.value for v in decided)
    async with services.db.read() as s:
        refunds = await s.scalar(
            select(func.count())
            .select_from(LedgerRefund)
            .where(
                LedgerRefund.charge_id.in_(
                    select(LedgerCharge.id).where(LedgerCharge.customer_id == "cus_seq")
                )
            )
        )
    total = count + WARMUP
    ok = states == Counter({State.succeeded.value: total}) and refunds == total
    rate = count / approve_wall
    transactions = (tally.reads + tally.writes) / count
    rows: list[list[object]] = [
        [
            "submit (agent request, pending)",
            total,
            f"{submit_wall:.2f} s",
            f"{total / submit_wall:,.1f}",
            f"{submit_wall / total * 1000:.1f}",
            "",
        ],
        [
            "decide (manager approve + execute refund)",
            count,
            f"{approve_wall:.2f} s",
            f"{rate:,.1f}",
            f"{approve_wall / count * 1000:.1f}",
            f"{approve_cpu / count * 1000:.1f}",
        ],
        [
            f"floor: {transactions:.1f} bare transactions per decision",
            count,
            f"{floor_wall:.2f} s",
            f"{count / floor_wall:,.1f}",
            f"{floor_wall / count * 1000:.1f}",
            "",
        ],
        ["result", _counts(states), f"ledger_refunds: {refunds}", "", "", ""],
    ]
    per_decision: list[list[object]] = [
        ["rate, ratio to the floor", f"{rate:,.1f}/s, {approve_wall / floor_wall:.2f}x the floor's time"],
        [f"goal: {GOAL_PER_SECOND}/s", "met" if rate >= GOAL_PER_SECOND else "NOT met"],
        ["transactions (read + write)", f"{transactions:.1f} ({tally.reads / count:.1f} + {tally.writes / count:.1f})"],
        ["SQL statements (BEGIN/COMMIT not counted)", f"{tally.statements / count:.1f}"],
        ["aiosqlite thread hand-offs", f"{tally.handoffs / count:.1f}" if tally.handoffs else "-"],
        ["Redis commands", f"{redis / count:.1f}"],
    ]  # fmt: skip
    return rows, per_decision, ok


async def main(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    async with bench_services(
        database_url=args.database_url, redis_url=args.redis_url, policy=Policy()
    ) as stores:
        services = stores.services
        header = f"database: {stores.database}\nredis:    {stores.redis}\npolicy:   Policy() (every refund needs 1 manager; no auto-approve limits)"
        print(header)
        charge = Money(minor=CHARGE_MINOR, currency="EUR").plain()
        storm_rows, once = await storm(services, args.attempts, MANAGERS, "storm")
        print(
            table(
                ["exactly-once storm", "value"],
                storm_rows,
                title=f"Exactly-once: {args.attempts:,} concurrent approvals by {len(MANAGERS)} managers of one {REFUND.plain()} refund on a {charge} charge",
            )
        )
        click_rows, click_once = await storm(services, args.double_clicks, MANAGERS[:1], "click")
        print(
            table(
                ["double click", "value"],
                click_rows,
                title=f"Double click: {args.double_clicks} concurrent approvals by ONE manager of one {REFUND.plain()} refund on a {charge} charge",
            )
        )
        once = once and click_once
        seq_rows, per_decision, seq_ok = await sequential(services, args.sequential)
        print(
            table(
                ["sequential", "requests", "wall", "per second", "ms each", "CPU ms each"],
                seq_rows,
                title=f"Sequential: {args.sequential} refund requests, one charge each, approved one at a time (after {WARMUP} untimed)",
            )
        )
        print(table(["each decision", "value"], per_decision))
    print(f"\ntotal bench time: {time.perf_counter() - started:.1f} s")
    if not once:
        print("FAILED: exactly-once does not hold (see the table above)", file=sys.stderr)
        return 1
    if not seq_ok:
        print("FAILED: not every sequential approval succeeded", file=sys.stderr)
        return 2
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attempts", type=int, default=1000, help="concurrent approve calls")
    parser.add_argument(
        "--double-clicks", type=int, default=20, help="concurrent approve calls by one manager"
    )
    parser.add_argument("--sequential", type=int, default=200, help="requests approved in turn")
    parser.add_argument(
        "--database-url",
        help="PostgreSQL server, e.g. postgresql://postgres@127.0.0.1/test "
        "(a fresh bench_<random> database is created and dropped); default: temp SQLite",
    )
    parser.add_argument(
        "--redis-url",
        help="Redis server, e.g. redis://127.0.0.1:6379/0; default: embedded Valkey",
    )
    parser.add_argument("--verbose", action="store_true", help="show the bot's logs")
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    quiet_logs(arguments.verbose)
    sys.exit(asyncio.run(main(arguments)))
