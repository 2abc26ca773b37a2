"""Fault soak: several bot processes on PostgreSQL and Redis, killed and restarted under load.

    cd /work/main && PYTHONPATH=. python bench/soak.py --seconds 300
    cd /work/main && PYTHONPATH=. python bench/soak.py --short      # CI: 2 min, 6 at most

A worker SIGKILLed in the middle of a job leaves that job to arq's in-progress key, which
expires after job_timeout + 10 s (310 s): the settle may take that long, hence "6 at most".

Starts, on loopback only and on free ports, a throwaway PostgreSQL (initdb + pg_ctl in a
temp folder, run as the `postgres` user when started as root) and a throwaway Redis, then
3 `chargedesk serve` and 2 `chargedesk worker` processes on them (each in its own process
group). In this process: the Stripe emulator, the Slack Web API emulator and an SMTP sink.

The driver, for `--seconds` or `--requests`, whichever comes first, mixes signed Slack
requests into random web processes (lookups, refunds within and above the agent's limit,
on-demand receipts; approvals clicked by two managers at once, some clicked twice, a few
rejected in the same instant) and signed Stripe webhooks (payments, and the events of the
refunds the bot made; some delivered twice at once, shuffled out of order, retried until
acknowledged as Stripe does). Meanwhile it SIGKILLs random web and worker processes (restarted
after a moment), kills and restarts Redis (its data lost: no persistence) and crash-stops and
restarts PostgreSQL.

Then faults and traffic stop, every process is up, and the soak waits (bounded) for the
workers' recovery sweeps, restarting the workers once their sweeps' grace has passed (the
sweeps run at start). It checks, and prints as a table:

- every approved refund executed exactly once: the emulator's refunds = succeeded approvals,
  one refund per approval's idempotency key;
- no approval left `approved` or `executing`;
- one receipt per acknowledged payment, one credit note per refund, numbers gapless;
- every email delivered exactly once by Message-ID at the SMTP sink: each arrived, and any
  second copy (a crash between the server's 250 and the SQL update) has the same bytes;
- `chargedesk audit verify` passes, one `succeeded` audit entry per succeeded approval, and
  no refund of the bot's own audited again as external.

Exits 1 if any invariant is broken, naming it; every process it started is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import glob
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.policy import default as email_policy
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from _common import table
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from bot.store.tables import (
    ApprovalRow,
    AuditEntry,
    DocumentRequest,
    DocumentRow,
    DocumentSeries,
    EmailRow,
)
from chargedesk_emulators.slack import TEAM_ID, Call, SlackAPI, slack_api
from chargedesk_emulators.smtp import FakeSmtp, smtp_server
from chargedesk_emulators.stripe import StripeEmulator

REPO = Path(__file__).resolve().parents[1]
SIGNING_SECRET = "soak-" + secrets.token_hex(16)
WEBHOOK_SECRET = "whsec_soak_" + secrets.token_hex(8)
AGENTS = [f"UAGENT{i:04d}" for i in range(4)]
MANAGERS = ["UMANAGER01", "UMANAGER02"]
# One channel per agent: Slack allows about one chat.postMessage a second per channel, and the
# bot's limiter keeps to that, so one shared channel would queue most approval cards.
CHANNELS = {agent: f"C0SOAKBIL{i}" for i, agent in enumerate(AGENTS)}
CHARGE_MINOR = 50_000  # 500.00 EUR per payment: room for several refunds each
WEBS, WORKERS = 3, 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the servers and processes ------------------------------------------------------------


@dataclass
class Proc:
    """One child in its own process group, restartable; output to a log file."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    user: str | None = None
    popen: subprocess.Popen[bytes] | None = None
    kills: int = 0
    held: bool = False  # stopped on purpose, restarted by whoever stopped it

    def start(self) -> None:
        argv = ["runuser", "-u", self.user, "--", *self.argv] if self.user else self.argv
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                argv, env=self.env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.popen is not None and self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)

    def kill(self) -> None:
        """SIGKILL the whole group and reap it."""
        self.signal(signal.SIGKILL)
        if self.popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=10)

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        self.signal(signal.SIGTERM)
        if self.popen is not None:
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()


def pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found and "postgresql" in os.path.realpath(found):
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not candidates:
        raise SystemExit(f"soak: {name} not found (install PostgreSQL server binaries)")
    return candidates[-1]


