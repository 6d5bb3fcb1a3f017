"""Closing loaded threads (PROTOCOL.md §8.3, §8.4): idle unload, the single-flight close,
archiving, shutdown. A part of the Registry (threads/registry.py), kept apart so each
module stays one concern; `Registry` inherits it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import trio

from appserver.protocol import errors
from appserver.threads import audit, objects
from appserver.threads.loaded import Broadcast, LoadedThread
from appserver.threads.ownership import Ownership
from appserver.threads.requests import ServerRequests
from appserver.threads.subscriber import Subscriber

log = logging.getLogger("appserver.registry")

CLOSE_TIMEOUT = 60.0


class Closing:
    """The closing half of the Registry; the attributes are the Registry's."""

    broadcast: Broadcast
    nursery: trio.Nursery
    idle_unload_seconds: float
    close_timeout: float
    ownership: Ownership
    _loaded: dict[str, LoadedThread]
    _archiving: set[str]
    _requests: ServerRequests
    _subscriptions: dict[int, set[str]]
    _stopping: bool

    def _forget_subscription(self, sub_id: int, thread_id: str) -> None:
        ids = self._subscriptions.get(sub_id)
        if ids is not None:
            ids.discard(thread_id)
            if not ids:
                del self._subscriptions[sub_id]

    # --- closing (§8.3, §8.4) -----------------------------------------------------------

    def _update_idle(self, thread: LoadedThread) -> None:
        wanted = (
            self.idle_unload_seconds > 0
            and thread.unloadable
            and not thread.closing
            and not self._stopping
            and self._loaded.get(thread.id) is thread
        )
        if wanted and thread.idle_scope is None:
            scope = thread.idle_scope = trio.CancelScope()
            self.nursery.start_soon(self._idle_timer, thread, scope)
        elif not wanted and thread.idle_scope is not None:
            thread.idle_scope.cancel()
            thread.idle_scope = None

    async def _idle_timer(self, thread: LoadedThread, scope: trio.CancelScope) -> None:
        with scope:
            await trio.sleep(self.idle_unload_seconds)
        if scope.cancelled_caught or thread.idle_scope is not scope:
            return
        thread.idle_scope = None
        if thread.unloadable and self._loaded.get(thread.id) is thread:
            await self.close(thread, why="idle")

    async def close(
        self, thread: LoadedThread, *, archive: bool = False, why: str | None = None
    ) -> None:
        """Close a loaded thread once, however many causes race (§8.4). A thread loaded
        again later is a new instance this teardown never touches (generations). `why`
        is for the log (default: archive, or closed)."""
        if self._begin_close(thread):
            await self._finish_close(thread, archive, why or ("archive" if archive else "closed"))
        else:
            await thread.closed.wait()

    def _begin_close(self, thread: LoadedThread) -> bool:
        """Mark the thread closing; False if it already was (closing is single-flight)."""
        if thread.closing:
            return False
        thread.closing = True
        if thread.idle_scope is not None:
            thread.idle_scope.cancel()
            thread.idle_scope = None
        return True

    async def _finish_close(self, thread: LoadedThread, archive: bool, why: str) -> None:
        turn = thread.turn
        if turn is not None:
            with trio.CancelScope(shield=True):
                turn.cancel_scope.cancel()
                # A store that fails past the retry policy gives up by itself (persist.py);
                # past close_timeout, storing the end of the turn is abandoned.
                for _ in range(2):
                    with trio.move_on_after(self.close_timeout):
                        await turn.done.wait()
                    if turn.done.is_set():
                        break
                    log.warning("thread %s: turn %s is slow to stop", thread.id, turn.id)
                    turn.finish_scope.cancel()
        for pending in list(thread.pending.values()):
            self._requests.settle(thread, pending)
        await thread.events.aclose()  # shielded
        with trio.CancelScope(shield=True):
            await self.ownership.release(thread)  # a cluster gives the lease up
        if self._loaded.get(thread.id) is thread:
            del self._loaded[thread.id]
        for sub_id in list(thread.subscribers):
            self._forget_subscription(sub_id, thread.id)
        thread.subscribers.clear()
        thread.status_sent = dict(objects.NOT_LOADED)
        self.broadcast(
            "thread/status/changed", {"threadId": thread.id, "status": objects.NOT_LOADED}
        )
        if not archive:
            self.broadcast("thread/closed", {"threadId": thread.id})
        audit.thread_closed(thread, why)
        thread.closed.set()

    def evict(self, thread: LoadedThread) -> list[Subscriber]:
        """Stop running a thread another node owns now (a cluster node that lost its
        lease): its turn is cut off untold, nothing more is written (the store would
        refuse it) and nothing is broadcast; returns its subscribers, for the caller to
        follow the new owner with."""
        thread.closing = True
        if thread.idle_scope is not None:
            thread.idle_scope.cancel()
            thread.idle_scope = None
        turn = thread.turn
        if turn is not None:
            turn.cancel_scope.cancel()
            turn.finish_scope.cancel()
        subs = list(thread.subscribers.values())
        for sub_id in list(thread.subscribers):
            self._forget_subscription(sub_id, thread.id)
        thread.subscribers.clear()
        for pending in list(thread.pending.values()):
            self._requests.settle(thread, pending)
        thread.events.abandon()
        if self._loaded.get(thread.id) is thread:
            del self._loaded[thread.id]
        audit.thread_closed(thread, "lease lost")
        thread.closed.set()
        return subs

    @asynccontextmanager
    async def archiving(self, thread_id: str) -> AsyncIterator[None]:
        """While archiving, resumes of the thread get threadClosing."""
        if thread_id in self._archiving:
            raise errors.thread_closing(thread_id)
        self._archiving.add(thread_id)
        try:
            yield
        finally:
            self._archiving.discard(thread_id)

    async def shutdown(self, *, grace: float) -> None:
        """§8.8: let running turns finish for up to `grace` seconds, then close
        everything (running turns end interrupted)."""
        self._stopping = True
        for thread in self._loaded.values():
            self._update_idle(thread)
        with trio.move_on_after(grace):
            while running := [t.turn for t in self._loaded.values() if t.turn is not None]:
                await running[0].done.wait()
        async with trio.open_nursery() as nursery:
            for thread in list(self._loaded.values()):
                nursery.start_soon(partial(self.close, thread, why="shutdown"))

    def abandon_turns(self) -> None:
        """At exit: stop every turn still trying to store its end (it stays untold)."""
        for thread in self._loaded.values():
            if thread.turn is not None:
                thread.turn.finish_scope.cancel()
