"""A PostgreSQL that does not answer, or no asyncpg to talk to it: one line, no traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.store.db import Database, DatabaseUnavailable
from tests.conftest import REPO

# What the way out must name.
HINTS = ("asyncpg", "pip install 'chargedesk-bot[postgres]'", "requirements/server.txt")


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port nobody listens on: bound but not listening, so none can take it meanwhile."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def chargedesk(tmp_path: Path, database_url: str, *argv: str, setup: str = "") -> tuple[int, str]:
    """Run `chargedesk <argv>` on `database_url`, in a Python that first runs `setup`."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env |= {
        "PYTHONPATH": str(REPO),
        "CHARGEDESK_DATA_DIR": str(tmp_path / "data"),
        "DATABASE_URL": database_url,
        "CHARGEDESK_PORTAL__SECRET": "s" * 32,  # shared stores need it: nothing else is missing
    }
    code = f"{setup}\nimport sys\nfrom bot.cli import main\nsys.exit(main({list(argv)!r}))"
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path,
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    return done.returncode, done.stderr


def the_error(stderr: str) -> str:
    """The one line that says what went wrong (log lines of the start may come before it)."""
    assert "Traceback" not in stderr
    [line] = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert stderr.splitlines()[-1] == line
    return line


@pytest.mark.parametrize(
    "command", [["db", "upgrade"], ["audit", "verify"], ["recover"], ["serve", "--port", "0"]],
    ids=" ".join,
)  # fmt: skip
def test_an_unreachable_postgresql_stops_each_command_with_one_line(
    command: list[str], closed_port: int, tmp_path: Path
) -> None:
    url = f"postgresql://chargedesk:hunter2@127.0.0.1:{closed_port}/chargedesk"
    returncode, stderr = chargedesk(tmp_path, url, *command)

    assert returncode == 1, stderr
    line = the_error(stderr)
    assert line.startswith("error: cannot reach the database at postgresql")
    assert f"127.0.0.1:{closed_port}" in line
    assert "hunter2" not in stderr  # the password stays out of messages and logs


@pytest.mark.parametrize("command", [["db", "upgrade"], ["serve", "--port", "0"]], ids=" ".join)
def test_postgresql_without_asyncpg_says_how_to_install_it(
    command: list[str], tmp_path: Path
) -> None:
    # A Python without asyncpg: its import fails as it does where the extra is not installed.
    url = "postgresql://chargedesk@127.0.0.1:5432/chargedesk"
    returncode, stderr = chargedesk(
        tmp_path, url, *command, setup="import sys; sys.modules['asyncpg'] = None"
    )

    assert returncode == 1, stderr
    line = the_error(stderr)
    assert line.startswith("error: DATABASE_URL names PostgreSQL but its driver")
    for hint in HINTS:
        assert hint in line


def test_the_database_names_the_missing_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "asyncpg", None)  # `import asyncpg` now fails

    with pytest.raises(DatabaseUnavailable) as failure:
        Database("postgresql+asyncpg://chargedesk@127.0.0.1/chargedesk")

    assert "\n" not in str(failure.value)
    for hint in HINTS:
        assert hint in str(failure.value)
