"""SQL engine and transactions.

SQLite (the default) runs in WAL mode with a busy timeout; transactions that
write open with BEGIN IMMEDIATE so that several processes sharing the file
serialize their writes instead of failing half-way. PostgreSQL needs none of
that: conditional updates and row locks do the work.

A missing driver or a server that does not answer raises DatabaseUnavailable,
whose one-line message the CLI prints instead of a traceback.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

MIGRATIONS = Path(__file__).parent / "migrations"

# asyncpg is the `postgres` extra: a SQLite-only install runs without it.
NO_DRIVER = (
    "DATABASE_URL names PostgreSQL but its driver, asyncpg, is not installed: "
    "pip install 'chargedesk-bot[postgres]' (or from the lock: pip install -r requirements/server.txt)"
)


class DatabaseUnavailable(Exception):
    """The SQL store cannot be used at all: its driver is missing or it does not answer."""


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            self.engine = create_async_engine(url, connect_args={"timeout": 30})
            _sqlite_pragmas(self.engine)
        else:
            try:
                self.engine = create_async_engine(
                    url, pool_size=10, max_overflow=20, pool_pre_ping=True
                )
            except ImportError as exc:  # the engine imports its driver here
                if exc.name != "asyncpg":
                    raise
                raise DatabaseUnavailable(f"{NO_DRIVER}: {exc}") from None

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with AsyncSession(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A transaction that writes: committed on success, rolled back on any error."""
        async with self.engine.connect() as conn:
            await conn.execution_options(immediate=True)
            async with AsyncSession(bind=conn, expire_on_commit=False) as session, session.begin():
                yield session

    async def ping(self) -> None:
        """Open one connection, or raise DatabaseUnavailable saying where and why not."""
        try:
            async with self.engine.connect():
                pass
        except (OSError, DBAPIError) as exc:  # refused, unknown host, timeout; auth, no database
            reason = " ".join(str(getattr(exc, "orig", None) or exc).split())
            where = make_url(self.url).render_as_string(hide_password=True)
            raise DatabaseUnavailable(f"cannot reach the database at {where}: {reason}") from None

    async def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (the first contact of every command)."""
        await self.ping()
        async with self.engine.begin() as conn:
            await conn.run_sync(_upgrade)

    async def close(self) -> None:
        await self.engine.dispose()


def alembic_config(connection: Any = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _upgrade(sync_conn: Any) -> None:
    command.upgrade(alembic_config(sync_conn), "head")


def _sqlite_pragmas(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from the driver so BEGIN is ours to write.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
