"""Background jobs on arq (Redis): work that must not hold up a chat reply or a web request.

Other modules add their jobs to `JOBS` (with `@job`) and periodic work to
`PERIODIC` (with `@periodic`), both kept in `bot/job_schedule.py` and
re-exported here; `run_worker` runs them all. Every queue, job and cron id lives
under the deployment's `redis_prefix`, so deployments can share one Redis.

Redis is not the system of record: a job only says *when* to act on a row in
SQL. A lost job costs a delay, never the work: `sweep_emails` re-enqueues
every email still waiting, once a minute, and enqueueing an id that is already
queued is a no-op. `recover_approvals` does the same for approved actions.

Nor does losing Redis stop the work for good: `keep_working` starts a new
worker, with backoff, until Redis answers again, and its sweeps catch up.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from arq.connections import ArqRedis
from arq.cron import cron
from arq.worker import Retry, Worker
from redis.exceptions import RedisError

from bot.approvals.executor import recover
from bot.audit.checkpoint import at_shutdown
from bot.job_schedule import JOBS, PERIODIC, job, periodic
from bot.mail import outbox
from bot.settings import Settings

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)

# arq's own retry limit stays out of the way: outbox rows count attempts and decide failure.
EMAIL_MAX_TRIES = 1000
SWEEP_BATCH = 500
# A worker that lost Redis tries again after 1 s, then 2, 4, ... up to this.
RECONNECT_MAX_SECONDS = 30.0
# How long jobs already running may finish their SQL work when Redis goes away.
DRAIN_SECONDS = 30.0


def queue_name(settings: Settings) -> str:
    return f"{settings.redis_prefix}arq:queue"


async def enqueue(
    services: Services, function_name: str, *args: Any, job_id: str, defer: float | None = None
) -> bool:
    """Queue `function_name(*args)` under `job_id`; False (and nothing queued) if that id is already queued."""
    return await _enqueue(
        _enqueuer(services), services.settings, function_name, *args, job_id=job_id, defer=defer
    )


async def enqueue_email(services: Services, email_id: str) -> bool:
    """Ask a worker to send a queued email; call it after the transaction that queued it commits."""
    return await enqueue(services, "send_email", email_id, job_id=_email_job_id(email_id))


@job(max_tries=EMAIL_MAX_TRIES)
async def send_email(ctx: dict[str, Any], email_id: str) -> str:
    """Deliver one email; a temporary failure comes back through arq after its backoff."""
    try:
        return await outbox.deliver(ctx["services"], email_id)
    except outbox.RetryLater as later:
        raise Retry(defer=later.delay) from None
    except LookupError:
        # Enqueued before its transaction committed, or rolled back: the sweeper
        # sends it if it ever appears.
        log.warning("email %s: not in the database (yet)", email_id)
        return "missing"


@periodic(second=0, run_at_startup=True)
async def sweep_emails(ctx: dict[str, Any]) -> int:
    """Re-enqueue every email still waiting, whatever happened to its job; returns how many were queued."""
    services: Services = ctx["services"]
    ids = await outbox.pending_ids(services.db, SWEEP_BATCH, lease=outbox.lease(services.settings))
    queued = 0
    for email_id in ids:
        if await _enqueue(
            ctx["redis"], services.settings, "send_email", email_id, job_id=_email_job_id(email_id)
        ):
            queued += 1
    if queued:
        log.info("sweep: re-enqueued %d waiting email(s)", queued)
    return queued


@periodic(second=15, run_at_startup=True)
async def recover_approvals(ctx: dict[str, Any]) -> int:
    """Finish approvals left unfinished: `executing` past recover_after_seconds (a crash, an
    unknown outcome, an outage) and `approved` but never started (a busy target, a crash
    between the vote and the run). Runs at start too, so a worker back from an outage does it
    at once."""
    recovered = await recover(ctx["services"])
    if recovered:
        log.info("recovery: finished %d approval(s)", len(recovered))
    return len(recovered)


# Modules that register jobs: a worker imports them all, whatever else its process loaded.
JOB_MODULES = (
    "bot.documents.automatic",
    "bot.documents.reissue",
    "bot.identity",
    "bot.audit.checkpoint",
    "bot.helpdesk.ticket_notes",
    "bot.disputes.reminders",
    "bot.payment_requests.reminders",
    "bot.index.sync",
)


def worker_settings(services: Services) -> dict[str, Any]:
    """Keyword arguments for `arq.worker.Worker` (no Redis pool: `run_worker` adds one)."""
    for module in JOB_MODULES:
        importlib.import_module(module)
    settings = services.settings
    prefix = settings.redis_prefix
    return {
        "functions": list(JOBS.values()),
        # The prefix in the name keeps each deployment's cron ids (name:time) its own.
        "cron_jobs": [
            cron(item.coroutine, name=f"cron:{prefix}{name}", **item.schedule)
            for name, item in PERIODIC.items()
        ],
        "queue_name": queue_name(settings),
        "ctx": {"services": services},
        # Outcomes live in SQL; a kept result would also block re-enqueueing the same job id.
        "keep_result": 0,
        # Longer than an email's lease, so arq never cancels a send its claim still covers.
        "job_timeout": max(300.0, outbox.lease(settings).total_seconds() + 30),
        "handle_signals": False,
    }


async def run_worker(services: Services, *, burst: bool = False, poll_delay: float = 0.5) -> Worker:
    """Run the jobs in this event loop until cancelled (or, with `burst`, until the queue is empty).

    Losing Redis ends it with the error: `keep_working` is what comes back afterwards.
    """
    async with _arq(services) as redis:
        worker = Worker(
            **worker_settings(services), redis_pool=redis, burst=burst, poll_delay=poll_delay
        )
        try:
            await worker.async_run()
        except asyncio.CancelledError:
            # A shutdown (SIGTERM): jobs under way may finish, for at most shutdown_seconds.
            await _stop(worker, redis, drain=services.settings.shutdown_seconds)
            await _checkpoint_at_shutdown(services)
            raise
        except Exception:
            await _stop(worker, redis, drain=DRAIN_SECONDS)
            raise
        await _stop(worker, redis)
    return worker


async def _checkpoint_at_shutdown(services: Services) -> None:
    """Sign the audit chain head as this worker stops (when checkpoints are configured)."""
    await at_shutdown(services)


async def keep_working(
    services: Services,
    *,
    poll_delay: float = 0.5,
    first_delay: float = 1.0,
    max_delay: float = RECONNECT_MAX_SECONDS,
) -> None:
    """Run the jobs until cancelled, starting a new worker with backoff whenever one stops.

    An arq worker ends when Redis goes away. Its successor has fresh cron state, so the sweeps
    marked `run_at_startup` (emails, documents, approvals) run as soon as Redis answers again
    and re-enqueue or finish whatever the outage held up, without restarting the bot.
    """
    loop = asyncio.get_running_loop()
    delay = first_delay
    while True:
        started = loop.time()
        try:
            await run_worker(services, poll_delay=poll_delay)
            log.warning("job worker stopped: starting it again in %.1f s", delay)
        except (RedisError, OSError) as exc:
            log.warning("job worker lost Redis (%s): reconnecting in %.1f s", exc, delay)
        except Exception:
            log.exception("job worker failed: starting it again in %.1f s", delay)
        if loop.time() - started > max_delay:
            delay = first_delay  # it worked for a while: a new outage starts the backoff over
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_delay)


def start_in_process_worker(services: Services) -> asyncio.Task[None]:
    """The worker as a task of this process (the embedded default has no worker process).

    It outlives Redis outages (see `keep_working`). Stop it with `task.cancel()` before
    closing the services.
    """
    task = asyncio.create_task(keep_working(services), name="chargedesk-worker")
    task.add_done_callback(_report_crash)
    return task


@asynccontextmanager
async def background_worker(services: Services) -> AsyncIterator[None]:
    """Run the jobs in this process for the block's duration, when settings ask for it.

    By default they do on the embedded Redis engine (a laptop or a small team
    runs one process) and not with REDIS_URL, where `chargedesk worker` runs.
    """
    if not services.settings.jobs_here:
        yield
        return
    task = start_in_process_worker(services)
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("in-process job worker stopped", exc_info=task.exception())


async def _enqueue(
    redis: ArqRedis,
    settings: Settings,
    function_name: str,
    *args: Any,
    job_id: str,
    defer: float | None = None,
) -> bool:
    queued = await redis.enqueue_job(
        function_name,
        *args,
        _job_id=settings.redis_prefix + job_id,
        _queue_name=queue_name(settings),
        _defer_by=defer,
    )
    return queued is not None


def _email_job_id(email_id: str) -> str:
    return f"email:{email_id}"


def _enqueuer(services: Services) -> ArqRedis:
    """An arq client on the services' own connection pool, for enqueueing only.

    Enqueueing reads no stored value back (WATCH, EXISTS, PSETEX, ZADD), so replies decoded
    to str do no harm, and every job enqueued reuses the services' connections instead of
    opening (and closing) a pool of its own. The worker, which reads pickled jobs back,
    keeps its own bytes pool (`_arq`).
    """
    return ArqRedis(
        services.redis.connection_pool, default_queue_name=queue_name(services.settings)
    )


@asynccontextmanager
async def _arq(services: Services) -> AsyncIterator[ArqRedis]:
    """An arq client to the services' Redis server.

    The services' pool decodes replies to str; arq stores pickled jobs and needs
    bytes, so it gets its own pool with the same connection settings.
    """
    source = services.redis.connection_pool
    pool = aioredis.ConnectionPool(
        connection_class=source.connection_class,
        **{**source.connection_kwargs, "decode_responses": False},
    )
    redis = ArqRedis(pool, default_queue_name=queue_name(services.settings))
    try:
        yield redis
    finally:
        await redis.aclose(close_connection_pool=True)


async def _stop(worker: Worker, redis: ArqRedis, *, drain: float = 0) -> None:
    # Jobs cut short go back to the queue (arq re-runs cancelled jobs); their
    # rows in SQL are recovered by the sweeper once their claims expire.
    tasks = list(worker.tasks.values())
    if drain and tasks:
        # Redis went away, not this process: an email half sent is better finished than resent.
        await asyncio.wait(tasks, timeout=drain)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    with suppress(RedisError, OSError):
        await redis.delete(worker.health_check_key)
