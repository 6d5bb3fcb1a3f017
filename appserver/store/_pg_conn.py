"""The PostgreSQL store's plumbing (``PostgresStore`` in postgres.py builds on it): the
connection pool, one transaction per call in a worker thread, the errors a psycopg
failure becomes, the row locks that keep writes in order, and the maintenance writes.

- Pool: ``psycopg_pool.ConnectionPool`` of ``pool_min``..``pool_max`` autocommit
  connections, each with ``application_name`` ``appserver:<node-id>``. Every call
  borrows one connection for one transaction in a worker thread
  (``trio.to_thread.run_sync``, at most ``pool_max`` at once through a
  ``CapacityLimiter``, so no worker thread waits on the pool). A borrowed connection is
  checked first (``check_connection``): one killed while idle (``pg_terminate_backend``,
  a restarted server) is replaced, and the call goes on with a new one.
- Reads run in ``REPEATABLE READ READ ONLY`` transactions (one snapshot per page, as
  SQLite's read transactions). Writes run in ``READ COMMITTED`` transactions; every
  write that changes a thread's sort keys first locks the thread row (``FOR UPDATE``),
  then the ``store_state`` row (the change sequence), always in that order, so writes
  never deadlock, change seqs are handed out in commit order, and a thread's turns and
  items get their seqs in commit order (keyset cursors skip nothing).
- Failures (PROTOCOL.md §8.6): a lost connection, an unreachable or shut-down server,
  a deadlock or serialization failure, a full disk (``OperationalError`` and the
  connection-level errors) raise :class:`StoreUnavailable`; the transaction did not
  commit (or, if the connection died during COMMIT itself, its outcome is unknown: the
  writes the turn machinery retries are idempotent). Misuse (a constraint, bad data)
  stays a plain ``StoreError``.
- Fencing (the cluster, issue 16 step 3): ``fence(thread, node, epoch)`` makes every
  later write of that thread first run ``LEASE_SQL`` (its ``thread_leases`` row, ``FOR
  SHARE``: a takeover's UPDATE of the row waits for the write to commit) in the same
  transaction, and raise :class:`LeaseLost` (rolled back, final) unless the row names
  that node and epoch. An unfenced thread's writes run no extra query.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
import psycopg_pool
import trio

from appserver.store.base import StoreError, ThreadNotStored
from appserver.store.cursor import DEFAULT_HISTORY_RETENTION_SECONDS
from appserver.store.errors import LeaseLost, StoreClosed, StoreUnavailable, TurnNotStored

T = TypeVar("T")
Conn = psycopg.Connection[Any]

__all__ = ["LEASE_SQL", "Conn", "PgConnections", "check_lease", "pg_error"]

#: What a fenced write runs first (in its own transaction).
LEASE_SQL = "SELECT node_id, epoch FROM thread_leases WHERE thread_id = %s FOR SHARE"

# Errors that mean the database is (maybe only for now) not there or not able to work.
_UNAVAILABLE = (
    psycopg.OperationalError,
    psycopg.InterfaceError,
    psycopg.errors.AdminShutdown,
    psycopg.errors.DiskFull,
    psycopg_pool.PoolTimeout,
    psycopg_pool.PoolClosed,
)


def pg_error(where: str, exc: Exception) -> StoreError:
    """The store error for a psycopg error on the store at ``where``."""
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    message = f"store at {where}: {reason}"
    if isinstance(exc, _UNAVAILABLE):
        return StoreUnavailable(message)
    return StoreError(message)


def check_lease(conn: Conn, thread_id: str, node_id: str, epoch: int) -> None:
    """Raise :class:`LeaseLost` unless ``thread_id``'s lease row is (node_id, epoch),
    share-locking the row for the rest of the transaction."""
    row = conn.execute(LEASE_SQL, (thread_id,)).fetchone()
    if row is None:
        raise LeaseLost(thread_id, None, None)
    if row[0] != node_id or int(row[1]) != epoch:
        raise LeaseLost(thread_id, str(row[0]), int(row[1]))


def _fenced(
    fn: Callable[[Conn], T], thread_id: str, node_id: str, epoch: int
) -> Callable[[Conn], T]:
    def write(conn: Conn) -> T:
        check_lease(conn, thread_id, node_id, epoch)
        return fn(conn)

    return write


class PgConnections:
    """The pool of one PostgreSQL store and how every call uses it."""

    def __init__(
        self,
        where: str,
        pool: psycopg_pool.ConnectionPool[Conn],
        *,
        pool_max: int,
        history_retention_seconds: float = DEFAULT_HISTORY_RETENTION_SECONDS,
        conninfo: str = "",
        application_name: str = "",
        cluster: bool = False,
    ) -> None:
        self.where = where
        self.history_retention_seconds = history_retention_seconds
        #: how many ``inProgress`` turns the open turned ``interrupted``
        self.interrupted_at_open = 0
        #: opened as a cluster node (running turns belong to their owner nodes)
        self.cluster = cluster
        self._conninfo = conninfo
        self._application_name = application_name
        self._pool: psycopg_pool.ConnectionPool[Conn] | None = pool
        self._limiter = trio.CapacityLimiter(pool_max)
        self._fences: dict[str, tuple[str, int]] = {}

    @property
    def pool(self) -> psycopg_pool.ConnectionPool[Conn] | None:
        return self._pool

    @property
    def conninfo(self) -> str:
        """The libpq conninfo the pool connects with (``application_name`` and
        ``connect_timeout`` included; it may hold the URL's password)."""
        return self._conninfo

    @property
    def application_name(self) -> str:
        """``appserver:<node-id>``: every connection of the pool carries it."""
        return self._application_name

    # -- fencing (the cluster) ---------------------------------------------------------

    def fence(self, thread_id: str, node_id: str, epoch: int) -> None:
        """From now on every write of ``thread_id`` checks, in its transaction, that the
        thread's ``thread_leases`` row is (``node_id``, ``epoch``), else raises
        :class:`LeaseLost`. Calling it again replaces the epoch. A write already
        started keeps the fence it started with."""
        self._fences[thread_id] = (node_id, int(epoch))

    def unfence(self, thread_id: str) -> None:
        """Writes of ``thread_id`` check no lease any more (idempotent)."""
        self._fences.pop(thread_id, None)

    def fenced(self, thread_id: str) -> tuple[str, int] | None:
        """The (node_id, epoch) the thread's writes are fenced with, or None."""
        return self._fences.get(thread_id)

    async def run_write(self, fn: Callable[[Conn], T], *, thread_id: str | None = None) -> T:
        """Run ``fn(conn)`` in one read-write transaction on a pooled connection in a
        worker thread, as the store's own writes (errors as theirs: StoreUnavailable for
        an outage, StoreError else; what ``fn`` raises is re-raised after the rollback).
        With ``thread_id`` of a fenced thread the lease is checked first."""
        return await self._write(fn, thread_id)

    async def run_read(self, fn: Callable[[Conn], T]) -> T:
        """Run ``fn(conn)`` in one ``REPEATABLE READ READ ONLY`` transaction, as the
        store's own reads."""
        return await self._read(fn)

    # -- plumbing --------------------------------------------------------------------

    def _run(self, begin: str, fn: Callable[[Conn], T]) -> T:
        """Run ``fn(conn)`` in one transaction (in a worker thread)."""
        pool = self._pool
        if pool is None:
            raise StoreClosed(f"the store at {self.where} is closed")
        try:
            with pool.connection() as conn:
                conn.execute(begin)
                try:
                    result = fn(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                        with contextlib.suppress(psycopg.Error):
                            conn.execute("ROLLBACK")
                    raise
        except psycopg_pool.PoolClosed as exc:
            raise StoreClosed(f"the store at {self.where} is closed") from exc
        except psycopg.Error as exc:
            raise pg_error(self.where, exc) from exc
        except UnicodeEncodeError as exc:
            raise StoreError(f"store at {self.where}: text is not valid Unicode") from exc
        return result

    async def _write(self, fn: Callable[[Conn], T], thread_id: str | None = None) -> T:
        """Run the write ``fn`` (of ``thread_id``: fenced if the thread is)."""
        if thread_id is not None and self._fences:
            lease = self._fences.get(thread_id)
            if lease is not None:
                fn = _fenced(fn, thread_id, *lease)
        return await trio.to_thread.run_sync(lambda: self._run("BEGIN", fn), limiter=self._limiter)

    async def _read(self, fn: Callable[[Conn], T]) -> T:
        return await trio.to_thread.run_sync(
            lambda: self._run("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", fn),
            limiter=self._limiter,
        )

    def _updated_at(self, conn: Conn, thread_id: str) -> int:
        """The thread's updated_at, locking its row for this transaction."""
        row = conn.execute(
            "SELECT updated_at FROM threads WHERE id = %s FOR UPDATE", (thread_id,)
        ).fetchone()
        if row is None:
            raise ThreadNotStored(f"thread {thread_id} is not stored")
        return int(row[0])

    def _turn_seq(self, conn: Conn, thread_id: str, turn_id: str) -> int:
        """The turn's seq, locking the thread row (a thread's writes go in order)."""
        row = conn.execute(
            "SELECT u.seq FROM threads t LEFT JOIN turns u ON u.thread_id = t.id AND u.id = %s "
            "WHERE t.id = %s FOR UPDATE OF t",
            (turn_id, thread_id),
        ).fetchone()
        if row is None:
            raise ThreadNotStored(f"thread {thread_id} is not stored")
        if row[0] is None:
            raise TurnNotStored(f"turn {turn_id} of thread {thread_id} is not stored")
        return int(row[0])

    def _touch(
        self, conn: Conn, thread_id: str, old: int, new: int, *, recency_at: int | None = None
    ) -> None:
        """Set updated_at (and recency_at), recording the change in the cursor history
        (the thread row must be locked already: ``_updated_at``)."""
        (old_recency,) = conn.execute(
            "SELECT recency_at FROM threads WHERE id = %s", (thread_id,)
        ).fetchone() or (None,)
        if old_recency is None:
            raise ThreadNotStored(f"thread {thread_id} is not stored")
        new_recency = old_recency if recency_at is None else recency_at
        if new == old and new_recency == old_recency:
            return
        (seq,) = conn.execute(
            "UPDATE store_state SET change_seq = change_seq + 1 WHERE id = 1 RETURNING change_seq"
        ).fetchone() or (0,)
        conn.execute(
            "INSERT INTO thread_history (seq, thread_id, old_updated_at, old_recency_at, "
            "recorded_at) VALUES (%s, %s, %s, %s, %s)",
            (seq, thread_id, old, old_recency, time.time()),
        )
        conn.execute(
            "UPDATE threads SET updated_at = %s, recency_at = %s, key_seq = %s WHERE id = %s",
            (new, new_recency, seq, thread_id),
        )
        self._prune(conn, self.history_retention_seconds)

    @staticmethod
    def _prune(conn: Conn, max_age_seconds: float) -> int:
        """Forget history recorded more than ``max_age_seconds`` ago; how many rows."""
        cutoff = time.time() - max_age_seconds
        row = conn.execute("SELECT recorded_at FROM thread_history ORDER BY seq LIMIT 1").fetchone()
        if row is None or row[0] >= cutoff:
            return 0
        (last,) = conn.execute(
            "SELECT max(seq) FROM thread_history WHERE recorded_at < %s", (cutoff,)
        ).fetchone() or (None,)
        deleted = conn.execute("DELETE FROM thread_history WHERE seq <= %s", (last,)).rowcount
        conn.execute(
            "UPDATE store_state SET pruned_seq = greatest(pruned_seq, %s) WHERE id = 1", (last,)
        )
        return int(deleted)

    # -- maintenance -----------------------------------------------------------------

    async def prune_history(self, max_age_seconds: float | None = None) -> int:
        """Forget updated_at history older than ``max_age_seconds`` (default: the
        retention); return how many entries went. Cursors older than that may expire."""
        age = self.history_retention_seconds if max_age_seconds is None else max_age_seconds

        def write(conn: Conn) -> int:
            conn.execute("SELECT 1 FROM store_state WHERE id = 1 FOR UPDATE")
            return self._prune(conn, age)

        return await self._write(write)

    async def aclose(self) -> None:
        """Close the pool (idempotent; waits for running calls)."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        limiter = self._limiter
        with trio.CancelScope(shield=True):
            async with limiter:  # one slot: running calls hold theirs until done
                pass
            await trio.to_thread.run_sync(lambda: pool.close(timeout=5.0))