class Postgres:
    """A throwaway cluster in `root` on a free port; `crash_restart` stops it with -m immediate."""

    def __init__(self, root: Path) -> None:
        self.root, self.port = root, free_port()
        self.data = root / "data"
        self.user = "postgres" if os.geteuid() == 0 else None
        if self.user:
            shutil.chown(root, self.user, self.user)
        self.restarts = 0

    def _run(self, *argv: str) -> None:
        full = ["runuser", "-u", self.user, "--", *argv] if self.user else list(argv)
        subprocess.run(full, check=True, capture_output=True, cwd=self.root, timeout=120)

    def init(self) -> None:
        self._run(pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                  "--no-sync", "-E", "UTF8")  # fmt: skip
        self.start()

    def start(self) -> None:
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
                   "-c fsync=off -c max_connections=300")  # fmt: skip
        self._run(pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"),
                  "-o", options, "-w", "-t", "60", "start")  # fmt: skip

    def crash_restart(self, down: float) -> None:
        self._run(pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        time.sleep(down)
        self.start()
        self.restarts += 1

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._run(pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"


class Redis:
    """A throwaway redis-server without persistence: a restart loses every key."""

    def __init__(self, root: Path) -> None:
        self.port = free_port()
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(root)]  # fmt: skip
        self.proc = Proc("redis", argv, dict(os.environ), root / "redis.log")
        self.restarts = 0

    def start(self) -> None:
        self.proc.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 1),
            ):
                return
            time.sleep(0.05)
        raise SystemExit("soak: redis-server did not start")

    def restart(self, down: float) -> None:
        self.proc.kill()
        time.sleep(down)
        self.start()
        self.restarts += 1

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


# --- the driver ---------------------------------------------------------------------------


@dataclass
class Tally:
    sent: Counter[str] = field(default_factory=Counter)  # what the driver did, by kind
    failed: Counter[str] = field(default_factory=Counter)  # requests not acknowledged
    retried: Counter[str] = field(default_factory=Counter)  # tries unanswered or answered 5xx
    faults: Counter[str] = field(default_factory=Counter)
    paid: set[str] = field(default_factory=set)  # charges whose payment webhook was acked
    clicked: set[str] = field(default_factory=set)  # approval ids already clicked
    delivered_events: set[str] = field(default_factory=set)  # emulator event ids sent


