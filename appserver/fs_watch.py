"""`fs/watch`: one watcher per watch, owned by the connection that asked for it.

A watch is a `watchfiles` Rust watcher (`RustNotify`, the engine under `watchfiles.awatch`,
used directly so that it is registered before `fs/watch` answers) drained by one task in
the server's nursery. The task ends on `fs/unwatch`, when its connection ends and at
shutdown: each sets the watch's stop event, which the watcher checks every `STEP_MS`, so
no worker thread outlives its watch for longer than that.

As in Codex: a directory is watched without recursion (its entries' changes are
reported); a file, or a path that does not exist yet, is reported when it is created,
changed or removed. Changes are grouped over up to `DEBOUNCE_MS`.
"""

from __future__ import annotations

import os
import threading
import weakref

import attrs
import trio
from watchfiles._rust_notify import RustNotify

from appserver.connection import Connection
from appserver.protocol import fs_types as fst
from appserver.protocol.converter import unstructure
from appserver.protocol.errors import InvalidRequest

DEBOUNCE_MS = 200
STEP_MS = 50
TIMEOUT_MS = 1000
MAX_WATCHES = 256  # per connection


@attrs.define(eq=False)
class Watch:
    watch_id: str
    path: str  # what the client asked for (absolute, normalised)
    stop: threading.Event = attrs.Factory(threading.Event)
    done: trio.Event = attrs.Factory(trio.Event)  # its task has ended

    def reports(self, changed: str, watched: str) -> bool:
        if self.path == watched:  # a directory: itself and its entries
            return True
        return changed == self.path or changed.startswith(self.path + os.sep)


# Each connection's watches by id; an entry goes when its connection is collected.
_watches: weakref.WeakKeyDictionary[Connection, dict[str, Watch]] = weakref.WeakKeyDictionary()


def _open(path: str) -> tuple[RustNotify, str]:
    """The watcher for `path`: the directory itself, else its nearest existing parent
    (recursively only when that is not its own parent: the path may be created later,
    deeper)."""
    if os.path.isdir(path):
        return RustNotify([path], False, False, 300, False, False), path
    parent = os.path.dirname(path)
    while not os.path.isdir(parent) and os.path.dirname(parent) != parent:
        parent = os.path.dirname(parent)
    recursive = parent != os.path.dirname(path)
    return RustNotify([parent], False, False, 300, recursive, False), parent


async def start(nursery: trio.Nursery, conn: Connection, watch_id: str, path: str) -> None:
    """Register the watch (watching already when this returns) and start its task.
    An OS error opening the watcher propagates as OSError."""
    watches = _watches.setdefault(conn, {})
    if watch_id in watches:
        raise InvalidRequest(f"watchId already exists: {watch_id}")
    if len(watches) >= MAX_WATCHES:
        raise InvalidRequest(f"too many watches on this connection (the limit is {MAX_WATCHES})")
    watch = Watch(watch_id, path)
    watches[watch_id] = watch  # reserved while the watcher opens
    try:
        watcher, watched = await trio.to_thread.run_sync(_open, path)
    except BaseException:
        del watches[watch_id]
        raise
    if watch.stop.is_set() or conn.closed:  # unwatched or gone meanwhile
        watcher.close()
        watch.done.set()
        return
    nursery.start_soon(_run, conn, watch, watcher, watched, name=f"fs/watch {watch_id}")


def stop(conn: Connection, watch_id: str) -> None:
    watch = _watches.get(conn, {}).pop(watch_id, None)
    if watch is not None:
        watch.stop.set()


async def _until_gone(conn: Connection, watch: Watch) -> None:
    try:
        await conn.finished.wait()
    finally:  # also on shutdown's cancellation: the watcher thread returns within STEP_MS
        watch.stop.set()
        if _watches.get(conn, {}).get(watch.watch_id) is watch:
            del _watches[conn][watch.watch_id]


async def _run(conn: Connection, watch: Watch, watcher: RustNotify, watched: str) -> None:
    # Its own limiter: a watch holds a worker thread for its whole life, and must not
    # take one of the shared pool's slots (fs/* and the store use it).
    limiter = trio.CapacityLimiter(1)
    try:
        await _drain(conn, watch, watcher, watched, limiter)
    finally:
        watch.done.set()


async def _drain(
    conn: Connection,
    watch: Watch,
    watcher: RustNotify,
    watched: str,
    limiter: trio.CapacityLimiter,
) -> None:
    with watcher:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_until_gone, conn, watch)
            while not watch.stop.is_set():
                raw = await trio.to_thread.run_sync(
                    watcher.watch, DEBOUNCE_MS, STEP_MS, TIMEOUT_MS, watch.stop, limiter=limiter
                )
                if isinstance(raw, str) or watch.stop.is_set():  # stop, timeout, signal
                    continue
                changed = sorted({p for _, p in raw if watch.reports(p, watched)})
                if changed:
                    note = fst.FsChangedNotification(watch_id=watch.watch_id, changed_paths=changed)
                    conn.notify("fs/changed", unstructure(note))
            nursery.cancel_scope.cancel()
