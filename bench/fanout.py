"""Lookup fan-out across all six gateways, each provider behind injected latency.

The ledger is SQL; Stripe, PayPal, Braintree, Recurly and WooCommerce are our
HTTP-level emulators (chargedesk_emulators) driven by the official SDKs (our
httpx client for WooCommerce), each holding every API request for D ms. The
same customer, with CHARGES payments, is in each. One lookup makes several
requests per gateway, so each gateway alone takes some multiple of D; the
fan-out should take about as long as the slowest of them (goal: within 1.3x),
not their sum. A second table gives each gateway's API requests and CPU per
lookup; the third, the same lookup served from the Redis cache.

Each emulator runs in a process of its own, as a provider is another machine:
in the bot's process their CPU would count as the bot's and compete with the
gateways' clients for the GIL. The bot's CPU per lookup is shown: what one
Python process spends on six lookups adds up, whatever the concurrency.

    python bench/fanout.py [--delays 20 50] [--runs 10]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractContextManager, AsyncExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

# The emulators live in the checkout (emulators/); this script runs from one.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import add_customer, bench_services, ms, quiet_logs, summarize, table, timed

from bot import lookup_cache
from bot.gateways.base import Gateway, LookupQuery
from bot.gateways.braintree.gateway import BraintreeGateway
from bot.gateways.paypal.gateway import PayPalGateway
from bot.gateways.recurly.gateway import RecurlyGateway
from bot.gateways.registry import Gateways
from bot.gateways.stripe.gateway import StripeGateway
from bot.gateways.woocommerce.gateway import WooCommerceGateway
from bot.services import Services
from bot.settings import (
    BraintreeSettings,
    PayPalSettings,
    RecurlySettings,
    StripeSettings,
    WooCommerceSettings,
)
from chargedesk_emulators.braintree import braintree_api
from chargedesk_emulators.paypal import paypal_api
from chargedesk_emulators.recurly import recurly_api
from chargedesk_emulators.stripe import StripeEmulator
from chargedesk_emulators.woocommerce import woocommerce_api

EMAIL = "fan.out@example.com"
CHARGES = 20
# "Every request from now on": far more than a run makes (about 25 lookups per delay and
# gateway at --runs 10), few enough that the emulators' queues of delays stay cheap to pop.
HELD = 100_000


# --- the emulators, each seeded with the customer (run in their own processes) ------------


@dataclass
class Served:
    """A running, seeded emulator: the settings that reach it, and its switches."""

    settings: dict[str, Any]  # plain values, validated into the gateway's settings
    hold: Callable[[float], None]  # hold every API request this many seconds (0: at once)
    requests: Callable[[], int]  # API requests answered so far


def _slow_next_hold(api: Any) -> Callable[[float], None]:
    """`hold` for the emulators whose switch is `slow_next(count, seconds)`."""

    def hold(seconds: float) -> None:
        with api._lock:  # the delays an earlier hold queued (no emulator has a switch for it)
            api._delays.clear()
        if seconds:
            api.slow_next(HELD, seconds)

    return hold


@contextmanager
def stripe_served() -> Iterator[Served]:
    api = StripeEmulator()
    api.start()
    try:
        customer = api.add_customer(EMAIL, "Fan Out")
        for _ in range(CHARGES):
            api.add_payment(customer["id"], 2500, "EUR")

        def hold(seconds: float) -> None:
            with api._lock:
                api._faults.clear()
            if seconds:
                api.delay_next(seconds, HELD)

        settings = {"api_key": api.api_key or "sk_test_bench", "base_url": api.url}
        yield Served(settings, hold, requests=lambda: len(api.requests))
    finally:
        api.stop()


@contextmanager
def paypal_served() -> Iterator[Served]:
    with paypal_api() as api:
        payer = api.add_payer(EMAIL, "Fan", "Out")
        for day in range(CHARGES):
            api.add_capture(payer, "25.00", "USD", days_ago=day * 3)
        settings = {
            "client_id": api.client_id,
            "client_secret": api.client_secret,
            "base_url": api.base_url,
        }
        yield Served(settings, _slow_next_hold(api), requests=lambda: len(api.exchanges))


@contextmanager
def braintree_served() -> Iterator[Served]:
    with braintree_api() as api:
        customer = api.add_customer(EMAIL, "Fan", "Out")
        for day in range(CHARGES):
            api.add_sale(customer, "25.00", "USD", status="settled", days_ago=day * 3)
        settings = {
            "merchant_id": api.merchant_id,
            "public_key": api.public_key,
            "private_key": api.private_key,
            "base_url": api.base_url,
        }
        yield Served(settings, _slow_next_hold(api), requests=lambda: len(api.exchanges))


@contextmanager
def recurly_served() -> Iterator[Served]:
    with recurly_api() as api:
        account = api.add_account(EMAIL, "Fan", "Out", code="fan-out")
        for day in range(CHARGES):
            api.add_purchase(account, [(f"Order {day}", "25.00", 1)], "USD", days_ago=day * 3)
        settings = {"api_key": api.api_key, "base_url": api.base_url, "subdomain": api.subdomain}
        yield Served(settings, _slow_next_hold(api), requests=lambda: len(api.exchanges))


@contextmanager
def woocommerce_served() -> Iterator[Served]:
    with woocommerce_api() as api:
        user = api.add_customer(EMAIL, "Fan", "Out")
        for day in range(CHARGES):
            api.add_order("25.00", customer_id=user, days_ago=day * 3)
        settings = {
            "store_url": api.base_url,
            "consumer_key": api.consumer_key,
            "consumer_secret": api.consumer_secret,
        }
        yield Served(settings, _slow_next_hold(api), requests=lambda: len(api.exchanges))


def emulator_process(serve: Callable[[], AbstractContextManager[Served]], conn: Connection) -> None:
    """A child process: serve one seeded emulator and obey the bench until told to stop."""
    with serve() as served:
        conn.send(served.settings)
        while (message := conn.recv()) != "stop":
            verb, seconds = message
            conn.send(served.hold(seconds) if verb == "hold" else served.requests())


# --- the gateways, in the bench's process ---------------------------------------------------


@dataclass(frozen=True)
class Provider:
    serve: Callable[[], AbstractContextManager[Served]]
    gateway: Callable[[dict[str, Any]], Gateway]


# Each gateway gives up after 5 s (the bot's default is 10); retries back off briefly.
PROVIDERS = [
    Provider(stripe_served, lambda s: StripeGateway(StripeSettings.model_validate(s))),
    Provider(
        paypal_served,
        lambda s: PayPalGateway(PayPalSettings.model_validate(s), backoff=0.01),
    ),
    Provider(
        braintree_served,
        lambda s: BraintreeGateway(BraintreeSettings.model_validate(s), backoff=0.01),
    ),
    Provider(
        recurly_served,
        lambda s: RecurlyGateway(RecurlySettings.model_validate(s), backoff=0.01),
    ),
    Provider(
        woocommerce_served,
        lambda s: WooCommerceGateway(WooCommerceSettings.model_validate(s), backoff=0.01),
    ),
]


@dataclass
class Backend:
    """One gateway of the fan-out, and the switches of the emulator behind it (if any)."""

    gateway: Gateway
    conn: Connection | None = None  # to the emulator's process; None for the ledger

    def hold(self, seconds: float) -> None:
        self._ask("hold", seconds)

    def requests(self) -> int:
        return int(self._ask("requests") or 0)

    def _ask(self, verb: str, seconds: float = 0.0) -> Any:
        if self.conn is None:
            return None
        self.conn.send((verb, seconds))
        return self.conn.recv()


async def start(providers: list[Provider], stack: AsyncExitStack) -> list[Backend]:
    """Each provider's emulator in its own process, seeded, and our gateway on it."""
    spawn = multiprocessing.get_context("spawn")  # a fork would copy the bot's threads
    started = []
    for provider in providers:
        conn, child = spawn.Pipe()
        process = spawn.Process(target=emulator_process, args=(provider.serve, child), daemon=True)
        process.start()
        stack.callback(stop, process, conn)
        started.append((provider, conn))
    backends = []
    for provider, conn in started:
        settings = await asyncio.to_thread(conn.recv)
        backends.append(Backend(provider.gateway(settings | {"timeout": 5}), conn))
    return backends


