"""`chargedesk worker`: a separate process sends what another process queued, and stops cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

from bot import jobs
from bot.mail.outbox import SENT, status
from bot.settings import Settings
from bot.wiring import open_services
from tests.conftest import REPO
from tests.mail.mailtools import queue_receipt


async def test_the_worker_process_sends_queued_email_until_stopped(tmp_path, policy):
    data = tmp_path / "data"
    env = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SMTP_URL")
    }
    # The configuration folder stays the empty one of the test: defaults everywhere.
    env |= {"PYTHONPATH": str(REPO), "CHARGEDESK_DATA_DIR": str(data)}
    stderr = tmp_path / "stderr.txt"
    with stderr.open("w") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "worker",
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        log = data / "chargedesk.log"
        deadline = time.monotonic() + 60
        while "worker on Redis queue" not in (log.read_text() if log.exists() else ""):
            assert proc.returncode is None, stderr.read_text()
            assert time.monotonic() < deadline, "the worker did not start"
            await asyncio.sleep(0.1)
        assert f"emails to folder {data / 'outbox'}" in log.read_text()

        # Another process (here: the test) shares the worker's SQLite file and embedded Redis.
        services = await open_services(
            Settings(data_dir=data, database_url=None, redis_url=None), policy=policy
        )
        try:
            email_id = await queue_receipt(services)
            await jobs.enqueue_email(services, email_id)
            # The worker writes the file, then records SENT: wait for the record, the later of the two.
            while (await status(services.db, email_id)).state != SENT:
                assert time.monotonic() < deadline, "the email was not sent"
                await asyncio.sleep(0.1)
            eml = data / "outbox" / f"{email_id}.eml"
            assert b"X-ChargeDesk-Document: R-2026-0001" in eml.read_bytes()
        finally:
            await services.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)
    assert proc.returncode == 0, stderr.read_text()
