"""`chargedesk --help` answers from argparse alone: nothing heavy is imported before a command
is chosen (bench/startup.py measures the time; this pins what makes it fast)."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("bot.settings", "bot.wiring", "sqlalchemy", "alembic", "httpx", "pydantic_settings")


@pytest.mark.parametrize("argv", [["--help"], ["shell", "--help"], ["shel"]])
def test_help_and_usage_errors_import_nothing_heavy(argv: list[str]) -> None:
    probe = (
        "import sys\nfrom bot.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert "usage: chargedesk" in done.stdout + done.stderr
