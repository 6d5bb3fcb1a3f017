"""``PostgresStore``: the ThreadStore on PostgreSQL (psycopg 3, psycopg-pool).

The same contract, layout and cursor guarantees as the SQLite store (sqlite.py): threads,
turns and items are rows; turns and items are ordered by insertion seq; ``put_item``
upserts on (turn, item id); settings, items and errors are JSON text. The methods,
thread/list, pages, lifecycle writes and the event log are written once for both SQL
stores (``_sql_store``, ``_sql_list``, ``_sql_pages``, ``_sql_lifecycle``,
``_sql_events``); this store's SQL text is in ``_pg_rows`` and the ``_pg_*`` modules of
each area. Concurrency, the pool, failures and fencing: :mod:`._pg_conn`; schema and
migrations: :mod:`._pg_schema`.

Driver: psycopg 3's sync API in worker threads (as the SQLite store runs sqlite3), not
a trio-native driver: none is maintained for trio (asyncpg and psycopg's async API are
asyncio-only; trio-asyncio would add a second loop), and a store call is one short
transaction on a pooled connection, so a worker thread costs little next to it.

At open (``open_postgres_store``): one direct connection checks the server is reachable
(``connect_timeout``) and migrates; then the pool opens with ``pool_min`` connections;
any turn left ``inProgress`` (by a process that died) becomes ``interrupted``, unless
the store is one node of a cluster (``cluster=True``, issue 16 step 3): there the turns
belong to their owner nodes, and the cluster fences each thread's writes with its lease
(``fence``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import psycopg
import psycopg_pool
import trio

from appserver.store._pg_conn import Conn, PgConnections
from appserver.store._pg_events import SQL as EVENTS_SQL
from appserver.store._pg_rows import (
    CONNECT_TIMEOUT_SECONDS,
    DEFAULT_POOL_MAX,
    DEFAULT_POOL_MIN,
    POOL_WAIT_SECONDS,
    SQL,
    application_name,
    default_node_id,
    describe_url,
    is_postgres_url,
)
from appserver.store._pg_schema import SCHEMA_VERSION, migrate
from appserver.store._sql_events import SqlEvents
from appserver.store._sql_store import SqlStore
from appserver.store.base import StoreError
from appserver.store.cursor import DEFAULT_HISTORY_RETENTION_SECONDS
from appserver.store.errors import StoreOpenError

__all__ = [
    "DEFAULT_POOL_MAX",
    "DEFAULT_POOL_MIN",
    "SCHEMA_VERSION",
    "PostgresStore",
    "application_name",
    "default_node_id",
    "describe_url",
    "is_postgres_url",
    "open_postgres_store",
]


class PostgresStore(PgConnections, SqlEvents, SqlStore):
    """A ThreadStore in a PostgreSQL database; open it with :func:`open_postgres_store`."""

    SQL = SQL
    EVENTS_SQL = EVENTS_SQL

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        node_id: str | None = None,
        pool_min: int = DEFAULT_POOL_MIN,
        pool_max: int = DEFAULT_POOL_MAX,
        history_retention_seconds: float = DEFAULT_HISTORY_RETENTION_SECONDS,
        cluster: bool = False,
    ) -> PostgresStore:
        where = describe_url(url)
        name = application_name(node_id or default_node_id())
        pool_max = max(1, pool_max)
        pool_min = max(0, min(pool_min, pool_max))

        def connect() -> PostgresStore:
            try:
                conninfo = psycopg.conninfo.make_conninfo(
                    url, application_name=name, connect_timeout=CONNECT_TIMEOUT_SECONDS
                )
            except psycopg.Error as exc:
                raise StoreOpenError(f"bad PostgreSQL URL {where}: {exc}") from exc
            try:
                with psycopg.connect(conninfo, autocommit=True) as conn:
                    migrate(conn, where, name)
            except psycopg.Error as exc:
                raise StoreOpenError(f"cannot open the store at {where}: {_reason(exc)}") from exc
            pool: psycopg_pool.ConnectionPool[Conn] = psycopg_pool.ConnectionPool(
                conninfo,
                min_size=pool_min,
                max_size=pool_max,
                kwargs={"autocommit": True},
                check=psycopg_pool.ConnectionPool.check_connection,
                timeout=POOL_WAIT_SECONDS,
                reconnect_timeout=CONNECT_TIMEOUT_SECONDS,
                name=name,
                open=False,
            )
            try:
                pool.open(wait=pool_min > 0, timeout=CONNECT_TIMEOUT_SECONDS)
            except psycopg_pool.PoolTimeout as exc:
                pool.close()
                raise StoreOpenError(f"cannot open the store at {where}: {exc}") from exc
            return cls(
                where,
                pool,
                pool_max=pool_max,
                history_retention_seconds=history_retention_seconds,
                conninfo=conninfo,
                application_name=name,
                cluster=cluster,
            )

        store = await trio.to_thread.run_sync(connect)
        try:
            if not cluster:  # a cluster's running turns are their owner nodes' to end
                store.interrupted_at_open = await store.interrupt_running_turns()
            await store.prune_history()
        except BaseException as exc:
            await store.aclose()
            if isinstance(exc, StoreError) and not isinstance(exc, StoreOpenError):
                raise StoreOpenError(f"cannot open the store at {where}: {exc}") from exc
            raise
        return store


def _reason(exc: psycopg.Error) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextlib.asynccontextmanager
async def open_postgres_store(
    url: str,
    *,
    node_id: str | None = None,
    pool_min: int = DEFAULT_POOL_MIN,
    pool_max: int = DEFAULT_POOL_MAX,
    history_retention_seconds: float = DEFAULT_HISTORY_RETENTION_SECONDS,
    cluster: bool = False,
) -> AsyncIterator[PostgresStore]:
    """Open the store in the database at ``url`` (``postgresql://...``), migrating it
    as needed, and close it on exit. Raises :class:`StoreOpenError` (naming the URL
    without its password) for a bad URL, an unreachable server, refused credentials or
    too new a schema.

    ``cluster``: this process is one node of a cluster (issue 16 step 3): turns left
    ``inProgress`` are not marked ``interrupted`` at open (other nodes are running them;
    ``interrupted_at_open`` stays 0), and writes of a thread may be fenced
    (``PostgresStore.fence``)."""
    store = await PostgresStore.open(
        url,
        node_id=node_id,
        pool_min=pool_min,
        pool_max=pool_max,
        history_retention_seconds=history_retention_seconds,
        cluster=cluster,
    )
    try:
        yield store
    finally:
        await store.aclose()
