"""SIGTERM to `chargedesk serve`: no new connection, the request under way answered, exit 0.

A real process on port 0, its Stripe gateway on our emulator holding its first answer for a
few seconds; a Help Scout sidebar request (signed) looks the customer up through it, and the
process is told to stop while that lookup waits.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from queue import Empty, Queue

import httpx
import pytest

from bot import jobs
from bot.job_schedule import JOBS, job
from bot.services import Services
from chargedesk_emulators.helpscout import signature
from chargedesk_emulators.stripe import StripeEmulator
from tests.conftest import REPO

EMAIL = "slow.customer@example.com"
SECRET_KEY = "helpscout-secret-key-for-the-shutdown-test"
HOLD = 4.0  # seconds Stripe holds its first answer


@pytest.fixture
def stripe_api() -> Iterator[StripeEmulator]:
    emulator = StripeEmulator()
    emulator.start()
    try:
        emulator.add_customer(EMAIL, "Slow Customer")
        yield emulator
    finally:
        emulator.stop()


class Served:
    """`chargedesk serve --port 0` with its stdout read line by line as it comes."""

    def __init__(self, env: dict[str, str], cwd: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve", "--port", "0"], env=env, cwd=cwd,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self.lines: Queue[str] = Queue()
        self.seen: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def all_lines(self) -> list[str]:
        """Every line the process wrote (call once it has exited)."""
        self.reader.join(10)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return self.seen

    def wait_for(self, words: str, timeout: float = 60) -> dict:
        """The first JSON log line whose message contains `words`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except Empty:
                assert self.proc.poll() is None or not self.lines.empty(), "\n".join(self.seen)
                continue
            self.seen.append(line)
            record = json.loads(line)  # every line on stdout is one JSON object
            if words in record["message"]:
                return record
        raise AssertionError(f"no {words!r} in:\n{''.join(self.seen)}")


def refused_soon(port: int, within: float = 2.0) -> bool:
    """Whether new connections to `port` are refused within `within` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except ConnectionRefusedError:
            return True
        time.sleep(0.05)
    return False


def sidebar_body() -> tuple[bytes, dict[str, str]]:
    payload = {
        "ticket": {"id": 7, "number": 7, "subject": "Billing question"},
        "customer": {"id": 3, "fname": "Slow", "email": EMAIL, "emails": [EMAIL]},
        "user": {"fname": "Alex", "id": 1, "role": "user", "email": "alex.agent@example.com"},
        "mailbox": {"id": 1, "email": "support@example.com"},
    }
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "X-HelpScout-Signature": signature(body, SECRET_KEY),
    }
    return body, headers


def test_sigterm_lets_the_request_under_way_finish_refuses_new_ones_and_exits_0(
    tmp_path, stripe_api: StripeEmulator
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env |= {
        "PYTHONPATH": str(REPO),
        "CHARGEDESK_DATA_DIR": str(tmp_path / "data"),
        "CHARGEDESK_LEDGER__ENABLED": "false",
        "CHARGEDESK_STRIPE__API_KEY": stripe_api.api_key or "",
        "CHARGEDESK_STRIPE__BASE_URL": stripe_api.url,
        "CHARGEDESK_STRIPE__MAX_RETRIES": "0",
        "CHARGEDESK_LOOKUP__TIMEOUT": "30",
        "CHARGEDESK_HELPDESK__HELPSCOUT__SECRET_KEY": SECRET_KEY,
        "CHARGEDESK_SHUTDOWN_SECONDS": "20",
        "CHARGEDESK_LOGS__TO_FILE": "false",
    }
    served = Served(env, str(tmp_path))
    try:
        started = served.wait_for("Uvicorn running on")
        port = int(started["message"].rsplit(":", 1)[1].split()[0])
        stripe_api.delay_next(HOLD)  # the lookup's first call to Stripe waits
        body, headers = sidebar_body()
        answers: list[httpx.Response] = []
        slow = threading.Thread(target=lambda: answers.append(httpx.post(
            f"http://127.0.0.1:{port}/helpdesk/helpscout/sidebar", content=body, headers=headers,
            timeout=60,
        )))  # fmt: skip
        slow.start()
        deadline = time.monotonic() + 10
        while not stripe_api.requests and time.monotonic() < deadline:
            time.sleep(0.05)  # until the lookup's call has reached Stripe (and is held there)
        time.sleep(0.3)
        asked_at = time.monotonic()
        served.proc.send_signal(signal.SIGTERM)
        served.wait_for("Shutting down")  # logged just before the listening socket closes
        assert refused_soon(port)
        assert slow.is_alive() and time.monotonic() - asked_at < HOLD  # ... while it was held
        slow.join(60)
        assert served.proc.wait(60) == 0, "".join(served.seen)
    finally:
        if served.proc.poll() is None:
            served.proc.kill()
            served.proc.wait()
    (answer,) = answers
    assert answer.status_code == 200
    assert "Slow Customer" in answer.json()["html"]  # Stripe's answer, not a timed-out section
    records = [json.loads(line) for line in served.all_lines()]
    access = [r for r in records if r["logger"] == "uvicorn.access" and "/sidebar" in r["message"]]
    assert len(access) == 1 and access[0]["request_id"] == answer.headers["x-request-id"]
    assert any("gateways, SQL and Redis closed" in r["message"] for r in records)


@pytest.mark.parametrize(("grace", "finished"), [(10.0, True), (0.2, False)])
async def test_a_job_under_way_at_shutdown_finishes_within_shutdown_seconds(
    services: Services, grace: float, finished: bool
) -> None:
    """The worker stopped (SIGTERM to `serve` or `worker` cancels it) lets its running job end,
    for at most shutdown_seconds; past that the job is cut short (and arq re-runs it later)."""
    started, ended = asyncio.Event(), asyncio.Event()

    @job(name="shutdown_test_slow_job")
    async def slow(ctx: dict) -> None:
        started.set()
        await asyncio.sleep(1.0)
        ended.set()

    services.settings = services.settings.model_copy(update={"shutdown_seconds": grace})
    try:
        worker = asyncio.create_task(jobs.run_worker(services, poll_delay=0.05))
        await jobs.enqueue(services, "shutdown_test_slow_job", job_id="shutdown-test")
        await asyncio.wait_for(started.wait(), 30)
        worker.cancel()
        with pytest.raises(asyncio.CancelledError):
            await worker
        assert ended.is_set() is finished
    finally:
        JOBS.pop("shutdown_test_slow_job", None)
