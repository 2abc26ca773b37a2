"""Prometheus metrics: what every process counts, and what `/metrics` reads from the stores.

Two kinds, for two kinds of truth:

- **Counted here** (counters and histograms, per process): commands per door, HTTP requests
  per door, gateway calls and their errors, approval transitions, webhook lag. With several
  processes on one machine set `PROMETHEUS_MULTIPROC_DIR` (an empty folder shared by them,
  cleared before they start): each process writes its values there and any `web` process
  answers `/metrics` with the sum (prometheus_client's multiprocess mode), so a scrape that
  lands on any process sees every process's counts, the worker's included. Without it each
  process reports its own counts (one process per container, each scraped on its own).
- **Read at scrape time** from SQL and Redis (gauges): approvals by state, the outbox backlog,
  the job queue's depth and age. These are facts of the shared stores, not of one process:
  counting them per process would drift after a restart or a decision taken elsewhere.
  Every process reports the same value; aggregate them with `max`, not `sum`.

Labels are bounded and never carry what a person typed: a door is a platform name, a command
is a name from the command registry, a gateway a configured name, a code a unified error code.
Anything else is folded into `other`.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY, Collector

if TYPE_CHECKING:
    from bot.services import Services

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# A label value is a short lowercase word (a name from code or configuration), else `other`.
_WORD = re.compile(r"^[a-z][a-z0-9_.-]{0,39}$")
# The first segment of a path that is one of our doors; any other path is `other`.
HTTP_DOORS = frozenset({
    "livez", "readyz", "healthz", "metrics", "webhooks", "helpdesk", "helpscout",
    "intercom", "portal", "panel", "slack", "static",
})  # fmt: skip

COMMANDS = Counter(
    "chargedesk_commands_total",
    "Commands run, per door, command and outcome (ok or the error code)",
    ["door", "command", "outcome"],
)
COMMAND_SECONDS = Histogram(
    "chargedesk_command_seconds", "Time to answer a command", ["door", "command"]
)
HTTP_REQUESTS = Counter(
    "chargedesk_http_requests_total",
    "HTTP requests per door (first path segment), method and status",
    ["door", "method", "status"],
)
HTTP_SECONDS = Histogram(
    "chargedesk_http_request_seconds", "Time to answer an HTTP request", ["door"]
)
GATEWAY_SECONDS = Histogram(
    "chargedesk_gateway_call_seconds", "Gateway call latency", ["gateway", "operation"]
)
GATEWAY_ERRORS = Counter(
    "chargedesk_gateway_errors_total",
    "Gateway calls that failed, by unified error code",
    ["gateway", "operation", "code"],
)
APPROVAL_TRANSITIONS = Counter(
    "chargedesk_approval_transitions_total",
    "Approval requests entering a state (counted when the transaction commits)",
    ["state"],
)
WEBHOOK_LAG = Histogram(
    "chargedesk_webhook_lag_seconds",
    "Time from a gateway event's creation to its receipt here",
    ["gateway"],
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400),
)
WEBHOOK_EVENTS = Counter(
    "chargedesk_webhook_events_total", "Webhook events received, by outcome", ["gateway", "outcome"]
)


def label(value: str | None) -> str:
    """`value` as a label if it is a short lowercase word, else `other` (never free text)."""
    if value is not None and _WORD.match(value):
        return value
    return "other"


def http_door(path: str) -> str:
    """The door a path belongs to (its first segment), or `other`."""
    first = path.lstrip("/").split("/", 1)[0]
    return first if first in HTTP_DOORS else "other"


def command_done(door: str, command: str, outcome: str, seconds: float | None) -> None:
    """One command answered on `door`: `outcome` is `ok` or the reply's error code; `seconds`
    None for a line refused before any command ran (it would only drag the latencies down)."""
    door, command = label(door), label(command)
    COMMANDS.labels(door, command, label(outcome)).inc()
    if seconds is not None:
        COMMAND_SECONDS.labels(door, command).observe(seconds)


def http_done(path: str, method: str, status: int, seconds: float) -> None:
    """One HTTP request answered."""
    door = http_door(path)
    method = method if method in ("GET", "POST", "HEAD", "PUT", "DELETE", "PATCH") else "other"
    HTTP_REQUESTS.labels(door, method, str(status)).inc()
    HTTP_SECONDS.labels(door).observe(seconds)


def gateway_call(gateway: str, operation: str, seconds: float, error: str | None) -> None:
    """One call to a gateway, with its unified error code if it failed."""
    gateway, operation = label(gateway), label(operation)
    GATEWAY_SECONDS.labels(gateway, operation).observe(seconds)
    if error is not None:
        GATEWAY_ERRORS.labels(gateway, operation, label(error)).inc()


def approval_entered(state: str) -> None:
    """An approval request entered `state` (call once its transaction committed)."""
    APPROVAL_TRANSITIONS.labels(label(state)).inc()


def webhook_received(gateway: str, created: datetime, outcome: str) -> None:
    """A webhook event: how long after its creation it reached us, and what became of it."""
    gateway = label(gateway)
    lag = (datetime.now(UTC) - created).total_seconds()
    WEBHOOK_LAG.labels(gateway).observe(max(lag, 0.0))
    WEBHOOK_EVENTS.labels(gateway, label(outcome)).inc()


@dataclass
class Readings:
    """What the shared stores say at scrape time; a store that did not answer is listed."""

    approvals: dict[str, int] = field(default_factory=dict)
    outbox_backlog: int | None = None
    outbox_oldest_seconds: float | None = None
    queue_depth: int | None = None
    queue_oldest_seconds: float | None = None
    failed: list[str] = field(default_factory=list)


async def read_stores(services: Services) -> Readings:
    """Approvals by state and the outbox backlog from SQL; the job queue from Redis (arq's
    sorted set: score = when the job may run, in ms). A store that fails is reported as down
    (`chargedesk_store_up`), never as a zero that would look healthy."""
    from sqlalchemy import func, select

    from bot.store.tables import ApprovalRow, EmailRow

    readings = Readings()
    try:
        async with services.db.read() as session:
            rows = await session.execute(
                select(ApprovalRow.state, func.count()).group_by(ApprovalRow.state)
            )
            readings.approvals = {str(state): int(n) for state, n in rows.all()}
            backlog = await session.execute(
                select(func.count(), func.min(EmailRow.created)).where(
                    EmailRow.state.in_(("pending", "sending"))
                )
            )
            count, oldest = backlog.one()
            readings.outbox_backlog = int(count)
            readings.outbox_oldest_seconds = _age(oldest)
    except Exception:
        readings.failed.append("sql")
    try:
        # bot.jobs.queue_name's key, spelled here: importing bot.jobs would make a cycle.
        queue = f"{services.settings.redis_prefix}arq:queue"
        now_ms = time.time() * 1000
        readings.queue_depth = int(await services.redis.zcard(queue))
        # Jobs due now (not deferred ones): the oldest due score says how long one has waited.
        due = await services.redis.zrangebyscore(
            queue, "-inf", now_ms, start=0, num=1, withscores=True
        )
        readings.queue_oldest_seconds = (now_ms - float(due[0][1])) / 1000 if due else 0.0
    except Exception:
        readings.failed.append("redis")
    return readings


def _age(when: datetime | None) -> float:
    if when is None:
        return 0.0
    if when.tzinfo is None:  # SQLite hands back naive UTC
        when = when.replace(tzinfo=UTC)
    return max((datetime.now(UTC) - when).total_seconds(), 0.0)


class _StoreGauges(Collector):
    """The scrape-time readings as gauges."""

    def __init__(self, readings: Readings) -> None:
        self.readings = readings

    def collect(self) -> Iterator[Metric]:
        r = self.readings
        up = GaugeMetricFamily(
            "chargedesk_store_up", "Whether a store answered this scrape", labels=["store"]
        )
        for store in ("sql", "redis"):
            up.add_metric([store], 0 if store in r.failed else 1)
        yield up
        if "sql" not in r.failed:
            approvals = GaugeMetricFamily(
                "chargedesk_approvals", "Approval requests by state (from SQL)", labels=["state"]
            )
            for state, count in sorted(r.approvals.items()):
                approvals.add_metric([label(state)], count)
            yield approvals
            yield GaugeMetricFamily(
                "chargedesk_outbox_backlog", "Emails not sent yet", value=r.outbox_backlog or 0
            )
            yield GaugeMetricFamily(
                "chargedesk_outbox_oldest_seconds",
                "Age of the oldest email not sent yet",
                value=r.outbox_oldest_seconds or 0.0,
            )
        if "redis" not in r.failed:
            yield GaugeMetricFamily(
                "chargedesk_job_queue_depth", "Jobs in the queue", value=r.queue_depth or 0
            )
            yield GaugeMetricFamily(
                "chargedesk_job_queue_oldest_seconds",
                "How long the oldest job due has waited",
                value=r.queue_oldest_seconds or 0.0,
            )


class _ThisProcess(Collector):
    """The default registry's metrics (this process's counts, Python's process metrics)."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def multiprocess_dir() -> str | None:
    """The folder shared by the processes on this machine, when multiprocess mode is on."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


async def exposition(services: Services) -> bytes:
    """The `/metrics` answer: counts (every process's in multiprocess mode) and store gauges."""
    registry = CollectorRegistry(auto_describe=False)
    folder = multiprocess_dir()
    if folder is not None:
        MultiProcessCollector(registry, path=folder)
    else:
        registry.register(_ThisProcess())
    registry.register(_StoreGauges(await read_stores(services)))
    return generate_latest(registry)
