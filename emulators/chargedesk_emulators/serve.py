"""Run an emulator's ASGI app in a background thread: for tests and benches, and for
`python -m chargedesk_emulators.<name>` (`command_line`)."""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


@contextmanager
def serving(app: Any, name: str, *, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve `app` on a free loopback port (or `host`:`port`); yields its base URL, stops on exit."""
    server = uvicorn.Server(
        uvicorn.Config(
            app, host=host, port=port, log_level="warning", lifespan="off", access_log=False
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the {name} did not start")
        time.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


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
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
