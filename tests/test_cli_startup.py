"""`chargedesk --help` answers from argparse alone: nothing heavy is imported before a command
is chosen (bench/startup.py measures the time; this pins what makes it fast)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

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


# Libraries a process loads only when it uses them: documents (fpdf2 and what it pulls in),
# reports (matplotlib, openpyxl), each gateway's SDK, each chat platform's SDK.
ON_USE_ONLY = (
    "fpdf", "fontTools", "numpy", "PIL", "matplotlib", "openpyxl",
    "stripe", "braintree", "recurly", "paypalserversdk", "requests",
    "discord", "slack_bolt", "slack_sdk",
)  # fmt: skip
DEMO_DEFAULTS = Path(__file__).resolve().parent.parent / "bot" / "demo" / "config"


def _loaded_on_demo_defaults(tmp_path: Path, work: str) -> list[str]:
    """Which ON_USE_ONLY libraries are in sys.modules after `work` runs in a fresh process on
    the demo defaults (demo configuration, SQLite, no Redis server named)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHARGEDESK_")}
    for name in ("DATABASE_URL", "REDIS_URL"):
        env.pop(name, None)
    env.update(CHARGEDESK_CONFIG_DIR=str(DEMO_DEFAULTS), CHARGEDESK_DATA_DIR=str(tmp_path))
    probe = f"import sys\n{work}\nprint(sorted(m for m in {ON_USE_ONLY!r} if m in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True
    )
    return ast.literal_eval(done.stdout.strip().splitlines()[-1])


def test_serve_app_loads_no_document_report_gateway_or_chat_library_it_does_not_use(
    tmp_path: Path,
) -> None:
    work = "from bot.settings import load_settings\nfrom bot.web import create_app\ncreate_app(load_settings())"
    assert _loaded_on_demo_defaults(tmp_path, work) == []


def test_shell_loads_no_document_report_gateway_or_chat_library_before_it_is_used(
    tmp_path: Path,
) -> None:
    # What `chargedesk shell` imports before its prompt, and the listeners services open with.
    work = (
        "import bot.cli, bot.chat.shell.adapter, bot.demo.dataset, bot.jobs\n"
        "from bot.wiring import configured_listeners\nconfigured_listeners()\n"
        "import bot.chat.remote, bot.panel.door"
    )
    assert _loaded_on_demo_defaults(tmp_path, work) == []
