"""Start-up and footprint beside their floors, measured in the same run (min/median of --runs):

- `chargedesk shell --demo` to its first prompt, on a terminal (a pty): a fresh temporary
  workspace, SQLite migrated, the embedded Redis engine started, the demo dataset loaded.
  Target: under 1 s (shown beside `python -c "import argparse, asyncio, pydantic"`).
- `chargedesk serve` resident memory (VmRSS of the server process; the embedded Redis
  engine is a process of its own, not counted) on the demo defaults (the packaged demo
  configuration, SQLite, embedded Redis), once it listens and after one GET /livez, beside
  a bare Starlette app with one /livez route served by uvicorn the same way. Target: 2.5x.
  Shown beside it, for scale: the same bare app with the libraries `serve` cannot start
  without imported (SQLAlchemy's asyncio engine and aiosqlite, redis-py, pydantic-settings,
  Alembic, which migrates the database at start).

Exits 1 when a target is missed:
    python bench/footprint.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import pty
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import table

ROOT = Path(__file__).resolve().parent.parent
DEMO_CONFIG = ROOT / "bot" / "demo" / "config"
PROMPT = b"chargedesk ("  # Shell.prompt(): "chargedesk (alex · agent)> "
SHELL_TARGET = 1.0  # seconds to the first prompt
RSS_TARGET = 2.5  # serve's VmRSS over the bare Starlette app's
BARE_APP = """
import sys, uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

async def livez(request):
    return JSONResponse({"status": "ok"})

uvicorn.run(Starlette(routes=[Route("/livez", livez)]), host="127.0.0.1",
            port=int(sys.argv[1]), log_level="info", log_config=None)
"""
NEEDED = (
    "import aiosqlite, alembic.command, pydantic_settings, redis.asyncio, sqlalchemy.ext.asyncio\n"
)


def _installed_env() -> dict[str, str]:
    """This environment, but with bytecode caching on: an installed package runs from the
    .pyc files written at install, so a checkout run with PYTHONDONTWRITEBYTECODE would
    time the compiler, not the bot (the untimed warm-up run writes them)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _demo_env(data_dir: str) -> dict[str, str]:
    """The environment of `--demo` for commands that have no such flag: demo config, fresh
    data dir, no SQL or Redis server named (so SQLite and the embedded engine)."""
    env = {k: v for k, v in _installed_env().items() if not k.startswith("CHARGEDESK_")}
    for name in ("DATABASE_URL", "REDIS_URL", "SMTP_URL"):
        env.pop(name, None)
    env.update(CHARGEDESK_CONFIG_DIR=str(DEMO_CONFIG), CHARGEDESK_DATA_DIR=data_dir)
    return env


SHELL = [sys.executable, "-m", "bot", "shell", "--demo"]


def shell_first_prompt(command: list[str] = SHELL, timeout: float = 60.0) -> float:
    """Seconds from starting `chargedesk shell --demo` on a pty to its prompt being drawn
    (`--demo` makes, and on exit removes, a workspace of its own)."""
    main_fd, child_fd = pty.openpty()
    env = {k: v for k, v in _installed_env().items() if not k.startswith("CHARGEDESK_")}
    started = time.perf_counter()
    process = subprocess.Popen(
        command, stdin=child_fd, stdout=child_fd, stderr=child_fd, env=env, cwd=ROOT,
        start_new_session=True,
    )  # fmt: skip
    os.close(child_fd)
    seen = b""
    try:
        while PROMPT not in seen:
            if time.perf_counter() - started > timeout:
                raise RuntimeError(f"no prompt within {timeout:g} s; the shell said:\n{seen!r}")
            ready, _, _ = select.select([main_fd], [], [], 0.5)
            if ready:
                try:
                    seen += os.read(main_fd, 65536)
                except OSError:  # the shell ended (EIO on a closed pty)
                    raise RuntimeError(f"the shell ended before its prompt:\n{seen!r}") from None
        elapsed = time.perf_counter() - started
        os.write(main_fd, b"\x04")  # Ctrl-D: leave, removing the demo workspace
        _drain(main_fd, process)
        return elapsed
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(main_fd)


