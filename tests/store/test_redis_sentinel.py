"""REDIS_URL naming a Redis Sentinel deployment: the URL's form, and the bot through real Sentinels.

The servers are real: a master, its replica and a Sentinel, each a `valkey-server` (the
binary the `embedded` extra ships, which runs as a Sentinel with `--sentinel`) or, without
that extra, `redis-server` from the PATH. Every one listens on a free port of 127.0.0.1.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bot import jobs
from bot.approvals.policy import Policy
from bot.demo.dataset import load_demo
from bot.mail.outbox import SENT, status
from bot.services import Services
from bot.settings import Settings
from bot.store.redis import RedisUnavailable, SentinelURL, connect, parse_sentinel_url
from bot.wiring import open_services
from tests.conftest import say
from tests.fakes.redis_servers import free_port, servers, until
from tests.mail.mailtools import queue_receipt, with_mail

SECRET = "s3cr:t@pass"


# --- the URL's form ---------------------------------------------------------------------------


def test_a_sentinel_url_names_every_sentinel_the_master_and_the_database() -> None:
    parsed = parse_sentinel_url(
        "redis+sentinel://:s3cr%3At%40pass@sentinel-a:26380,sentinel-b,[fd00::7]:26381/mymaster/2"
    )
    assert parsed == SentinelURL(
        sentinels=(("sentinel-a", 26380), ("sentinel-b", 26379), ("fd00::7", 26381)),
        service_name="mymaster",
        db=2,
        password=SECRET,
    )


def test_a_sentinel_url_carries_the_sentinels_own_credentials_apart_from_the_masters() -> None:
    parsed = parse_sentinel_url(
        "redis+sentinel://app:pw@s1:26379/cache?sentinel_username=watch&sentinel_password=spw"
    )
    assert parsed is not None
    assert (parsed.username, parsed.password, parsed.db) == ("app", "pw", 0)
    assert (parsed.sentinel_username, parsed.sentinel_password) == ("watch", "spw")
    assert "pw" not in repr(parsed)  # passwords stay out of logs that print the settings


@pytest.mark.parametrize(
    "url",
    ["redis://h:6379/0", "rediss://:pw@h:6380/1", "unix:///run/redis.sock", "h:6379"],
)
def test_other_urls_are_not_sentinel_urls(url: str) -> None:
    assert parse_sentinel_url(url) is None


@pytest.mark.parametrize(
    ("url", "names"),
    [
        ("redis+sentinel://s1:26379", "the path must be /service_name"),
        ("redis+sentinel://s1:26379/", "the path must be /service_name"),
        ("redis+sentinel://s1:26379/mymaster/0/1", "the path must be /service_name"),
        ("redis+sentinel://s1:26379/mymaster/zero", "the database 'zero' is not a number"),
        ("redis+sentinel://s1:port/mymaster", "s1:port is not host[:port]"),
        ("redis+sentinel://s1:26379,,s2/mymaster", "an empty entry is not host[:port]"),
        ("redis+sentinel://s1:99999/mymaster", "s1:99999 is not host[:port]"),
        ("redis+sentinel://s1/mymaster?db=3", "unknown parameter db"),
    ],
)
def test_a_malformed_sentinel_url_is_refused_in_one_line_naming_the_part(
    url: str, names: str
) -> None:
    with pytest.raises(RedisUnavailable) as refused:
        parse_sentinel_url(url)
    message = str(refused.value)
    assert names in message and "redis+sentinel://" in message and "\n" not in message


def test_a_refused_sentinel_url_hides_its_passwords() -> None:
    url = "redis+sentinel://:master-pw@s1/mymaster/x?sentinel_password=sentinel-pw"
    with pytest.raises(RedisUnavailable) as refused:
        parse_sentinel_url(url)
    assert "master-pw" not in str(refused.value) and "sentinel-pw" not in str(refused.value)


# --- real servers -----------------------------------------------------------------------------


@dataclass
class Deployment:
    """A master, its replica and one Sentinel watching them as `mymaster`."""

    master: int
    replica: int
    sentinel: int

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.sentinel}/mymaster/0"

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, decode_responses=True, socket_timeout=5)

    def role(self, port: int) -> str:
        with self.client(port) as client:
            return str(client.execute_command("ROLE")[0])


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    with servers(tmp_path) as started:
        master = started.start()
        replica = started.start("--replicaof", "127.0.0.1", str(master))
        # The Sentinel learns the replica from the master's INFO: start it once the replica is in.
        probe = Deployment(master, replica, 0)
        until(lambda: probe.role(replica) == "slave", "the replica follows the master")
        until(
            lambda: probe.client(master).info("replication")["connected_slaves"] == 1,
            "the master sees its replica",
        )
        config = tmp_path / "sentinel.conf"  # a Sentinel rewrites its file: one of its own
        config.write_text(
            f"sentinel monitor mymaster 127.0.0.1 {master} 1\n"
            "sentinel down-after-milliseconds mymaster 1000\n"
            "sentinel failover-timeout mymaster 10000\n"
        )
        found = Deployment(master, replica, started.start(str(config), "--sentinel"))

        def sentinel_sees_the_replica() -> bool:
            with found.client(found.sentinel) as client:
                return len(client.sentinel_slaves("mymaster")) == 1

        until(sentinel_sees_the_replica, "the Sentinel knows the replica")
        yield found


async def test_the_bot_writes_to_the_master_the_sentinel_names(
    deployment: Deployment, tmp_path: Path
) -> None:
    client, engine = await connect(deployment.url, tmp_path)
    try:
        assert engine is None  # no embedded engine is started for a Sentinel URL
        await client.set("chargedesk:probe", "through-sentinel")
    finally:
        await client.aclose()
    with deployment.client(deployment.master) as master:
        assert master.get("chargedesk:probe") == "through-sentinel"


async def test_after_a_failover_the_same_client_writes_to_the_new_master(
    deployment: Deployment, tmp_path: Path
) -> None:
    client, _ = await connect(deployment.url, tmp_path)
    try:
        await client.set("before", "1")
        assert await client.wait(1, 5000) == 1  # replication is asynchronous: let it arrive
        with deployment.client(deployment.sentinel) as sentinel:
            sentinel.execute_command("SENTINEL", "FAILOVER", "mymaster")
        await asyncio.to_thread(
            until, lambda: deployment.role(deployment.replica) == "master", "the promotion"
        )
        await asyncio.to_thread(
            until, lambda: deployment.role(deployment.master) == "slave", "the old master follows"
        )

        async def write_after() -> bool:
            try:
                await client.set("after", "2")
            except RedisError:  # the old master's connection is dropped; the next one asks again
                return False
            return True

        for _ in range(100):
            if await write_after():
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("no write reached the new master")
    finally:
        await client.aclose()
    with deployment.client(deployment.replica) as new_master:
        assert new_master.get("after") == "2"
        assert new_master.get("before") == "1"  # replicated before the failover


async def test_a_sentinel_that_does_not_answer_stops_the_bot_in_one_line(tmp_path: Path) -> None:
    url = f"redis+sentinel://:master-pw@127.0.0.1:{free_port()}/mymaster"
    with pytest.raises(RedisUnavailable) as refused:
        await connect(url, tmp_path)
    message = str(refused.value)
    assert message.startswith("cannot reach Redis at redis+sentinel://***@127.0.0.1:")
    assert "master-pw" not in message and "\n" not in message


@pytest.fixture
async def bot(
    deployment: Deployment, settings: Settings, tmp_path: Path, policy: Policy
) -> AsyncIterator[Services]:
    """The usual test bot, its Redis reached through the Sentinel."""
    on_sentinel = settings.model_copy(update={"redis_url": deployment.url})
    services = await open_services(on_sentinel, policy=policy)
    await load_demo(services.db)
    try:
        yield with_mail(services, outbox_dir=tmp_path / "outbox")
    finally:
        await services.close()


@pytest.mark.storage  # CI runs it again on PostgreSQL
async def test_a_bot_on_sentinel_keeps_budgets_and_runs_jobs_on_the_master(
    bot: Services, deployment: Deployment, agent, tmp_path: Path
) -> None:
    refund = await say(bot, agent, "refund ch_jane_1 20 reason: goodwill sorry")
    assert refund.approval.state == "succeeded"  # alone under the policy: spends the budget
    email = await queue_receipt(bot, "R-1")
    await jobs.enqueue_email(bot, email)
    await jobs.run_worker(bot, burst=True, poll_delay=0.05)  # the worker's pool, via Sentinel

    assert (await status(bot.db, email)).state == SENT
    assert (tmp_path / "outbox" / f"{email}.eml").exists()
    with deployment.client(deployment.master) as master:
        keys = master.keys(f"{bot.settings.redis_prefix}*")
    assert any("budget" in key for key in keys), keys  # the day's spend lives on the master


async def test_a_sentinel_client_closes_its_sentinel_connections(
    deployment: Deployment, tmp_path: Path
) -> None:
    client, _ = await connect(deployment.url, tmp_path)
    sentinels = client.connection_pool.sentinel_manager.sentinels  # type: ignore[attr-defined]
    await client.aclose()
    for sentinel in sentinels:
        assert isinstance(sentinel, aioredis.Redis)
        assert not sentinel.connection_pool._in_use_connections  # nothing left open
        assert all(c._reader is None for c in sentinel.connection_pool._available_connections)
