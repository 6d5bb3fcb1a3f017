"""The SQLite store's plumbing (``SqliteStore`` in sqlite.py builds on it): the writer and
reader connections, one transaction per call in a worker thread, the errors an sqlite3
failure becomes, closing, and the maintenance writes. The concurrency and failure rules
are described in sqlite.py's docstring."""

from __future__ import annotations

import contextlib
import pathlib
import sqlite3
from collections.abc import Callable
from typing import TypeVar

import trio

from appserver.store._sqlite_rows import prune, touch
from appserver.store.base import StoreError, ThreadNotStored
from appserver.store.cursor import DEFAULT_HISTORY_RETENTION_SECONDS
from appserver.store.errors import StoreClosed, StoreUnavailable, TurnNotStored

T = TypeVar("T")

# sqlite3 errors that mean the caller misused the database (a bug), not that it is down.
_MISUSE = (
    sqlite3.IntegrityError,
    sqlite3.ProgrammingError,
    sqlite3.InterfaceError,
    sqlite3.DataError,
    sqlite3.NotSupportedError,
)


def store_error(path: pathlib.Path, exc: sqlite3.Error) -> StoreError:
    """The store error for an sqlite3 error on the store at ``path``: StoreUnavailable
    (naming the path and SQLite's reason) unless the database was misused."""
    message = f"store at {path}: {exc}"
    return StoreError(message) if isinstance(exc, _MISUSE) else StoreUnavailable(message)


def set_busy_timeout(conn: sqlite3.Connection, seconds: float) -> None:
    conn.execute(f"PRAGMA busy_timeout = {max(0, round(seconds * 1000))}")


class SqliteConnections:
    """The two connections of one SQLite store and how every call uses them."""

    def __init__(
        self,
        path: pathlib.Path,
        writer: sqlite3.Connection,
        reader: sqlite3.Connection,
        *,
        history_retention_seconds: float = DEFAULT_HISTORY_RETENTION_SECONDS,
    ) -> None:
        self.path = path
        self.history_retention_seconds = history_retention_seconds
        #: how many ``inProgress`` turns the open turned ``interrupted``
        self.interrupted_at_open = 0
        self._writer: sqlite3.Connection | None = writer
        self._reader: sqlite3.Connection | None = reader
        self._write_limiter = trio.CapacityLimiter(1)
        self._read_limiter = trio.CapacityLimiter(1)

    # -- plumbing --------------------------------------------------------------------

    def _run(
        self, conn: sqlite3.Connection | None, begin: str, fn: Callable[[sqlite3.Connection], T]
    ) -> T:
        """Run ``fn(conn)`` in one transaction (in a worker thread)."""
        if conn is None:
            raise StoreClosed(f"the store at {self.path} is closed")
        try:
            conn.execute(begin)
            try:
                result = fn(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise store_error(self.path, exc) from exc
        except UnicodeEncodeError as exc:
            raise StoreError(f"store at {self.path}: text is not valid Unicode") from exc
        return result

    async def _write(
        self, fn: Callable[[sqlite3.Connection], T], thread_id: str | None = None
    ) -> T:
        """Run the write ``fn`` (``thread_id``: what it writes; no fencing here)."""
        return await trio.to_thread.run_sync(
            lambda: self._run(self._writer, "BEGIN IMMEDIATE", fn), limiter=self._write_limiter
        )

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await trio.to_thread.run_sync(
            lambda: self._run(self._reader, "BEGIN", fn), limiter=self._read_limiter
        )

    def _updated_at(self, conn: sqlite3.Connection, thread_id: str) -> int:
        row = conn.execute("SELECT updated_at FROM threads WHERE id = ?", (thread_id,)).fetchone()
        if row is None:
            raise ThreadNotStored(f"thread {thread_id} is not stored")
        return int(row[0])

    def _turn_seq(self, conn: sqlite3.Connection, thread_id: str, turn_id: str) -> int:
        row = conn.execute(
            "SELECT seq FROM turns WHERE thread_id = ? AND id = ?", (thread_id, turn_id)
        ).fetchone()
        if row is None:
            self._updated_at(conn, thread_id)
            raise TurnNotStored(f"turn {turn_id} of thread {thread_id} is not stored")
        return int(row[0])

    def _touch(
        self,
        conn: sqlite3.Connection,
        thread_id: str,
        old: int,
        new: int,
        *,
        recency_at: int | None = None,
    ) -> None:
        """Set updated_at (and recency_at), recording the change in the cursor history."""
        touch(conn, thread_id, old, new, recency_at=recency_at)
        prune(conn, self.history_retention_seconds)

    @staticmethod
    def _prune(conn: sqlite3.Connection, max_age_seconds: float) -> int:
        return prune(conn, max_age_seconds)

    # -- maintenance -----------------------------------------------------------------

    async def prune_history(self, max_age_seconds: float | None = None) -> int:
        """Forget updated_at history older than ``max_age_seconds`` (default: the
        retention); return how many entries went. Cursors older than that may expire."""
        age = self.history_retention_seconds if max_age_seconds is None else max_age_seconds
        return await self._write(lambda conn: self._prune(conn, age))

    async def aclose(self) -> None:
        """Close both connections (idempotent; waits for the running call, if any)."""

        def close_reader() -> None:
            reader, self._reader = self._reader, None
            if reader is not None:
                reader.close()

        def close_writer() -> None:
            writer, self._writer = self._writer, None
            if writer is not None:
                with contextlib.suppress(sqlite3.Error):
                    writer.execute("PRAGMA optimize")
                writer.close()  # the last connection: checkpoints and removes the WAL

        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(close_reader, limiter=self._read_limiter)
            await trio.to_thread.run_sync(close_writer, limiter=self._write_limiter)
