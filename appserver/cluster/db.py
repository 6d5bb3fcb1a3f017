"""A node's control connection (two per node: leases and heartbeat; the bus): one
psycopg connection (autocommit; each call one
transaction) used from worker threads, one call at a time. Every (re)connection gets a
new session token: leases are renewed by (node, session), so leases taken before a lost
connection stop renewing and expire (the node fences itself, node.py)."""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Callable
from typing import Any, TypeVar

import attrs
import psycopg
import trio

from appserver.store.errors import StoreUnavailable

log = logging.getLogger("appserver.cluster")

T = TypeVar("T")
Conn = psycopg.Connection[Any]

CONNECT_TIMEOUT = 3


def connect(conninfo: str, application_name: str) -> Conn:
    return psycopg.connect(
        conninfo,
        autocommit=True,
        application_name=application_name,
        connect_timeout=CONNECT_TIMEOUT,
    )


@attrs.define(eq=False)
class ControlDb:
    conninfo: str
    application_name: str
    session: str = ""
    _conn: Conn | None = None
    _lock: trio.Lock = attrs.Factory(trio.Lock)

    async def run(self, fn: Callable[[Conn, str], T]) -> T:
        """Run `fn(conn, session)` in one transaction in a worker thread; a connection
        error closes the connection (the next call reconnects with a new session) and
        raises StoreUnavailable."""
        async with self._lock:
            return await trio.to_thread.run_sync(self._run_sync, fn)

    def _run_sync(self, fn: Callable[[Conn, str], T]) -> T:
        try:
            if self._conn is None or self._conn.closed:
                self._conn = connect(self.conninfo, self.application_name)
                self.session = secrets.token_hex(8)
            with self._conn.transaction():
                return fn(self._conn, self.session)
        except psycopg.OperationalError as exc:
            self._drop()
            raise StoreUnavailable(f"cluster database connection: {exc}") from exc
        except psycopg.Error as exc:
            if self._conn is not None and self._conn.broken:
                self._drop()
            raise StoreUnavailable(f"cluster database: {exc}") from exc

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.close()

    async def aclose(self) -> None:
        async with self._lock:
            await trio.to_thread.run_sync(self._drop)
