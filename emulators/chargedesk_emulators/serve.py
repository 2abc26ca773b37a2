"""Run an emulator's ASGI app in a background thread: for tests and benches (`running`,
`ServerThread`), and for `python -m chargedesk_emulators.<name>` (`command`, `command_line`)."""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

import uvicorn


class Servable(Protocol):
    """An emulator object: its app, its name for messages, and what `python -m` prints."""

    name: str
    base_url: str

    def app(self) -> Any: ...

    def banner(self) -> list[str]:
        """The credentials, and the settings pointing the bot here."""
        ...


S = TypeVar("S", bound=Servable)


class ServerThread:
    """`app` served by uvicorn in a daemon thread, on a free loopback port unless told;
    over HTTPS when given a certificate and its key."""

    def __init__(
        self,
        app: Any,
        name: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        certfile: Path | None = None,
        keyfile: Path | None = None,
    ) -> None:
        self.name = name
        self.host = host
        self.scheme = "https" if certfile else "http"
        self._server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=host,
                port=port,
                log_level="warning",
                lifespan="off",
                access_log=False,
                ssl_certfile=str(certfile) if certfile else None,
                ssl_keyfile=str(keyfile) if keyfile else None,
            )
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def start(self) -> str:
        """Serve; returns the base URL once the port is bound."""
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the {self.name} did not start")
            time.sleep(0.01)
        bound = self._server.servers[0].sockets[0].getsockname()[1]
        return f"{self.scheme}://{self.host}:{bound}"

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


@contextmanager
def serving(
    app: Any,
    name: str,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    certfile: Path | None = None,
    keyfile: Path | None = None,
) -> Iterator[str]:
    """Serve `app` on a free loopback port (or `host`:`port`); yields its base URL, stops on exit."""
    server = ServerThread(app, name, host=host, port=port, certfile=certfile, keyfile=keyfile)
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


@contextmanager
def running(
    emulator: S, *, certfile: Path | None = None, keyfile: Path | None = None
) -> Iterator[S]:
    """Serve `emulator` on 127.0.0.1 with a free port, in a background thread (over HTTPS
    when given a certificate); its `base_url` says where."""
    with serving(
        emulator.app(), f"{emulator.name} emulator", certfile=certfile, keyfile=keyfile
    ) as url:
        emulator.base_url = url
        yield emulator


def wait_for_interrupt() -> None:
    """Block until interrupted (Ctrl-C)."""
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


def command_line(
    name: str, app: Any, started: Callable[[str], list[str]], argv: list[str] | None
) -> None:
    """`python -m chargedesk_emulators.<name> [--host H] [--port P]`: serve until interrupted.

    `started(base_url)` is called once the port is bound (an emulator whose answers link back to
    itself learns its URL there) and returns the lines telling a user how to point the bot at it.
    """
    parser = argparse.ArgumentParser(description=f"A local {name} API emulator.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="default 0: a free port")
    args = parser.parse_args(argv)
    with serving(app, f"{name} emulator", host=args.host, port=args.port) as url:
        for line in started(url):
            print(line, flush=True)
        print(f"{name} emulator listening on {url}", flush=True)  # last: the banner is complete
        wait_for_interrupt()


def command(emulator: Servable, argv: list[str] | None) -> None:
    """`python -m chargedesk_emulators.<name>`: serve until interrupted, its `banner()` first."""

    def started(url: str) -> list[str]:
        emulator.base_url = url
        return emulator.banner()

    command_line(emulator.name, emulator.app(), started, argv)
