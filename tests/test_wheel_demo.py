"""The installed wheel, run outside the repository, shows the demo exactly as the repository does.

Slow-ish (about 20 s): it builds the project's wheel and starts the bot four times.
Every CHARGEDESK_* variable is left out, as on a new user's machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from tests.conftest import REPO

pytestmark = pytest.mark.slow

# `python -m bot`, after saying which `bot` it imported.
AS_MODULE = (
    "import runpy, sys, bot; print('bot imported from', bot.__file__, file=sys.stderr); "
    "runpy.run_module('bot', run_name='__main__', alter_sys=True)"
)
SCRIPT = "receipt ch_kowalski_1\nrefund ch_jane_1 20 reason: goodwill sorry\n"
REVERSE_CHARGE_PL = "Odwrotne obciążenie: podatek VAT rozlicza nabywca"


def run(args: list[str], **options: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, **options)


def new_users_env(pythonpath: Path) -> dict[str, str]:
    unset = ("PYTHONPATH", "DATABASE_URL", "REDIS_URL", "SMTP_URL")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    return {k: v for k, v in env.items() if not k.startswith("CHARGEDESK_")} | {
        "PYTHONPATH": str(pythonpath)
    }


@pytest.fixture(scope="module")
def wheel_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, installed into a folder of its own; returns that folder."""
    root = tmp_path_factory.mktemp("wheel")
    # Built from a copy: building in the working tree would write build/ and egg-info there.
    source = root / "source"
    shutil.copytree(REPO / "bot", source / "bot", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", *(p.name for p in REPO.glob("LICENSE*"))):
        shutil.copy(REPO / name, source / name)
    # The lock installs setuptools: build offline with it. Without it pip fetches one.
    offline = ["--no-build-isolation", "--no-index"] if find_spec("setuptools") else []
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", *offline, "-q",
                 "-w", str(root / "dist"), str(source)])  # fmt: skip
    assert built.returncode == 0, built.stderr
    (wheel,) = (root / "dist").glob("chargedesk_bot-*.whl")
    site = root / "site"
    installed = run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q",
                     "--target", str(site), str(wheel)])  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    return site


@dataclass
class Run:
    bot_file: Path
    stdout: str
    stderr: str

    @property
    def replies(self) -> list[dict]:
        return [json.loads(line) for line in self.stdout.splitlines()]


def chargedesk(cwd: Path, pythonpath: Path, *args: str, stdin: str = "") -> Run:
    done = run([sys.executable, "-c", AS_MODULE, *args], input=stdin, cwd=cwd,
               env=new_users_env(pythonpath))  # fmt: skip
    first, _, rest = done.stderr.partition("\n")
    assert first.startswith("bot imported from "), done.stderr
    return Run(Path(first.removeprefix("bot imported from ")), done.stdout, rest)


def demo(cwd: Path, pythonpath: Path, files: Path) -> tuple[Run, str]:
    """The demo shell issuing a receipt and refunding 20 EUR; and that receipt's text."""
    shell = chargedesk(cwd, pythonpath, "shell", "--demo", "--json", "--files-dir", str(files),
                       stdin=SCRIPT)  # fmt: skip
    assert len(shell.replies) == 2, shell.stderr
    (pdf,) = files.glob("*.pdf")
    reader = PdfReader(pdf)
    assert reader.pages[0].images, "the demo seller's logo is on the receipt"
    return shell, reader.pages[0].extract_text()


def cards(reply: dict) -> list[dict]:
    return reply["cards"]


def test_demo_from_the_wheel_outside_the_repo_issues_the_same_documents(wheel_site, tmp_path):
    outside = tmp_path / "somewhere"
    outside.mkdir()
    wheel, wheel_pdf = demo(outside, wheel_site, tmp_path / "wheel-files")
    repo, repo_pdf = demo(REPO, REPO, tmp_path / "repo-files")

    assert wheel.bot_file == wheel_site / "bot" / "__init__.py"
    assert repo.bot_file == REPO / "bot" / "__init__.py"
    receipt, refund = wheel.replies
    # The demo seller, the reverse charge for a Polish business, in Polish.
    assert "ChargeDesk Demo GmbH" in wheel_pdf and REVERSE_CHARGE_PL in wheel_pdf
    assert wheel_pdf == repo_pdf
    assert cards(receipt) == cards(repo.replies[0])
    # Agents refund up to 50.00 EUR alone under the demo policy.
    assert refund["approval"]["state"] == "succeeded", refund
    assert repo.replies[1]["approval"]["state"] == "succeeded"
    assert not list(outside.iterdir())  # the demo leaves nothing behind


def test_the_wheel_without_configuration_warns_and_refuses_documents(wheel_site, tmp_path):
    loaded = chargedesk(tmp_path, wheel_site, "demo")  # the demo data, in ./.chargedesk
    assert loaded.bot_file == wheel_site / "bot" / "__init__.py"
    shell = chargedesk(tmp_path, wheel_site, "shell", "--json", stdin=SCRIPT)
    receipt, refund = shell.replies

    folder = tmp_path / ".chargedesk" / "config"
    assert "warning: no configuration folder" in shell.stderr
    assert f"`chargedesk init` writes one to {folder}" in shell.stderr
    assert receipt["error"] == {
        "code": "no_seller",
        "message": f"documents need a seller: write {folder / 'branding.toml'} "
        "(chargedesk init writes one)",
    }
    # Without a policy file every refund needs a manager: the safe default, said at start.
    assert refund["approval"]["state"] == "pending"

    started = chargedesk(tmp_path, wheel_site, "init")  # the starting files are in the wheel
    assert f"to {folder}" in started.stdout, started.stderr
    assert sorted(p.name for p in folder.iterdir()) == [
        "branding.toml", "chargedesk.toml", "policy.toml", "tax.toml",
    ]  # fmt: skip
