"""Async engine and sessions per service; Alembic migrations per service schema."""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

log = logging.getLogger("minyi.db")

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def service_metadata(schema: str) -> MetaData:
    return MetaData(schema=schema, naming_convention=NAMING_CONVENTION)


# A connection handed back this recently is as good as pinged; one idle for longer is pinged before
# use (the server may have restarted or dropped it meanwhile). SQLAlchemy's `pool_pre_ping` pings at
# every checkout, which with asyncpg is three round trips (BEGIN, ";", ROLLBACK) before each
# transaction: as many as a one-statement transaction's own BEGIN, statement and COMMIT
# (bench/intake_submit.py, bench/README.md).
PING_IDLE_SECONDS = 1.0
_CHECKED_IN = "minyi_checked_in"


def _alive(dialect: Dialect, dbapi_connection: object) -> bool:
    try:
        return bool(dialect.do_ping(dbapi_connection))  # type: ignore[arg-type]
    except dialect.loaded_dbapi.Error as err:
        if dialect.is_disconnect(err, dbapi_connection, None):  # type: ignore[arg-type]
            return False
        raise


def _ping_when_idle(engine: AsyncEngine) -> None:
    dialect = engine.sync_engine.dialect

    @event.listens_for(engine.sync_engine, "checkin")
    def checked_in(dbapi_connection: object, record: ConnectionPoolEntry) -> None:
        record.info[_CHECKED_IN] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def checked_out(dbapi_connection: object, record: ConnectionPoolEntry, proxy: PoolProxiedConnection) -> None:
        last = record.info.get(_CHECKED_IN)
        if last is None:
            return  # fresh from connect
        driver = getattr(dbapi_connection, "driver_connection", None)
        closed = driver is not None and driver.is_closed()
        if closed or (time.monotonic() - last >= PING_IDLE_SECONDS and not _alive(dialect, dbapi_connection)):
            # As pool_pre_ping does: drop every pooled connection older than this one and connect anew.
            raise sa_exc.InvalidatePoolError()


def make_engine(url: str, *, application_name: str, pool_size: int = 10) -> AsyncEngine:
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        # A short spike may borrow a few more; they are closed when returned.
        max_overflow=max(2, pool_size // 4),
        pool_recycle=1800,
        connect_args={"server_settings": {"application_name": application_name, "timezone": "UTC"}},
    )
    _ping_when_idle(engine)
    return engine


@dataclass
class Database:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        application_name: str,
        pool_size: int = 10,
        on_commit: Callable[[Session], None] | None = None,
    ) -> Database:
        """`on_commit` runs after every commit of this database's sessions (the outbox wakes its relay)."""
        engine = make_engine(url, application_name=application_name, pool_size=pool_size)
        session_class = type(f"{application_name}Session", (Session,), {})
        if on_commit is not None:
            event.listen(session_class, "after_commit", on_commit)
        return cls(engine, async_sessionmaker(engine, expire_on_commit=False, sync_session_class=session_class))

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session, session.begin():
            yield session

    async def ping(self, timeout: float = 2.0) -> None:
        async with asyncio.timeout(timeout), self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


# A database that is away, not a statement at fault: connection exceptions (SQLSTATE class 08), a
# server shutting down or starting up (57P01-57P03), no connection slot free (53300).
AWAY_STATES = ("08", "57P01", "57P02", "57P03", "53300")


def unreachable(exc: BaseException) -> bool:
    """Whether a failure says the database (or the way to it) is away: worth trying again later."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        cur = todo.pop()
        if id(cur) in seen:
            continue
        seen.add(id(cur))
        if isinstance(cur, ConnectionError) or getattr(cur, "connection_invalidated", False):
            return True
        state = getattr(cur, "sqlstate", None)
        if isinstance(state, str) and state.startswith(AWAY_STATES):
            return True
        linked = (cur.__cause__, cur.__context__, getattr(cur, "orig", None))
        todo += [e for e in linked if isinstance(e, BaseException)]
    return False


# ---- migrations ---------------------------------------------------------------------------------


def migrations_dir(service: str) -> Path:
    return Path(__file__).resolve().parent.parent / "services" / service / "migrations"


def alembic_config(service: str, url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir(service)))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", str(migrations_dir(service) / "versions"))
    cfg.attributes["database_url"] = url
    cfg.attributes["schema"] = service
    return cfg


def upgrade(service: str, url: str, revision: str = "head") -> None:
    """Blocking: run from a thread or a command, never inside a running event loop."""
    command.upgrade(alembic_config(service, url), revision)


async def upgrade_async(service: str, url: str) -> None:
    await asyncio.to_thread(upgrade, service, url)


def run_env(target_metadata: MetaData) -> None:
    """The body of every service's `migrations/env.py`.

    Replicas starting together must not race: an advisory lock keyed by the schema serialises
    them, and the ones that wait find the schema already at head.
    """
    from alembic import context

    cfg = context.config
    url = cfg.attributes.get("database_url") or cfg.get_main_option("sqlalchemy.url")
    schema = cfg.attributes.get("schema") or target_metadata.schema
    if not url or not schema:
        raise RuntimeError("migrations need a database URL and a schema")

    def include_name(name: str | None, type_: str, parent_names: object) -> bool:
        return type_ != "schema" or name == schema

    def run(connection: Connection) -> None:
        lock_key = zlib.crc32(f"minyi-migrate-{schema}".encode())
        connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": lock_key})
        try:
            connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            connection.commit()
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                version_table_schema=schema,
                include_schemas=True,
                include_name=include_name,
                transaction_per_migration=True,
            )
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock_key})
            connection.commit()

    async def main() -> None:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                await conn.run_sync(run)
        finally:
            await engine.dispose()

    asyncio.run(main())
