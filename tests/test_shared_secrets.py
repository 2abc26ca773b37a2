"""Processes on shared stores sign with one key: without `portal.secret` none starts.

With DATABASE_URL or REDIS_URL, several processes (each with its own data folder)
may serve one deployment. A key generated into each folder would make a billing
link issued by one process "forged" on the next, so the bot refuses to start
without `portal.secret`; with it, a link works wherever it is opened.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from bot.keys import signing_key
from bot.services import Services
from bot.settings import ConfigError, Settings, load_settings
from bot.store.tables import CustomerLink
from tests.conftest import REPO

SECRET = "CHARGEDESK_PORTAL__SECRET"
JANE = "jane.doe@example.com"
# What the refusal must name: the setting, and how to make a value for it.
HINTS = ("portal.secret", SECRET, 'python -c "import secrets; print(secrets.token_urlsafe(48))"')


def bot_env(data_dir: Path, **values: str) -> dict[str, str]:
    """The environment of a bot process with its own data folder and no portal secret."""
    env = {k: v for k, v in os.environ.items() if k not in (SECRET, "DATABASE_URL", "REDIS_URL")}
    return env | {"PYTHONPATH": str(REPO), "CHARGEDESK_DATA_DIR": str(data_dir), **values}


def shared_stores(settings: Settings) -> dict[str, str]:
    """The test's SQL store and Redis server, as every process of one deployment names them."""
    assert settings.redis_url is not None
    return {
        "DATABASE_URL": settings.sql_url,
        "REDIS_URL": settings.redis_url,
        "CHARGEDESK_REDIS_PREFIX": settings.redis_prefix,
    }


def assert_refused(returncode: int | None, stderr: str) -> None:
    assert returncode == 2, stderr
    assert "Traceback" not in stderr
    [line] = [line for line in stderr.splitlines() if "portal.secret" in line]
    for hint in HINTS:
        assert hint in line


@asynccontextmanager
async def web_process(env: dict[str, str], cwd: Path) -> AsyncIterator[str]:
    """`chargedesk serve` in its own OS process on a free loopback port; yields its base URL."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1", "--port", "0",
        env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    output: list[str] = []
    started: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def read() -> None:
        # Read to the end, so a full pipe never stalls the server.
        assert proc.stdout is not None
        async for raw in proc.stdout:
            line = raw.decode(errors="replace")
            output.append(line)
            found = re.search(r"Uvicorn running on (http://\S+)", line)
            if found and not started.done():
                started.set_result(found.group(1))

    reader = asyncio.create_task(read())
    try:
        await asyncio.wait([started, reader], timeout=90, return_when=asyncio.FIRST_COMPLETED)
        assert started.done(), "chargedesk serve did not start:\n" + "".join(output)
        yield started.result()
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        await reader


async def portal_link_from_shell(env: dict[str, str], cwd: Path) -> str:
    """Jane types `portal` in `chargedesk shell`: the link the chat platforms hand out."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "shell", "--as", "customer:jane", "--json",
        env=env, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(b"portal\n"), 120)
    assert proc.returncode == 0, err.decode()
    reply = json.loads(out.decode().splitlines()[-1])
    [url] = [a["url"] for card in reply["cards"] for a in card["actions"] if a.get("url")]
    return url


@pytest.mark.storage
async def test_two_web_processes_without_a_portal_secret_refuse_to_start(
    settings: Settings, tmp_path: Path
) -> None:
    folders = [tmp_path / "web-a", tmp_path / "web-b"]
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "serve", "--host", "127.0.0.1", "--port", "0",
            env=bot_env(folder, **shared_stores(settings)), cwd=tmp_path,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        for folder in folders
    ]  # fmt: skip
    outputs = [await asyncio.wait_for(p.communicate(), 60) for p in procs]

    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert_refused(proc.returncode, err.decode())
    # Refused before anything was opened: no store, no log, no key of its own.
    assert not any(folder.exists() for folder in folders)


