"""Lookup latency on the ledger gateway, and gateway fan-out under slow gateways.

    cd /work/main && PYTHONPATH=. python bench/lookup.py [--runs 200] [--charges 1000]

Part 1 puts one customer with N charges in the ledger (SQLite in a temp dir and
the embedded Valkey engine, unless --database-url / --redis-url are given) and
times `lookup <email>` through the full command path (parse, role check,
gateway fan-out, card rendering) and through `services.gateways.lookup` alone.

Part 2 times `Gateways.lookup` over N synthetic gateways that each sleep L ms:
concurrent fan-out should take about L, not N x L, and a gateway slower than
the timeout should cost the timeout and show up in `profile.failures`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from _common import (
    add_customer,
    add_other_customers,
    bench_services,
    ms,
    quiet_logs,
    summarize,
    table,
    timed,
)

from bot.actors import Actor, Channel, ChannelKind, Role
from bot.commands import Context, dispatch
from bot.gateways.base import Capability, Gateway, LookupQuery
from bot.gateways.registry import Gateways
from bot.models import Customer, GatewayProfile

EMAIL = "bench.customer@example.com"
BIG_EMAIL = "big.customer@example.com"
AGENT = Actor(platform="bench", id="agent", name="Bench Agent", roles=frozenset({Role.agent}))
CHANNEL = Channel(platform="bench", id="ops", kind=ChannelKind.internal)


# --- part 1: ledger lookup latency -------------------------------------------------------


async def ledger_latency(args: argparse.Namespace) -> bool:
    async with bench_services(database_url=args.database_url, redis_url=args.redis_url) as stores:
        services = stores.services
        services.settings.lookup.cache_seconds = 0  # every lookup reads the ledger, not Redis
        await add_customer(services, customer_id="cus_bench", email=EMAIL, charges=args.charges)
        if args.big_charges:
            await add_customer(services, customer_id="cus_big", email=BIG_EMAIL,
                               charges=args.big_charges, charge_prefix="ch_big")  # fmt: skip
        if args.other_customers:
            await add_other_customers(services, args.other_customers)
        ctx = Context(services, AGENT, CHANNEL)

        # Check once that both paths really find the customer and every charge.
        reply = await dispatch(ctx, f"lookup {EMAIL}")
        if reply.error is not None or not reply.cards:
            print(f"lookup through dispatch failed: {reply.error}", file=sys.stderr)
            return False
        profile = await services.gateways.lookup(EMAIL)
        loaded = len(profile.charges())
        if loaded != min(args.charges, services.settings.lookup.max_charges) or profile.failures:
            print(
                f"gateways.lookup loaded {loaded} charges, failures {profile.failures}",
                file=sys.stderr,
            )
            return False

        async def via_dispatch() -> None:
            await dispatch(ctx, f"lookup {EMAIL}")

        async def via_gateways() -> None:
            await services.gateways.lookup(EMAIL)

        async def big_via_gateways() -> None:
            await services.gateways.lookup(BIG_EMAIL)

        rows = []
        paths = [
            ("dispatch(ctx, 'lookup <email>')", via_dispatch),
            ("services.gateways.lookup(email)", via_gateways),
        ]
        if args.big_charges:
            paths.append(
                (f"the same, a customer with {args.big_charges:,} charges", big_via_gateways)
            )
        medians = []
        for label, call in paths:
            s = summarize(await timed(call, args.runs, args.warmup))
            medians.append(s.p50)
            rows.append([label, s.runs, ms(s.p50), ms(s.p95), ms(s.p99), ms(s.mean), ms(s.maximum)])
        if args.big_charges:
            print(f"{args.big_charges:,}-charge customer / {args.charges:,}-charge customer "
                  f"(p50, gateways.lookup, cap {services.settings.lookup.max_charges:,}): "
                  f"{medians[2] / medians[1]:.2f}x")  # fmt: skip
        print(
            table(
                ["path", "runs", "p50 ms", "p95 ms", "p99 ms", "mean ms", "max ms"],
                rows,
                title=(
                    f"Ledger lookup: 1 customer, {args.charges:,} charges "
                    f"({loaded:,} loaded; {args.other_customers:,} other customers; {args.warmup} warm-up runs)\n"
                    f"database: {stores.database}\nredis:    {stores.redis}"
                ),
            )
        )
    return True


# --- part 2: fan-out ---------------------------------------------------------------------


class SleepyGateway(Gateway):
    """A gateway whose every lookup takes `delay` seconds and finds one customer."""

    capabilities = frozenset({Capability.lookup})

    def __init__(self, name: str, delay: float) -> None:
        self.name = name
        self.delay = delay

    async def lookup(self, query: LookupQuery) -> list[GatewayProfile]:
        await asyncio.sleep(self.delay)
        customer = Customer(gateway=self.name, id=f"cus_{self.name}", email=query.value)
        return [GatewayProfile(gateway=self.name, customer=customer)]


async def fan_out(args: argparse.Namespace) -> bool:
    ok = True
    rows = []
    for latency_ms in (50, 200):
        delay = latency_ms / 1000
        for n in (1, 2, 4, 8):
            gateways = Gateways([SleepyGateway(f"gw{i}", delay) for i in range(n)], timeout=5)
            samples = await timed(lambda g=gateways: g.lookup(EMAIL), args.fan_runs, 1)
            profile = await gateways.lookup(EMAIL)
            if len(profile.profiles) != n or profile.failures:
                ok = False
            s = summarize(samples)
            rows.append(
                [
                    n,
                    latency_ms,
                    n * latency_ms,
                    ms(s.mean),
                    ms(s.maximum),
                    f"{s.mean / delay:.2f}x",
                    f"{s.mean / (n * delay):.2f}x",
                    f"{len(profile.profiles)} ok, {len(profile.failures)} failed",
                ]
            )

    # One gateway past the timeout: the lookup costs the timeout, the others still answer.
    timeout, slow = 0.3, 2.0
    gateways = Gateways(
        [SleepyGateway(f"gw{i}", 0.05) for i in range(3)] + [SleepyGateway("slow", slow)],
        timeout=timeout,
    )
    samples = await timed(lambda: gateways.lookup(EMAIL), args.timeout_runs, 0)
    profile = await gateways.lookup(EMAIL)
    failures = "; ".join(f"{f.gateway}: {f.code} ({f.message})" for f in profile.failures)
    if len(profile.profiles) != 3 or [f.gateway for f in profile.failures] != ["slow"]:
        ok = False
    s = summarize(samples)
    rows.append(
        [
            "3+1 slow",
            "50 / 2000",
            "-",
            ms(s.mean),
            ms(s.maximum),
            f"{s.mean / timeout:.2f}x timeout",
            "-",
            f"{len(profile.profiles)} ok, {len(profile.failures)} failed: {failures}",
        ]
    )
    print(
        table(
            [
                "N gateways",
                "L ms",
                "N×L ms",
                "wall mean ms",
                "wall max ms",
                "mean / L",
                "mean / N×L",
                "result",
            ],
            rows,
            title=(
                f"Fan-out: Gateways([...], timeout=5).lookup over N gateways sleeping L ms "
                f"({args.fan_runs} runs each; last row: timeout={timeout:g} s, "
                f"one gateway sleeps {slow:g} s, {args.timeout_runs} runs)"
            ),
        )
    )
    return ok


async def main(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    ok = await ledger_latency(args)
    ok = await fan_out(args) and ok
    print(f"\ntotal bench time: {time.perf_counter() - started:.1f} s")
    if not ok:
        print("FAILED: a lookup did not return what it should (see above)", file=sys.stderr)
        return 1
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="timed lookups per path")
    parser.add_argument("--warmup", type=int, default=20, help="untimed lookups first")
    parser.add_argument("--charges", type=int, default=1000, help="charges on the customer")
    parser.add_argument(
        "--big-charges", type=int, default=100_000,
        help="charges on a second customer, read at the same cap (0: none)",
    )  # fmt: skip
    parser.add_argument(
        "--other-customers", type=int, default=0, help="unrelated customers in the ledger too"
    )
    parser.add_argument("--fan-runs", type=int, default=10, help="timed runs per fan-out row")
    parser.add_argument("--timeout-runs", type=int, default=5, help="timed runs of the timeout row")
    parser.add_argument("--database-url", help="PostgreSQL URL (a fresh database is made)")
    parser.add_argument("--redis-url", help="Redis server instead of the embedded engine")
    parser.add_argument("--verbose", action="store_true", help="show the bot's logs")
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    quiet_logs(arguments.verbose)
    sys.exit(asyncio.run(main(arguments)))
