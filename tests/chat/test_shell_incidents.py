"""The shell under failure: one line on the terminal, the traceback only in the log file.

`chargedesk shell` is started as a person starts it, on a workspace of its own.
The failures are real: an argument a date cannot hold (`audit 99999999d`), and
a database that lost a table under the running bot.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def shell(data: Path, stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env |= {
        "PYTHONPATH": str(REPO),
        "CHARGEDESK_CONFIG_DIR": str(REPO / "config"),
        "CHARGEDESK_DATA_DIR": str(data),
        "COLUMNS": "200",  # a reply is one line when the terminal is wide enough for it
    }
    return subprocess.run(
        [sys.executable, "-m", "bot", "shell", "--as", "manager:maria", *args],
        input=stdin, capture_output=True, text=True, env=env, cwd=data.parent, timeout=120,
    )  # fmt: skip


def test_an_argument_out_of_range_is_one_line_and_the_shell_goes_on(tmp_path):
    result = shell(tmp_path / "data", "audit 99999999d\naudit 9999999999999999999999d\nhelp\n")
    assert "Traceback" not in result.stdout + result.stderr
    refusals = [line for line in result.stdout.splitlines() if line.startswith("✗")]
    assert refusals == [
        "✗ audit: '99999999d' is too far back: write a duration such as 7d or 24h, or a date "
        "such as 2026-11-01",
        "✗ audit: '9999999999999999999999d' is too far back: write a duration such as 7d or "
        "24h, or a date such as 2026-11-01",
    ]
    assert "ChargeDesk commands" in result.stdout  # the shell lived on to answer `help`
    assert result.returncode == 1


def test_an_incident_shows_its_number_on_one_line_and_its_traceback_only_in_the_log(tmp_path):
    data = tmp_path / "data"
    assert shell(data, "help\n").returncode == 0  # the workspace and its database exist
    with sqlite3.connect(data / "chargedesk.db") as db:
        db.execute("DROP TABLE audit_log")  # the database breaks under the bot

    result = shell(data, "audit\n")
    assert result.stderr == ""
    assert "Traceback" not in result.stdout
    lines = [line for line in result.stdout.splitlines() if "incident" in line]
    assert len(lines) == 1, result.stdout
    incident = re.search(r"incident ([0-9a-f]{8})", lines[0])
    assert incident and lines[0].startswith("✗ audit failed on our side")
    log = (data / "chargedesk.log").read_text()
    assert f"incident {incident.group(1)}" in log and "Traceback" in log
    assert "audit_log" in log

    scripted = shell(data, "audit\n", "--json")
    assert scripted.stderr == "" and '"code": "internal"' in scripted.stdout
    assert len(scripted.stdout.splitlines()) == 1
