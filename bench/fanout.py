"""Lookup fan-out across the ledger, Stripe and PayPal, each behind injected latency.

Stripe and PayPal are our HTTP-level emulators (chargedesk_emulators) driven by the
official SDKs, with every API request held for D ms. One lookup makes several
requests per gateway, so each gateway alone takes some multiple of D; the
fan-out should take about as long as the slowest of them (goal: within 1.3x),
not their sum. The warm row is the same lookup served from the Redis cache.

    python bench/fanout.py [--delays 20 50] [--runs 10]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

# The emulators live in the test tree; this script runs from a checkout.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import add_customer, bench_services, ms, quiet_logs, summarize, table, timed

from bot import lookup_cache
from bot.gateways.base import Gateway, LookupQuery
from bot.gateways.paypal.gateway import PayPalGateway
from bot.gateways.registry import Gateways
from bot.gateways.stripe.gateway import StripeGateway
from bot.settings import PayPalSettings, StripeSettings
from chargedesk_emulators.paypal import PayPalEmulator, paypal_api
from chargedesk_emulators.stripe import StripeEmulator

EMAIL = "fan.out@example.com"
CHARGES = 20
HELD = 1_000_000  # "every request from now on"


def seed(stripe: StripeEmulator, paypal: PayPalEmulator) -> None:
    customer = stripe.add_customer(EMAIL, "Fan Out")
    for _ in range(CHARGES):
        stripe.add_payment(customer["id"], 2500, "EUR")
    payer = paypal.add_payer(EMAIL, "Fan", "Out")
    for day in range(CHARGES):
        paypal.add_capture(payer, "25.00", "USD", days_ago=day * 3)


def hold(stripe: StripeEmulator, paypal: PayPalEmulator, seconds: float) -> None:
    with stripe._lock:
        stripe._faults.clear()
    with paypal._lock:
        paypal._delays.clear()
    if seconds:
        stripe.delay_next(seconds, HELD)
        paypal.slow_next(HELD, seconds)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--delays", type=int, nargs="+", default=[20, 50], help="ms each API request is held"
    )
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    quiet_logs(args.verbose)

    stripe = StripeEmulator()
    await asyncio.to_thread(stripe.start)
    worst = 0.0
    try:
        with paypal_api() as paypal:
            seed(stripe, paypal)
            async with bench_services() as stores:
                services = stores.services
                await add_customer(services, customer_id="cus_fan", email=EMAIL, charges=CHARGES)
                each: list[Gateway] = [
                    services.gateways.get("ledger"),
                    StripeGateway(
                        StripeSettings(
                            api_key=stripe.api_key or "sk_test_bench",
                            base_url=stripe.url,
                            timeout=5,
                        )
                    ),
                    PayPalGateway(
                        PayPalSettings(
                            client_id=paypal.client_id,
                            client_secret=paypal.client_secret,
                            base_url=paypal.base_url,
                            timeout=5,
                        ),
                        backoff=0.01,
                    ),
                ]
                services.gateways = Gateways(each, timeout=30)
                query = LookupQuery.parse(EMAIL)
                rows = []
                for delay in args.delays:
                    hold(stripe, paypal, delay / 1000)
                    alone = {}
                    for gateway in each:
                        alone[gateway.name] = summarize(
                            await timed(lambda g=gateway: g.lookup(query), args.runs)
                        ).mean
                    slowest = max(alone.values())
                    fan = summarize(await timed(lambda: services.gateways.lookup(EMAIL), args.runs))
                    total = sum(alone.values())
                    worst = max(worst, fan.mean / slowest)
                    found = await services.gateways.lookup(EMAIL)
                    rows.append([
                        f"{delay}", ms(alone["ledger"]), ms(alone["stripe"]), ms(alone["paypal"]), ms(total),
                        ms(fan.mean), ms(fan.p95), f"{fan.mean / slowest:.2f}x",
                        f"{len(found.profiles)} profiles, {len(found.failures)} failures",
                    ])  # fmt: skip
                print(table(
                    ["D ms", "ledger ms", "stripe ms", "paypal ms", "sum ms", "fan-out mean ms", "fan-out p95 ms",
                     "vs slowest", "result"],
                    rows,
                    title=f"Lookup of {EMAIL} ({CHARGES} charges per gateway), {args.runs} runs each; "
                          "'stripe ms' etc.: that gateway alone",
                ))  # fmt: skip

                hold(stripe, paypal, args.delays[-1] / 1000)
                await lookup_cache.forget(services, "ledger", "cus_fan")
                cold = await timed(lambda: lookup_cache.lookup(services, EMAIL), 1)
                warm = summarize(await timed(lambda: lookup_cache.lookup(services, EMAIL), 200))
                print()
                print(table(
                    ["lookup", "runs", "mean ms", "p50 ms", "p99 ms"],
                    [["cold (fan-out, then cached)", 1, ms(cold[0]), ms(cold[0]), ms(cold[0])],
                     ["warm (from the Redis cache)", 200, ms(warm.mean), ms(warm.p50), ms(warm.p99)]],
                    title=f"Cached lookup (D = {args.delays[-1]} ms, cache {services.settings.lookup.cache_seconds} s)",
                ))  # fmt: skip
                for gateway in each[1:]:
                    await gateway.close()
    finally:
        await asyncio.to_thread(stripe.stop)
    print(f"\nworst fan-out / slowest gateway: {worst:.2f}x (goal: 1.3x or less)")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
