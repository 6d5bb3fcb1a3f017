"""PostgresStore building blocks: settings, the node's connection name, URLs in
messages, and the thread row insert (see :mod:`appserver.store.postgres`)."""

from __future__ import annotations

import socket
from typing import Final

import psycopg

from appserver.store import _pg_lifecycle, _pg_list, _pg_pages
from appserver.store._sql_common import thread_params
from appserver.store._sql_list import COLUMNS
from appserver.store._sql_store import StoreSql

__all__ = [
    "CONNECT_TIMEOUT_SECONDS",
    "DEFAULT_POOL_MAX",
    "DEFAULT_POOL_MIN",
    "INSERT_SETTINGS_SQL",
    "INSERT_THREAD_SQL",
    "POOL_WAIT_SECONDS",
    "SQL",
    "application_name",
    "default_node_id",
    "describe_url",
    "is_postgres_url",
    "thread_params",
]

DEFAULT_POOL_MIN: Final = 1
DEFAULT_POOL_MAX: Final = 8
CONNECT_TIMEOUT_SECONDS: Final = 10
#: How long a call waits for a pooled connection (all busy, or the server unreachable)
#: before it fails with StoreUnavailable (the turn machinery's retry policy takes over).
POOL_WAIT_SECONDS: Final = 2.0

INSERT_THREAD_SQL: Final = (
    "INSERT INTO threads (id, preview, name, model_provider, model, cwd, created_at, "
    "updated_at, recency_at, archived, preview_fold, name_fold) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING"
)
INSERT_SETTINGS_SQL: Final = "INSERT INTO thread_settings (thread_id, settings) VALUES (%s, %s)"

#: The PostgreSQL dialect of the shared store methods (``_sql_store``).
SQL: Final = StoreSql(
    p="%s",
    insert_thread=INSERT_THREAD_SQL,
    insert_settings=INSERT_SETTINGS_SQL,
    get_thread=f"SELECT {COLUMNS} FROM threads t WHERE t.id = %s",
    update_settings="UPDATE thread_settings SET settings = %s WHERE thread_id = %s",
    insert_turn="INSERT INTO turns (thread_id, id, status, started_at_ms) "
    "VALUES (%s, %s, 'inProgress', %s) ON CONFLICT (thread_id, id) DO NOTHING",
    set_preview="UPDATE threads SET preview = %s, preview_fold = %s WHERE id = %s",
    finish_turn="UPDATE turns SET status = %s, error = %s, completed_at_ms = %s WHERE seq = %s",
    get_turns="SELECT t.seq, t.id, t.status, t.error, t.started_at_ms, t.completed_at_ms, "
    "i.body FROM turns t LEFT JOIN items i ON i.turn_seq = t.seq "
    "WHERE t.thread_id = %s ORDER BY t.seq, i.seq",
    lock_thread="SELECT 1 FROM threads WHERE id = %s FOR UPDATE",
    pages=_pg_pages.SQL,
    list=_pg_list.SQL,
    lifecycle=_pg_lifecycle.SQL,
)


def is_postgres_url(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def default_node_id() -> str:
    """The node id when none is configured: the host name."""
    return socket.gethostname() or "appserver"


def application_name(node_id: str) -> str:
    """What every connection of the node is called in ``pg_stat_activity`` (at most
    63 bytes: PostgreSQL truncates longer names)."""
    return f"appserver:{node_id}"[:63]


def describe_url(url: str) -> str:
    """The URL without its password, for messages: ``postgresql://user@host:port/db``."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        return "postgresql://(unparsable URL)"
    user = f"{info['user']}@" if info.get("user") else ""
    port = f":{info['port']}" if info.get("port") else ""
    return f"postgresql://{user}{info.get('host', '')}{port}/{info.get('dbname', '')}"
