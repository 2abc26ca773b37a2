"""Many agents at once: 100 and 500 concurrent `/billing lookup` in Slack, every one answered.

    cd /work/main && PYTHONPATH=. python bench/concurrency.py [--bursts 100 500]

Signed slash commands go into `create_app()` (signature check, ack, the lazy listener)
through httpx's ASGITransport, all of a burst at once; the cards go to the Slack Web API
emulator (chargedesk_emulators.slack). The ledger holds `--customers` customers with
`--charges` charges each (1,000), and the lookup cache is off: every lookup reads the
ledger and builds a full card. Each agent asks from a channel of their own, and the
workspace is as a running team has it (who and where already known to the bot), so
Slack's per-channel posting limit and first-sight users.info calls are not what is timed.

Measured, per burst, beside one lookup alone in the same run (the floor):
- cards delivered / requests, and busy notices ("N lookups ahead of yours; the card
  follows", sent when a lookup waited `lookup.busy_notice` s in line);
- false "no customer matches" (must be 0), and any other refusal ("could not answer");
- time to card (request sent -> card posted at the emulator): p50 and p99, and p99 as a
  multiple of the floor;
- ack p99 (the HTTP answer to the slash command) under the burst.

Exit status 1 if any request got no card or any false "no customer" was said.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from _common import (
    add_customer,
    bench_services,
    ms,
    on_fake_slack,
    percentile,
    quiet_logs,
    table,
)
from slack_sdk.signature import SignatureVerifier

from bot.settings import SlackSettings
from bot.web import create_app
from chargedesk_emulators.slack import TEAM_ID, Call, SlackAPI

SECRET = "bench-signing-secret-0123456789ab"


def agent(i: int) -> str:
    return f"U0BENCH{i:04d}"


def channel(i: int) -> str:
    return f"C0BENCH{i:04d}"


def email(j: int) -> str:
    return f"bench.customer{j}@example.com"


def signed(api: SlackAPI, i: int, text: str) -> tuple[str, dict[str, str]]:
    """Agent i's `/billing <text>` from their channel, as Slack signs it, stamped now."""
    body = urlencode({
        "token": "legacy", "team_id": TEAM_ID, "team_domain": "bench", "channel_id": channel(i),
        "channel_name": f"ops-{i}", "user_id": agent(i), "user_name": f"agent{i}",
        "command": "/billing", "text": text, "api_app_id": "A0BENCH001",
        "response_url": api.response_url(),
        "trigger_id": f"{i}.{int(time.time())}.{secrets.token_hex(8)}",
    })  # fmt: skip
    stamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": SignatureVerifier(SECRET).generate_signature(
            timestamp=stamp, body=body
        ),
    }
    return body, headers


def said(call: Call) -> str:
    return str(call.params.get("text") or "")


class Run:
    """Requests sent by agents 0..n-1 at once; what came back."""

    def __init__(self, api: SlackAPI, http: httpx.AsyncClient, customers: int) -> None:
        self.api, self.http, self.customers = api, http, customers

    async def burst(self, agents: range) -> dict[str, object]:
        before = {m: len(self.api.of(m)) for m in ("chat.postMessage", "response_url", "chat.postEphemeral")}  # fmt: skip
        sent: dict[str, float] = {}
        acks: list[float] = []

        async def one(i: int) -> None:
            body, headers = signed(self.api, i, f"lookup {email(i % self.customers)}")
            sent[channel(i)] = time.monotonic()
            answer = await self.http.post("/slack/events", content=body, headers=headers)
            acks.append(time.monotonic() - sent[channel(i)])
            if answer.status_code != 200:
                raise RuntimeError(f"ack was {answer.status_code}: {answer.text}")

        await asyncio.gather(*(one(i) for i in agents))
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:  # the cards, or a refusal, for every request
            cards = self.api.of("chat.postMessage")[before["chat.postMessage"] :]
            private = (
                self.api.of("response_url")[before["response_url"] :]
                + self.api.of("chat.postEphemeral")[before["chat.postEphemeral"] :]
            )
            refusals = [c for c in private if not said(c).startswith("Busy: ")]
            if len(cards) + len(refusals) >= len(agents):
                break
            await asyncio.sleep(0.05)
        first: dict[str, Call] = {}
        for card in cards:
            first.setdefault(card.params["channel"], card)
        return {
            "requests": len(agents),
            "cards": sum(1 for c in first.values() if c.params["channel"] in sent),
            "times": [first[c].at - sent[c] for c in sent if c in first],
            "acks": acks,
            "busy": sum(1 for c in private if said(c).startswith("Busy: ")),
            "no_match": sum(1 for c in refusals if "no customer matches" in said(c)),
            "refused": [said(c) for c in refusals],
        }