@pytest.mark.storage
async def test_a_billing_link_issued_by_one_process_opens_on_another(
    services: Services, settings: Settings, tmp_path: Path
) -> None:
    async with services.db.write() as session:  # Jane proved her email from the shell earlier
        session.add(CustomerLink(actor_key="shell:jane", actor_name="jane", email=JANE,
                                 verified_at=datetime.now(UTC)))  # fmt: skip
    secret = {SECRET: "one-deployment-one-key-" + "k" * 24, **shared_stores(settings)}
    folder_a, folder_b = tmp_path / "web-a", tmp_path / "web-b"
    try:
        async with (
            web_process(bot_env(folder_a, **secret), tmp_path) as web_a,
            web_process(bot_env(folder_b, **secret), tmp_path) as web_b,
            httpx.AsyncClient(timeout=30) as browser,
        ):
            # Issued on A's installation (its data folder), opened on B.
            link = await portal_link_from_shell(bot_env(folder_a, **secret), tmp_path)
            path = "/" + link.split("://", 1)[1].split("/", 1)[1]

            opened = await browser.get(web_b + path)
            assert (opened.status_code, opened.headers.get("location")) == (303, "/portal/"), (
                opened.text
            )
            page = await browser.get(web_b + "/portal/")
            assert page.status_code == 200 and "Jane Doe" in page.text
            # The page cookie B signed is good on A too (same host: the browser sends it to both).
            again = await browser.get(web_a + "/portal/")
            assert again.status_code == 200 and "Jane Doe" in again.text
        # Neither process made a key of its own.
        assert not (folder_a / "portal.key").exists() and not (folder_b / "portal.key").exists()
    finally:
        keys = [k async for k in services.redis.scan_iter(f"{settings.redis_prefix}*")]
        if keys:
            await services.redis.delete(*keys)


COMMANDS = [
    ["serve"], ["run"], ["shell"], ["worker"], ["discord"], ["slack"], ["recover"], ["demo"],
    ["import", "charges.json"], ["audit", "verify"], ["audit", "export"], ["db", "upgrade"],
]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_on_a_shared_redis_refuses_to_start_without_a_portal_secret(
    command: list[str], redis_url: str, tmp_path: Path
) -> None:
    """One rule for all: `db upgrade` and `audit` sign nothing, but run in the same deployment."""
    data = tmp_path / "data"
    done = subprocess.run(
        [sys.executable, "-m", "bot", *command],
        env=bot_env(data, REDIS_URL=redis_url), cwd=tmp_path,
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip

    assert_refused(done.returncode, done.stderr)
    assert not data.exists()


@pytest.mark.parametrize(
    "store", ["DATABASE_URL=postgresql://chargedesk@db.example/chargedesk", "REDIS_URL=redis://r/0"]
)
def test_either_shared_store_needs_the_secret_and_the_embedded_defaults_do_not(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for shared in (SECRET, "DATABASE_URL", "REDIS_URL"):
        monkeypatch.delenv(shared, raising=False)
    monkeypatch.setenv("CHARGEDESK_DATA_DIR", str(tmp_path))
    assert load_settings().portal.secret is None  # one installation: a generated key will do

    name, _, value = store.partition("=")
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert "\n" not in str(refused.value)
    for hint in HINTS:
        assert hint in str(refused.value)
    # `--demo` is a private temporary workspace, whatever the environment says.
    assert load_settings(database_url=None, redis_url=None).portal.secret is None

    monkeypatch.setenv(SECRET, "s" * 32)
    assert load_settings().shared_stores


def test_one_installation_generates_its_key_once_and_every_process_there_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for shared in (SECRET, "DATABASE_URL", "REDIS_URL"):
        monkeypatch.delenv(shared, raising=False)
    settings = Settings(data_dir=tmp_path / "data")
    key = signing_key(settings)
    path = tmp_path / "data" / "portal.key"
    assert path.read_bytes() == key and len(key) == 64
    assert path.stat().st_mode & 0o777 == 0o600  # nobody else on the machine reads it
    script = "from bot.keys import signing_key; from bot.settings import Settings; import sys;"
    script += f"sys.stdout.write(signing_key(Settings(data_dir={str(path.parent)!r})).decode())"
    other = subprocess.run(
        [sys.executable, "-c", script], env=bot_env(path.parent), capture_output=True, text=True
    )
    assert other.returncode == 0, other.stderr
    assert other.stdout.encode() == key  # a second process on the same folder: the same key