def _drain(fd: int, process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """Read what the shell prints while it closes (a full pty would stall it), until it exits."""
    deadline = time.perf_counter() + timeout
    while process.poll() is None and time.perf_counter() < deadline:
        if select.select([fd], [], [], 0.2)[0]:
            try:
                os.read(fd, 65536)
            except OSError:
                break
    process.wait(timeout=max(deadline - time.perf_counter(), 1))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def served_rss(command: Callable[[int], list[str]], env: dict[str, str]) -> tuple[int, int]:
    """VmRSS (KiB) of a server once it listens, and after one GET /livez."""
    port = _free_port()
    process = subprocess.Popen(
        command(port), env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.perf_counter() + 60
        while True:  # uvicorn listens once the app's start-up (lifespan) is done
            if process.poll() is not None:
                raise RuntimeError(f"{command(port)} ended: {process.stderr.read().decode()}")  # type: ignore[union-attr]
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"{command(port)} did not listen within 60 s") from None
                time.sleep(0.05)
        listening = _rss_kib(process.pid)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/livez", timeout=10) as answer:
            assert answer.status == 200, answer.status
        return listening, _rss_kib(process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    floor_args = [sys.executable, "-c", "import argparse, asyncio, pydantic"]
    seconds: dict[str, list[float]] = {"floor": [], "shell": []}
    kib: dict[str, list[int]] = {
        k: [] for k in ("bare", "bare+1", "needed", "needed+1", "serve", "serve+1")
    }
    shell_first_prompt()  # warm-up, untimed: writes the bytecode caches, warms the disk cache
    for _ in range(runs):  # interleaved, so a busy moment touches every case alike
        started = time.perf_counter()
        subprocess.run(floor_args, capture_output=True, check=True, env=_installed_env())
        seconds["floor"].append(time.perf_counter() - started)
        seconds["shell"].append(shell_first_prompt())
        bare = served_rss(
            lambda port: [sys.executable, "-c", BARE_APP, str(port)], _installed_env()
        )
        needed = served_rss(
            lambda port: [sys.executable, "-c", NEEDED + BARE_APP, str(port)], _installed_env()
        )
        with tempfile.TemporaryDirectory(prefix="chargedesk-bench-") as data_dir:
            serve = served_rss(
                lambda port: [sys.executable, "-m", "bot", "serve", "--port", str(port)],
                _demo_env(data_dir),
            )
        for key, value in zip(kib, (*bare, *needed, *serve), strict=True):
            kib[key].append(value)
    floor = statistics.median(seconds["floor"])
    shell = statistics.median(seconds["shell"])

    def mib(values: list[int]) -> tuple[str, str]:
        return f"{min(values) / 1024:.1f} MiB", f"{statistics.median(values) / 1024:.1f} MiB"

    bare_after, serve_after = statistics.median(kib["bare+1"]), statistics.median(kib["serve+1"])
    rows = [
        ["floor: python -c 'import argparse, asyncio, pydantic'",
         f"{min(seconds['floor']) * 1000:.0f} ms", f"{floor * 1000:.0f} ms", "1.00x", ""],
        ["chargedesk shell --demo, to its first prompt",
         f"{min(seconds['shell']) * 1000:.0f} ms", f"{shell * 1000:.0f} ms",
         f"{shell / floor:.2f}x", f"< {SHELL_TARGET:g} s"],
        ["floor: bare Starlette app on uvicorn, listening", *mib(kib["bare"]), "1.00x", ""],
        ["floor: bare Starlette app, after GET /livez", *mib(kib["bare+1"]), "1.00x", ""],
        ["for scale: the bare app + SQLAlchemy, redis-py, pydantic-settings, Alembic",
         *mib(kib["needed+1"]), f"{statistics.median(kib['needed+1']) / bare_after:.2f}x", ""],
        ["chargedesk serve (demo defaults), listening", *mib(kib["serve"]),
         f"{statistics.median(kib['serve']) / statistics.median(kib['bare']):.2f}x", ""],
        ["chargedesk serve (demo defaults), after GET /livez", *mib(kib["serve+1"]),
         f"{serve_after / bare_after:.2f}x", f"<= {RSS_TARGET:g}x"],
    ]  # fmt: skip
    print(f"{runs} runs each, interleaved; ratio of medians to the floor above each figure")
    print(table(["process", "min", "median", "vs floor", "target"], rows))
    missed = []
    if shell >= SHELL_TARGET:
        missed.append(
            f"shell --demo took {shell:.2f} s to its prompt (target < {SHELL_TARGET:g} s)"
        )
    if serve_after / bare_after > RSS_TARGET:
        missed.append(f"serve holds {serve_after / bare_after:.2f}x a bare Starlette app "
                      f"(target {RSS_TARGET:g}x)")  # fmt: skip
    for line in missed:
        print(f"MISSED: {line}", file=sys.stderr)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
