"""PostgresStore building blocks: settings, the node's connection name, URLs in
messages, and the thread row insert (see :mod:`appserver.store.postgres`)."""

from __future__ import annotations

import socket
from typing import Any, Final

import psycopg

from appserver.store.base import ThreadRecord
from appserver.store.cursor import fold

__all__ = [
    "CONNECT_TIMEOUT_SECONDS",
    "DEFAULT_POOL_MAX",
    "DEFAULT_POOL_MIN",
    "INSERT_SETTINGS_SQL",
    "INSERT_THREAD_SQL",
    "POOL_WAIT_SECONDS",
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


def thread_params(record: ThreadRecord) -> tuple[Any, ...]:
    return (
        record.id,
        record.preview,
        record.name,
        record.model_provider,
        record.model,
        record.cwd,
        record.created_at,
        record.updated_at,
        record.recency_at,
        record.archived,
        fold(record.preview),
        None if record.name is None else fold(record.name),
    )