class Soak:
    def __init__(self, args: argparse.Namespace, root: Path) -> None:
        self.args, self.root = args, root
        self.rng = random.Random(args.seed)
        self.tally = Tally()
        self.pg = Postgres(Path(tempfile.mkdtemp(prefix="chargedesk-soak-pg-")))
        self.redis = Redis(root)
        self.webs: list[Proc] = []
        self.workers: list[Proc] = []
        self.ports: dict[str, int] = {}
        self.charges: list[dict[str, Any]] = []
        self.emails: dict[str, str] = {}  # charge id -> its customer's email
        self.stripe = StripeEmulator()
        self.api: SlackAPI | None = None
        self.smtp: FakeSmtp | None = None
        self.http = httpx.AsyncClient(timeout=10)
        self.stopping = False
        self.last_fault = 0.0
        self.webhooks = asyncio.Semaphore(6)  # events in flight at once
        self.evidence: list[str] = []
        self.keep_database = False
        self.resent = 0  # deliveries repeating a Message-ID already at the sink

    # -- setup --

    def env(self) -> dict[str, str]:
        assert self.api is not None and self.smtp is not None
        keep = {k: v for k, v in os.environ.items() if not k.startswith("CHARGEDESK_")}
        keep.pop("DATABASE_URL", None), keep.pop("REDIS_URL", None)
        return keep | {
            "PYTHONPATH": str(REPO),
            "DATABASE_URL": self.pg.url,
            "REDIS_URL": self.redis.url,
            "SMTP_URL": self.smtp.url(),
            "CHARGEDESK_DATA_DIR": str(self.root / "data"),
            "CHARGEDESK_CONFIG_DIR": str(REPO / "config"),
            "CHARGEDESK_PORTAL__SECRET": "soak-portal-" + "s" * 32,
            "CHARGEDESK_LEDGER__ENABLED": "false",
            "CHARGEDESK_STRIPE__API_KEY": self.stripe.api_key or "",
            "CHARGEDESK_STRIPE__BASE_URL": self.stripe.url,
            "CHARGEDESK_STRIPE__WEBHOOK_SECRET": WEBHOOK_SECRET,
            "CHARGEDESK_SLACK__BOT_TOKEN": self.api.token,
            "CHARGEDESK_SLACK__SIGNING_SECRET": SIGNING_SECRET,
            "CHARGEDESK_SLACK__BASE_URL": f"{self.api.base_url}/api/",
            "CHARGEDESK_SLACK__AGENTS": json.dumps(AGENTS),
            "CHARGEDESK_SLACK__MANAGERS": json.dumps(MANAGERS),
            "CHARGEDESK_DUPLICATE_REQUEST_SECONDS": "0",
            "CHARGEDESK_RECOVER_AFTER_SECONDS": str(self.args.recover_after),
            "CHARGEDESK_INDEX_SYNC_MINUTES": "0",
            "CHARGEDESK_MAIL__RETRY_SECONDS": "2",
            "CHARGEDESK_MAIL__TIMEOUT": "5",
            "CHARGEDESK_SHUTDOWN_SECONDS": "5",
        }

    def bot(self, name: str, *args: str) -> Proc:
        argv = [sys.executable, "-m", "bot", *args]
        return Proc(name, argv, self.env(), self.root / f"{name}.log")

    async def setup(self) -> None:
        (self.root / "data").mkdir()
        await asyncio.to_thread(self.pg.init)
        self.redis.start()
        self.stripe.start()
        self.seed()
        upgrade = self.bot("upgrade", "db", "upgrade")
        upgrade.start()
        assert upgrade.popen is not None
        if await asyncio.to_thread(upgrade.popen.wait) != 0:
            raise SystemExit(f"soak: db upgrade failed, see {upgrade.log}")
        for i in range(WEBS):
            port = free_port()
            web = self.bot(f"web{i}", "serve", "--port", str(port))
            self.ports[web.name] = port
            self.webs.append(web)
        self.workers = [self.bot(f"worker{i}", "worker") for i in range(WORKERS)]
        for proc in [*self.webs, *self.workers]:
            proc.start()
        await asyncio.gather(*(self.healthy(web) for web in self.webs))

    def seed(self) -> None:
        for i in range(self.args.customers):
            email = f"soak{i}@example.com"
            customer = self.stripe.add_customer(email, f"Soak Customer {i}")
            self.charges.append(self.stripe.add_payment(customer["id"], CHARGE_MINOR, "eur"))
            self.emails[self.charges[-1]["id"]] = email

    def populate_slack(self, api: SlackAPI) -> None:
        for channel in CHANNELS.values():
            api.channel(channel, "billing-team", private=True)
        for user in [*AGENTS, *MANAGERS]:
            api.user(user, user.title())

    async def healthy(self, web: Proc, limit: float = 90) -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                answer = await self.http.get(self.url(web) + "/healthz", timeout=2)
                if answer.status_code == 200:
                    return
            await asyncio.sleep(0.2)
        raise SystemExit(f"soak: {web.name} not healthy within {limit:g} s, see {web.log}")

    def url(self, web: Proc) -> str:
        return f"http://127.0.0.1:{self.ports[web.name]}"

    # -- requests into the web processes --

    async def post(self, kind: str, path: str, body: bytes, headers: dict[str, str],
                   *, tries: int = 1) -> httpx.Response | None:  # fmt: skip
        """POST to a random web process; retried on another while unanswered (as Stripe does)."""
        for attempt in range(tries):
            web = self.rng.choice(self.webs)
            try:
                answer = await self.http.post(self.url(web) + path, content=body, headers=headers)
                if answer.status_code < 500:
                    return answer
            except httpx.HTTPError:
                pass
            self.tally.retried[kind] += 1
            await asyncio.sleep(min(0.2 * 2**attempt, 3))
        self.tally.failed[kind] += 1
        return None

    def slack_headers(self, body: str) -> dict[str, str]:
        stamp = str(int(time.time()))
        signature = SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=stamp, body=body)
        return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": signature,
                "Content-Type": "application/x-www-form-urlencoded"}  # fmt: skip

    async def command(self, kind: str, user: str, text: str) -> None:
        assert self.api is not None
        body = urlencode({
            "token": "legacy", "team_id": TEAM_ID, "team_domain": "soak", "channel_id": CHANNELS[user],
            "channel_name": "billing-team", "user_id": user, "user_name": user.lower(),
            "command": "/billing", "text": text, "api_app_id": "A0CHARGE01",
            "is_enterprise_install": "false", "response_url": self.api.response_url(),
            "trigger_id": f"{secrets.randbelow(10**10)}.{secrets.token_hex(8)}",
        })  # fmt: skip
        self.tally.sent[kind] += 1
        await self.post(kind, "/slack/events", body.encode(), self.slack_headers(body))

    async def click(self, user: str, posted: Call, button: dict[str, Any]) -> None:
        assert self.api is not None
        channel, ts = posted.params["channel"], posted.answer["ts"]
        message = {"type": "message", "ts": ts, "text": posted.params.get("text", ""),
                   "blocks": posted.params.get("blocks", [])}  # fmt: skip
        if posted.params.get("thread_ts"):
            message["thread_ts"] = posted.params["thread_ts"]
        payload = {
            "type": "block_actions", "api_app_id": "A0CHARGE01", "token": "legacy",
            "team": {"id": TEAM_ID, "domain": "soak"},
            "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM_ID},
            "container": {"type": "message", "message_ts": ts, "channel_id": channel,
                          "is_ephemeral": False},
            "trigger_id": f"{secrets.randbelow(10**10)}.{secrets.token_hex(8)}",
            "channel": {"id": channel, "name": "billing-team"}, "message": message,
            "response_url": self.api.response_url(),
            "actions": [{**button, "block_id": "b1", "action_ts": f"{time.time():.6f}"}],
        }  # fmt: skip
        body = urlencode({"payload": json.dumps(payload)})
        kind = "click " + button["value"].split()[0]
        self.tally.sent[kind] += 1
        await self.post(kind, "/slack/events", body.encode(), self.slack_headers(body))

    async def webhook(self, event: dict[str, Any]) -> bool:
        body, headers = self.stripe.delivery(event, WEBHOOK_SECRET)
        self.tally.sent["webhook delivery"] += 1
        answer = await self.post("webhook", "/webhooks/stripe", body, headers, tries=12)
        return answer is not None and answer.status_code < 300

    # -- the traffic --

    async def deliver_payments(self, charges: list[dict[str, Any]]) -> None:
        """charge.succeeded for each, shuffled, some twice at once."""
        events = [self.stripe.event("charge.succeeded", self.stripe.get(c["id"])) for c in charges]
        self.rng.shuffle(events)

        async def deliver(event: dict[str, Any]) -> None:
            if any(await self.deliveries(event)):
                self.tally.paid.add(event["data"]["object"]["id"])

        await asyncio.gather(*(deliver(event) for event in events))

    async def deliver_emitted(self) -> None:
        """The events the emulator recorded (the bot's refunds), out of order, some twice."""
        fresh = [e for e in self.stripe.events if e["id"] not in self.tally.delivered_events]
        self.rng.shuffle(fresh)
        self.tally.delivered_events.update(e["id"] for e in fresh)
        await asyncio.gather(*(self.deliveries(event) for event in fresh))

    async def deliveries(self, event: dict[str, Any]) -> list[bool]:
        """One event delivered once, or (three times in ten) twice at the same moment."""
        copies = 2 if self.rng.random() < 0.3 else 1
        async with self.webhooks:
            return list(await asyncio.gather(*(self.webhook(event) for _ in range(copies))))

    async def one_request(self) -> None:
        charge = self.rng.choice(self.charges)
        agent = self.rng.choice(AGENTS)
        roll = self.rng.random()
        if roll < 0.2:
            await self.command("lookup", agent, f"lookup {self.emails[charge['id']]}")
        elif roll < 0.45:
            amount = self.rng.randint(1, 20)  # within the agent's limit (50.00 EUR)
            await self.command("refund within limit", agent,
                               f"refund stripe:{charge['id']} {amount} reason: duplicate charged twice")  # fmt: skip
        elif roll < 0.9:
            amount = self.rng.randint(51, 120)  # above it: a manager approves
            await self.command("refund above limit", agent,
                               f"refund stripe:{charge['id']} {amount} reason: duplicate charged twice")  # fmt: skip
        else:
            await self.command("receipt", agent, f"receipt stripe:{charge['id']} pdf")

    async def approver(self) -> None:
        """Click every new approval card: both managers at once, some twice, a few rejected."""
        assert self.api is not None
        pending: list[asyncio.Task[Any]] = []
        while not self.stopping:
            for call in self.api.of("chat.postMessage"):
                for button in _buttons(call.params.get("blocks") or []):
                    verb, _, approval = str(button.get("value", "")).partition(" ")
                    if verb != "approve" or approval in self.tally.clicked:
                        continue
                    self.tally.clicked.add(approval)
                    clicks = [(m, button) for m in MANAGERS]
                    if self.rng.random() < 0.3:  # a double click
                        clicks.append((self.rng.choice(MANAGERS), button))
                    if self.rng.random() < 0.1:  # someone rejects in the same instant
                        reject = next((b for b in _buttons(call.params["blocks"])
                                       if str(b.get("value", "")).startswith("reject ")), None)  # fmt: skip
                        if reject is not None:
                            clicks.append((MANAGERS[1], reject))
                    pending.append(asyncio.ensure_future(
                        asyncio.gather(*(self.click(m, call, b) for m, b in clicks))))  # fmt: skip
            await asyncio.sleep(0.2)
        await asyncio.gather(*pending, return_exceptions=True)

    async def traffic(self, deadline: float) -> None:
        batch = max(2, len(self.charges) // 4)
        unpaid = list(self.charges)
        made = 0
        while time.monotonic() < deadline and made < self.args.requests:
            if unpaid:
                now_paid, unpaid = unpaid[:batch], unpaid[batch:]
                await self.deliver_payments(now_paid)
            await asyncio.gather(*(self.one_request() for _ in range(self.args.concurrency)))
            made += self.args.concurrency
            await self.deliver_emitted()
            await asyncio.sleep(self.args.pause)
        if unpaid:
            await self.deliver_payments(unpaid)

    # -- the faults --

    async def chaos(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            await asyncio.sleep(self.rng.uniform(0.5, 1.5) * self.args.fault_every)
            if time.monotonic() >= deadline:
                break
            roll = self.rng.random()
            if roll < 0.35:
                await self.kill_and_restart(self.rng.choice(self.webs), "SIGKILL web")
            elif roll < 0.7:
                await self.kill_and_restart(self.rng.choice(self.workers), "SIGKILL worker")
            elif roll < 0.85:
                await asyncio.to_thread(self.redis.restart, self.rng.uniform(0.5, 2))
                self.tally.faults["Redis restart (data lost)"] += 1
            else:
                await asyncio.to_thread(self.pg.crash_restart, self.rng.uniform(0.5, 2))
                self.tally.faults["PostgreSQL crash restart"] += 1
            self.last_fault = time.monotonic()

    async def kill_and_restart(self, proc: Proc, fault: str) -> None:
        proc.held = True  # down on purpose: not the supervisor's to restart
        await asyncio.to_thread(proc.kill)
        proc.kills += 1
        self.tally.faults[fault] += 1
        await asyncio.sleep(self.rng.uniform(0.2, 1.5))
        proc.start()
        proc.held = False

    async def supervise(self) -> None:
        """What a process manager does: start again a process that exited on its own (a web
        process whose start met PostgreSQL down exits, as it should)."""
        while not self.stopping:
            for proc in [*self.webs, *self.workers]:
                if not proc.held and not proc.alive:
                    self.tally.faults[f"exited on its own, restarted: {proc.name[:-1]}"] += 1
                    proc.start()
            await asyncio.sleep(0.5)

    # -- settling and the checks --

    async def settle(self, limit: float) -> tuple[float, dict[str, int]]:
        """Wait, bounded, until nothing is left to do; workers restarted after the sweeps' grace."""
        started = time.monotonic()
        await asyncio.gather(*(self.healthy(web) for web in self.webs))
        restarted = False
        left: dict[str, int] = {}
        quiet = 0  # consecutive checks with nothing left: a job under way may still add an email
        while time.monotonic() - started < limit:
            await self.deliver_emitted()
            left = await self.unfinished()
            quiet = 0 if any(left.values()) else quiet + 1
            if quiet == 3:
                break
            # The sweeps skip fresh rows for 60 s (documents) and run at a worker's start.
            if not restarted and time.monotonic() - self.last_fault > 62:
                for proc in self.workers:
                    proc.held = True
                    await asyncio.to_thread(proc.stop)
                    proc.start()
                    proc.held = False
                restarted = True
            await asyncio.sleep(1)
        return time.monotonic() - started, left

    async def unfinished(self) -> dict[str, int]:
        engine = create_async_engine(_asyncpg(self.pg.url))
        try:
            async with engine.connect() as c:
                return {
                    "approvals approved/executing": await c.scalar(
                        select(func.count()).select_from(ApprovalRow)
                        .where(ApprovalRow.state.in_(["approved", "executing"]))),
                    "document requests pending": await c.scalar(
                        select(func.count()).select_from(DocumentRequest)
                        .where(DocumentRequest.state == "pending")),
                    "emails pending/sending": await c.scalar(
                        select(func.count()).select_from(EmailRow)
                        .where(EmailRow.state.in_(["pending", "sending"]))),
                }  # fmt: skip
        except Exception:
            return {"database": 1}
        finally:
            await engine.dispose()

    async def check(self) -> list[tuple[str, str, bool]]:
        """(invariant, figures, held) rows."""
        assert self.smtp is not None
        engine = create_async_engine(_asyncpg(self.pg.url))
        async with engine.connect() as c:
            approvals = (await c.execute(select(ApprovalRow))).mappings().all()
            documents = (await c.execute(
                select(DocumentRow.kind, DocumentRow.entity, DocumentRow.seq, DocumentRow.source_id)
            )).all()  # fmt: skip
            series = {
                (r.entity, r.kind): r.last for r in (await c.execute(select(DocumentSeries))).all()
            }
            emails = (await c.execute(select(EmailRow.state, EmailRow.message))).all()
            audit = (await c.execute(
                select(AuditEntry.approval_id, AuditEntry.outcome, AuditEntry.action)
            )).all()  # fmt: skip
            self.evidence = await _evidence(c, self.stripe)
        await engine.dispose()

        rows: list[tuple[str, str, bool]] = []
        states = Counter(a["state"] for a in approvals)
        succeeded = {
            a["id"] for a in approvals if a["state"] == "succeeded" and a["action"] == "refund"
        }
        refunds = [o for o in self.stripe._of("refund")]
        keys = Counter(o.get("metadata", {}).get("chargedesk_idempotency_key") for o in refunds)
        doubled = [k for k, n in keys.items() if n > 1]
        unknown = [k for k in keys if k not in succeeded]
        rows.append((
            "approved refunds executed exactly once",
            f"{len(succeeded)} succeeded approvals, {len(refunds)} emulator refunds, "
            f"{len(doubled)} keys refunded twice, {len(unknown)} refunds of no succeeded approval",
            len(refunds) == len(succeeded) and not doubled and not unknown and set(keys) == succeeded,
        ))  # fmt: skip
        stuck = states.get("approved", 0) + states.get("executing", 0)
        rows.append(
            (
                "no approval left approved/executing",
                ", ".join(f"{k} {v}" for k, v in sorted(states.items())),
                stuck == 0,
            )
        )
        receipts = Counter(d.source_id for d in documents if d.kind == "receipt")
        missing_receipts = self.tally.paid - set(receipts)
        rows.append((
            "one receipt per payment",
            f"{len(self.tally.paid)} payments acked, {len(receipts)} receipts, "
            f"{len(missing_receipts)} missing, {sum(n > 1 for n in receipts.values())} doubled",
            not missing_receipts and all(n == 1 for n in receipts.values())
            and set(receipts) <= self.tally.paid,
        ))  # fmt: skip
        credit = Counter(d.source_id for d in documents if d.kind == "credit_note")
        refund_ids = {o["id"] for o in refunds}
        rows.append((
            "one credit note per refund",
            f"{len(refund_ids)} refunds, {len(credit)} credit notes, "
            f"{len(refund_ids - set(credit))} missing, {sum(n > 1 for n in credit.values())} doubled",
            set(credit) == refund_ids and all(n == 1 for n in credit.values()),
        ))  # fmt: skip
        gaps = []
        by_series: dict[tuple[str, str], list[int]] = {}
        for d in documents:
            by_series.setdefault((d.entity, d.kind), []).append(d.seq)
        for key, seqs in by_series.items():
            if sorted(seqs) != list(range(1, len(seqs) + 1)) or series.get(key) != len(seqs):
                gaps.append(f"{key[1]}: {len(seqs)} issued, last {series.get(key)}")
        rows.append((
            "document numbers gapless",
            "; ".join(f"{k[1]} 1..{len(v)}" for k, v in sorted(by_series.items())) or "none",
            not gaps,
        ))  # fmt: skip
        ids = [message_from_bytes(m, policy=email_policy)["Message-ID"] for _, m in emails]
        copies: dict[str, set[bytes]] = {}
        for received in self.smtp.received:
            copies.setdefault(received.message["Message-ID"], set()).add(received.data)
        email_states = Counter(s for s, _ in emails)
        never = [i for i in ids if i not in copies]
        strangers = [i for i in copies if i not in set(ids)]
        # SMTP has no two-phase commit: a crash between the server's 250 and the SQL "sent"
        # sends again, by design under the same Message-ID and bytes, which receivers dedupe.
        # Once by Message-ID means: each one arrived, as one message (every copy the same bytes).
        differing = [i for i, datas in copies.items() if len(datas) > 1]
        self.resent = len(self.smtp.received) - len(copies)
        rows.append((
            "every email delivered exactly once by Message-ID",
            f"{len(ids)} emails ({', '.join(f'{k} {v}' for k, v in sorted(email_states.items()))}), "
            f"{len(copies)} Message-IDs at the sink, {len(never)} never, {len(strangers)} unknown, "
            f"{len(differing)} with differing copies; {self.resent} resent with the same bytes",
            not never and not strangers and not differing and set(email_states) == {"sent"},
        ))  # fmt: skip
        verify = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "bot", "audit", "verify"], env=self.env(),
            cwd=REPO, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        # Its answer, not the JSON log lines around it.
        said = [line for line in (verify.stdout + verify.stderr).splitlines()
                if line.strip() and not line.startswith("{")]  # fmt: skip
        rows.append(("audit chain intact (chargedesk audit verify)",
                     said[-1] if said else f"exit {verify.returncode}", verify.returncode == 0))  # fmt: skip
        entries = Counter(
            e.approval_id for e in audit if e.outcome == "succeeded" and e.approval_id
        )
        mismatched = [a for a in succeeded if entries.get(a) != 1]
        extra = [
            a for a in entries if a not in {x["id"] for x in approvals if x["state"] == "succeeded"}
        ]
        external = sum(1 for e in audit if e.outcome == "external")
        rows.append((
            "audit matches the actions",
            f"{sum(entries.values())} 'succeeded' entries, {len(mismatched)} approvals without "
            f"exactly one, {len(extra)} for no succeeded approval, {external} 'external' entries",
            not mismatched and not extra and external == 0,
        ))  # fmt: skip
        return rows

    async def close(self) -> None:
        self.stopping = True
        for proc in [*self.webs, *self.workers]:
            proc.held = True
        for proc in [*self.webs, *self.workers]:
            await asyncio.to_thread(proc.stop, 10)
        self.redis.proc.kill()
        self.pg.stop()
        self.stripe.stop()
        await self.http.aclose()
        if not self.keep_database:
            shutil.rmtree(self.pg.root, ignore_errors=True)


async def _evidence(c: Any, stripe: StripeEmulator) -> list[str]:
    """What a broken invariant needs to be understood: the rows behind it, one line each."""
    lines = []
    twice = (await c.execute(
        select(AuditEntry.approval_id).where(AuditEntry.outcome == "succeeded")
        .group_by(AuditEntry.approval_id).having(func.count() > 1)
    )).scalars().all()  # fmt: skip
    for approval_id in twice:
        for e in (await c.execute(select(AuditEntry).where(AuditEntry.approval_id == approval_id)
                                  .order_by(AuditEntry.seq))).all():  # fmt: skip
            lines.append(f"audit {approval_id} #{e.seq} {e.at:%H:%M:%S.%f} {e.actor_platform}:"
                         f"{e.actor_id} {e.action} {e.outcome} {e.object_id} {e.gateway_request_id}")  # fmt: skip
    for r in (
        await c.execute(select(DocumentRequest).where(DocumentRequest.state != "done"))
    ).all():
        lines.append(f"document request {r.kind} {r.source_id} (charge {r.charge_id}): {r.state}, "
                     f"{r.attempts} attempts, updated {r.updated:%H:%M:%S}, {r.last_error}")  # fmt: skip
    return lines


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counter.items()) if v) or "0"