def stop(process: multiprocessing.process.BaseProcess, conn: Connection) -> None:
    with suppress(OSError):  # it is gone already
        conn.send("stop")
    process.join(timeout=15)
    if process.is_alive():
        process.terminate()
        process.join()


# --- measuring -----------------------------------------------------------------------------


async def requests_per_lookup(backend: Backend, query: LookupQuery) -> int:
    before = backend.requests()
    await backend.gateway.lookup(query)
    return backend.requests() - before


@dataclass
class Samples:
    """Wall and CPU seconds of one kind of lookup; CPU is this process's, threads included."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    async def take(self, call: Callable[[], Awaitable[object]]) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        await call()
        self.wall.append(time.perf_counter() - wall)
        self.cpu.append(time.process_time() - cpu)

    @property
    def mean(self) -> float:
        return summarize(self.wall).mean

    @property
    def cpu_mean(self) -> float:
        return statistics.fmean(self.cpu)


async def alone(backends: list[Backend], query: LookupQuery, runs: int) -> dict[str, Samples]:
    """Each gateway's lookup by itself, `runs` times after one untimed round.

    The gateways take turns, one lookup each per round: whatever else loads the machine
    falls on all of them alike, and no client's kept-alive connections sit idle past the
    emulators' keep-alive timeout (uvicorn closes them after 5 s).
    """
    samples = {b.gateway.name: Samples() for b in backends}
    for round_ in range(runs + 1):
        for backend in backends:
            if round_:
                await samples[backend.gateway.name].take(lambda g=backend.gateway: g.lookup(query))
            else:
                await backend.gateway.lookup(query)
    return samples


async def fanned(services: Services, runs: int) -> Samples:
    """The lookup through every gateway at once, `runs` times after one untimed."""
    await services.gateways.lookup(EMAIL)
    samples = Samples()
    for _ in range(runs):
        await samples.take(lambda: services.gateways.lookup(EMAIL))
    return samples


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--delays", type=int, nargs="+", default=[20, 50], help="ms each API request is held"
    )
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    quiet_logs(args.verbose)

    worst = 0.0
    complete = True
    async with AsyncExitStack() as stack:
        stores = await stack.enter_async_context(bench_services())
        services = stores.services
        await add_customer(services, customer_id="cus_fan", email=EMAIL, charges=CHARGES)
        backends = [Backend(services.gateways.get("ledger"))]
        backends += await start(PROVIDERS, stack)
        # Closed with the services, after the emulators have stopped.
        services.gateways = Gateways([b.gateway for b in backends], timeout=30)
        names = [b.gateway.name for b in backends]
        query = LookupQuery.parse(EMAIL)

        def hold(seconds: float) -> None:
            for backend in backends:
                backend.hold(seconds)

        sent = [await requests_per_lookup(b, query) for b in backends]
        print(
            f"Lookup of {EMAIL} ({CHARGES} payments in each gateway), {args.runs} runs each "
            f"after one untimed; each emulator in its own process, {os.cpu_count()} CPUs"
        )

        rows = []
        cpu: dict[str, list[float]] = {name: [] for name in names}
        for delay in args.delays:
            hold(delay / 1000)
            each = await alone(backends, query, args.runs)
            for name, samples in each.items():
                cpu[name] += samples.cpu
            slowest = max(s.mean for s in each.values())
            fan = await fanned(services, args.runs)
            worst = max(worst, fan.mean / slowest)
            found = await services.gateways.lookup(EMAIL)
            counts = [len(p.charges) for p in found.profiles]
            complete &= (
                not found.failures
                and len(found.profiles) == len(backends)
                and all(c == CHARGES for c in counts)
            )
            wall = summarize(fan.wall)
            rows.append([
                f"{delay}", *(ms(each[n].mean) for n in names), ms(sum(s.mean for s in each.values())),
                ms(wall.mean), ms(wall.p95), ms(fan.cpu_mean), f"{fan.mean / slowest:.2f}x",
                f"{len(found.profiles)} profiles, {sum(counts)} charges, {len(found.failures)} failures",
            ])  # fmt: skip
        print(table(
            ["D ms", *(f"{n} ms" for n in names), "sum ms", "fan-out mean ms", "fan-out p95 ms",
             "fan-out CPU ms", "vs slowest", "result"],
            rows,
            title="'<gateway> ms': that gateway's lookup alone (mean); 'vs slowest': fan-out mean "
                  "/ the slowest gateway alone, in the same run; CPU: the bot's process (threads "
                  "included, emulators not), mean per lookup",
        ))  # fmt: skip
        print()
        print(table(
            ["gateway", "API requests per lookup", "CPU ms per lookup alone"],
            [[n, sent[i], ms(statistics.fmean(cpu[n]))] for i, n in enumerate(names)],
            title="What each gateway's lookup costs the bot (CPU over all delays)",
        ))  # fmt: skip

        last = args.delays[-1]
        hold(last / 1000)
        await lookup_cache.forget(services, "ledger", "cus_fan")
        cold = await timed(lambda: lookup_cache.lookup(services, EMAIL), 1)
        warm = summarize(await timed(lambda: lookup_cache.lookup(services, EMAIL), 200))
        print()
        print(table(
            ["lookup", "runs", "mean ms", "p50 ms", "p99 ms"],
            [["cold (fan-out, then cached)", 1, ms(cold[0]), ms(cold[0]), ms(cold[0])],
             ["warm (from the Redis cache)", 200, ms(warm.mean), ms(warm.p50), ms(warm.p99)]],
            title=f"Cached lookup (D = {last} ms, cache {services.settings.lookup.cache_seconds} s)",
        ))  # fmt: skip
    print(f"\nworst fan-out / slowest gateway: {worst:.2f}x (goal: 1.3x or less)")
    if not complete:
        print(f"a lookup missed a gateway or a payment: expected {CHARGES} charges from each")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