async def bench(args: argparse.Namespace, api: SlackAPI) -> bool:
    most = max(args.bursts)
    for i in range(most):
        api.channel(channel(i), f"ops-{i}", private=True)
        api.user(agent(i), f"Agent {i}")
    async with bench_services(database_url=args.database_url, redis_url=args.redis_url) as stores:
        services = stores.services
        for j in range(args.customers):
            await add_customer(services, customer_id=f"cus_bench{j}", email=email(j),
                               charges=args.charges, charge_prefix=f"ch{j}")  # fmt: skip
        lookups = services.settings.lookup
        lookups.cache_seconds = 0  # every lookup reads the ledger and builds the card
        if args.concurrency:
            lookups.concurrency = args.concurrency
        services.settings.slack = SlackSettings(
            bot_token=api.token, signing_secret=SECRET, base_url=f"{api.base_url}/api/",
            agents=[agent(i) for i in range(most)],
        )  # fmt: skip
        app = create_app(services.settings, services)
        # Who and where, as the bot has cached them once a team has been at work a while.
        for i in range(most):
            await services.redis.set(services.key("slack", "conversation", channel(i)),
                                     json.dumps("private"), ex=3600)  # fmt: skip
            await services.redis.set(services.key("slack", "user", agent(i)),
                                     json.dumps({"name": f"Agent {i}", "stranger": False}), ex=3600)  # fmt: skip
        results = []
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://bot", timeout=600
            ) as http,
        ):
            run = Run(api, http, args.customers)
            alone: list[float] = []
            alone_acks: list[float] = []
            for k in range(args.alone + 2):  # two warm-ups, then one lookup at a time
                got = await run.burst(range(k % most, k % most + 1))
                if k >= 2:
                    alone += got["times"]  # type: ignore[arg-type]
                    alone_acks += got["acks"]  # type: ignore[arg-type]
            floor = statistics.median(alone)
            for n in args.bursts:
                started = time.monotonic()
                got = await run.burst(range(n))
                got["wall"] = time.monotonic() - started
                results.append(got)
            await app.state.slack.idle(60)

    rows = [[f"one lookup alone (floor, median of {len(alone)})", len(alone), len(alone), 0,
             0, ms(floor), ms(floor), "1.00x", ms(max(alone_acks))]]  # fmt: skip
    ok = True
    for got in results:
        times = sorted(got["times"])  # type: ignore[arg-type]
        acks = sorted(got["acks"])  # type: ignore[arg-type]
        p99 = percentile(times, 99)
        rows.append([
            f"{got['requests']} at once", got["requests"], got["cards"], got["busy"],
            got["no_match"], ms(percentile(times, 50)), ms(p99), f"{p99 / floor:.1f}x",
            ms(percentile(acks, 99)),
        ])  # fmt: skip
        if got["cards"] != got["requests"] or got["no_match"]:
            ok = False
        for text in list(got["refused"])[:3]:  # type: ignore[call-overload]
            print(f"refused: {text}")
    print(
        table(
            ["burst", "requests", "cards", "busy notices", "false no-match", "card p50 ms",
             "card p99 ms", "p99 / floor", "ack p99 ms"],
            rows,
            title=(
                f"Concurrent /billing lookup in Slack: {args.customers} ledger customers x "
                f"{args.charges:,} charges, cache off; lookup.concurrency="
                f"{services.settings.lookup.concurrency}, shared_concurrency="
                f"{services.settings.lookup.shared_concurrency}, busy notice after "
                f"{services.settings.lookup.busy_notice:g} s, gateway timeout "
                f"{services.settings.lookup.timeout:g} s\n"
                f"database: {stores.database}\nredis:    {stores.redis}"
            ),
        )
    )  # fmt: skip
    verdict = (
        "every request got its card, no false no-match"
        if ok
        else ("a request got no card, or a false no-match")
    )
    print(f"\n{'PASS' if ok else 'FAIL'}: {verdict}")
    return ok


async def main(args: argparse.Namespace) -> int:
    return await on_fake_slack(bench, args)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bursts", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--customers", type=int, default=10, help="ledger customers asked")
    parser.add_argument("--charges", type=int, default=1000, help="charges per customer")
    parser.add_argument("--alone", type=int, default=9, help="lookups one at a time (floor)")
    parser.add_argument("--concurrency", type=int, help="lookup.concurrency (default: setting)")
    parser.add_argument("--database-url", help="PostgreSQL or SQLite URL (default: temp SQLite)")
    parser.add_argument("--redis-url", help="Redis URL (default: embedded Valkey)")
    parser.add_argument("--verbose", action="store_true", help="show the bot's logs")
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    quiet_logs(arguments.verbose)
    sys.exit(asyncio.run(main(arguments)))