def _asyncpg(url: str) -> str:
    return "postgresql+asyncpg://" + url.split("://", 1)[1]


def _buttons(blocks: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for block in blocks:
        if isinstance(block.get("accessory"), dict) and block["accessory"].get("type") == "button":
            yield block["accessory"]
        if block.get("type") == "actions":
            yield from (e for e in block["elements"] if e.get("type") == "button")


async def run(args: argparse.Namespace) -> int:
    root = Path(tempfile.mkdtemp(prefix="chargedesk-soak-"))
    soak = Soak(args, root)
    started = time.monotonic()
    keep = args.keep
    try:
        with slack_api() as api:
            soak.api = api
            soak.populate_slack(api)
            async with smtp_server() as smtp:
                soak.smtp = smtp
                await soak.setup()
                ready = time.monotonic()
                deadline = ready + args.seconds
                approver = asyncio.ensure_future(soak.approver())
                supervisor = asyncio.ensure_future(soak.supervise())
                # Faults stop a little before the traffic, so its last requests meet a whole system.
                await asyncio.gather(soak.traffic(deadline), soak.chaos(deadline - 3))
                driven = time.monotonic() - ready
                settled, left = await soak.settle(args.settle)
                soak.stopping = True
                await approver
                await supervisor
                rows = await soak.check()
                figures = [
                    ["processes", f"{WEBS} web + {WORKERS} worker, PostgreSQL, Redis"],
                    ["driven / settled", f"{driven:.0f} s / {settled:.0f} s"],
                    *([k, v] for k, v in sorted(soak.tally.sent.items())),
                    ["unanswered or 5xx tries (each retried)", _counts(soak.tally.retried)],
                    ["not acknowledged (after retries)", _counts(soak.tally.failed)],
                    *([f"fault: {k}", v] for k, v in sorted(soak.tally.faults.items())),
                    ["left unfinished at the end", _counts(Counter(left))],
                    [
                        "emails sent again under their Message-ID (a crash after SMTP's 250)",
                        soak.resent,
                    ],
                ]
                print(table(["soak", "figure"], figures))
                print()
                print(table(["invariant", "figures", "held"],
                            [[n, f, "yes" if ok else "BROKEN"] for n, f, ok in rows]))  # fmt: skip
                broken = [n for n, _, ok in rows if not ok]
                print(f"\nsoak: {time.monotonic() - started:.0f} s in all")
                if broken:
                    keep = soak.keep_database = True
                    print("\n".join(soak.evidence), file=sys.stderr)
                    print(f"soak FAILED: {'; '.join(broken)} (logs in {root})", file=sys.stderr)
                    return 1
                print("soak passed: every invariant held")
                return 0
    except BaseException:
        keep = soak.keep_database = True
        print(f"soak: stopped by an error (logs in {root})", file=sys.stderr)
        raise
    finally:
        await soak.close()
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds", type=float, default=300, help="how long to drive (default 300)"
    )
    parser.add_argument("--requests", type=int, default=5000, help="at most this many requests")
    parser.add_argument("--short", action="store_true", help="CI: 40 s, fewer customers")
    parser.add_argument("--customers", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=4, help="requests at once")
    parser.add_argument("--pause", type=float, default=0.2, help="seconds between rounds")
    parser.add_argument(
        "--fault-every", type=float, default=4.0, help="mean seconds between faults"
    )
    parser.add_argument(
        "--settle", type=float, default=330,
        help="at most this long to settle (default 330: a job whose worker was killed waits for "
        "arq's in-progress key, job_timeout 300 s + 10 s)",
    )  # fmt: skip
    parser.add_argument(
        "--recover-after", type=float, default=60,
        help="the bots' recover_after_seconds (default 60, the shipped default)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the logs folder")
    args = parser.parse_args()
    if args.short:
        args.seconds, args.customers, args.fault_every = min(args.seconds, 30), 16, 3.0
    args.seed = args.seed if args.seed is not None else secrets.randbelow(10**6)
    print(f"soak: seed {args.seed}, {args.seconds:g} s, at most {args.requests} requests")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
