"""The registry of loaded threads: loading, subscriptions, turns, approvals, closing.

It owns the turn nursery: one task per running turn, idle-unload timers and background
closes. A subscriber is a queue plus a policy (threads/subscriber.py), never a connection.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

from appserver.agents import AgentBackend, Backends
from appserver.jsonrpc import ErrorResponse, Response
from appserver.protocol import errors
from appserver.store.base import ThreadRecord, ThreadStore
from appserver.store.memory import MemoryStore
from appserver.threads import audit, objects
from appserver.threads.closing import CLOSE_TIMEOUT, Closing
from appserver.threads.event_log import EventLogLimits
from appserver.threads.loaded import ActiveTurn, Broadcast, LoadedThread
from appserver.threads.ownership import LeaseLost, Ownership, SingleNode
from appserver.threads.persist import STORE_RETRY_SECONDS, StoreRetry
from appserver.threads.requests import ServerRequests
from appserver.threads.starting import StartedTurn, begin_special_turn, begin_turn
from appserver.threads.subscriber import Subscriber
from appserver.threads.turn import run_turn, stored_turn

__all__ = ["CLOSE_TIMEOUT", "Registry", "open_registry"]

log = logging.getLogger("appserver.registry")


@attrs.define(eq=False)
class Registry(Closing):
    store: ThreadStore
    broadcast: Broadcast
    nursery: trio.Nursery
    idle_unload_seconds: float = 1800.0
    backends: Backends = attrs.Factory(Backends)
    # How turn writes retry a failing store (threads/persist.py, PROTOCOL.md §8.6).
    store_retry: StoreRetry = attrs.Factory(StoreRetry)
    close_timeout: float = CLOSE_TIMEOUT
    event_limits: EventLogLimits = attrs.Factory(EventLogLimits)
    # Which node runs a thread (threads/ownership.py): here, unless a cluster runs; a
    # cluster node also flushes event logs eagerly and tells its followers.
    ownership: Ownership = attrs.Factory(SingleNode)
    events_flushed: Callable[[str, int], None] | None = None
    _loaded: dict[str, LoadedThread] = attrs.Factory(dict)
    _loading: dict[str, trio.Event] = attrs.Factory(dict)
    _archiving: set[str] = attrs.Factory(set)
    # Every pending server request, by id: claim() lets only a recipient answer, once.
    _requests: ServerRequests = attrs.Factory(ServerRequests)
    _subscriptions: dict[int, set[str]] = attrs.Factory(dict)
    _stopping: bool = False

    # --- lookup -------------------------------------------------------------------------

    def get(self, thread_id: str) -> LoadedThread | None:
        return self._loaded.get(thread_id)

    def loaded_ids(self) -> list[str]:
        return sorted(self._loaded)

    def is_closing(self, thread_id: str) -> bool:
        thread = self._loaded.get(thread_id)
        return thread_id in self._archiving or (thread is not None and thread.closing)

    # --- subscriptions (§8.1) -----------------------------------------------------------

    def _subscribe(self, thread: LoadedThread, sub: Subscriber) -> None:
        thread.subscribe(sub)
        self._subscriptions.setdefault(sub.id, set()).add(thread.id)
        self._update_idle(thread)

    def unsubscribe(self, sub: Subscriber, thread_id: str) -> str:
        """§5.7: returns notLoaded / notSubscribed / unsubscribed; the last subscriber
        leaving closes the thread (in the background, after the caller's response)."""
        thread = self._loaded.get(thread_id)
        if thread is None:
            return "notLoaded"
        if not thread.unsubscribe(sub.id):
            return "notSubscribed"
        self._forget_subscription(sub.id, thread_id)
        if not thread.subscribers and self._begin_close(thread):
            # Closing from this very step: a resume racing it gets threadClosing (§8.4).
            self.nursery.start_soon(self._finish_close, thread, False, "unsubscribe")
        return "unsubscribed"

    def on_disconnect(self, sub: Subscriber) -> None:
        """§8.2: remove the subscriber everywhere; threads and turns go on."""
        for thread_id in self._subscriptions.pop(sub.id, set()):
            thread = self._loaded.get(thread_id)
            if thread is not None:
                thread.unsubscribe(sub.id)
                self._update_idle(thread)
        self._requests.forget_recipient(sub.id)

    # --- loading ------------------------------------------------------------------------

    async def create(
        self, sub: Subscriber, record: ThreadRecord, *, ephemeral: bool
    ) -> LoadedThread:
        """thread/start: store (unless ephemeral), load with status idle, subscribe."""
        store: ThreadStore = MemoryStore() if ephemeral else self.store
        if not ephemeral:
            await self.ownership.acquire(record.id, new=True)
        await store.create_thread(record)
        thread = LoadedThread(record, store, self.broadcast, ephemeral=ephemeral)
        await thread.events.reserve()
        self._start_events(thread)
        self._loaded[record.id] = thread
        self._subscribe(thread, sub)
        audit.thread_loaded(thread, "created")
        return thread

    def adopt(self, thread: LoadedThread, sub: Subscriber) -> None:
        """A thread that threads/lifecycle.py stored (a fork): loaded, `sub` subscribed."""
        self._loaded[thread.id] = thread
        self._start_events(thread)
        self._subscribe(thread, sub)
        audit.thread_loaded(thread, "forked")

    def _start_events(self, thread: LoadedThread) -> None:
        """Give a new instance the log bounds and its flusher task (threads/event_log.py)."""
        thread.events.limits = self.event_limits
        if self.events_flushed is not None and not thread.ephemeral:
            thread.events.eager = True
            thread.events.on_flushed = self.events_flushed
        self.nursery.start_soon(thread.events.run)

    def join(self, thread: LoadedThread, sub: Subscriber) -> None:
        """The last step of a replay (threads/replay.py): `sub` may answer every pending
        request and is subscribed, in the step that sent it the last replayed event."""
        for pending in thread.pending.values():
            pending.recipients.add(sub.id)
        self._subscribe(thread, sub)

    def replay_abandoned(self, thread: LoadedThread) -> None:
        """A replay whose connection went away before it was subscribed."""
        self._update_idle(thread)

    async def load(self, thread_id: str) -> tuple[LoadedThread, bool]:
        """The loaded instance of a stored thread, loading it if needed (single-flight).
        Returns (thread, whether this call loaded it)."""
        while True:
            if thread_id in self._archiving:
                raise errors.thread_closing(thread_id)
            thread = self._loaded.get(thread_id)
            if thread is not None:
                if thread.closing:
                    raise errors.thread_closing(thread_id)
                return thread, False
            loading = self._loading.get(thread_id)
            if loading is None:
                break
            await loading.wait()
        done = self._loading[thread_id] = trio.Event()
        try:
            await self.ownership.acquire(thread_id)  # OwnedElsewhere: runs on another node
            # The record and the turns' statuses only: no item is read (issue 14).
            state = await self.store.load_state(thread_id)
            if state is None:
                raise errors.thread_not_found(thread_id)
            record = state.record
            if record.archived:
                raise errors.thread_archived(thread_id)
            for turn_id in state.running_turn_ids:  # turns cut off by a crash
                await self.store.finish_turn(
                    thread_id,
                    turn_id,
                    status="interrupted",
                    error=None,
                    updated_at=record.updated_at,
                )
            thread = LoadedThread(record, self.store, self.broadcast)
            thread.status_sent = dict(objects.NOT_LOADED)
            thread.last_failed = state.last_turn_status == "failed"
            await thread.events.restore()
            self._start_events(thread)
            self._loaded[thread_id] = thread
            thread.refresh_status()  # notLoaded -> idle / systemError, broadcast
            self._update_idle(thread)
            audit.thread_loaded(thread, "resumed", interrupted=len(state.running_turn_ids))
            return thread, True
        finally:
            del self._loading[thread_id]
            done.set()

    async def snapshot_turns(self, thread: LoadedThread) -> list[dict[str, Any]]:
        """All stored turns plus the running one as it stands. Returns between two
        checkpoints-free steps: call `rejoin` right after, with no await in between."""
        while True:
            version = thread.finished_turns
            stored = await thread.store.get_turns(thread.id)
            if thread.finished_turns == version:
                break
        running = thread.turn
        turns = [stored_turn(t) for t in stored if running is None or t.id != running.id]
        if running is not None:
            turns.append(running.snapshot())
        return turns

    def rejoin(self, thread: LoadedThread, sub: Subscriber, respond: Callable[[], None]) -> None:
        """In one synchronous step (invariant 2): queue the response, re-send every
        pending server request with its original id, subscribe."""
        respond()
        for pending in thread.pending.values():
            pending.recipients.add(sub.id)
            thread.resend_request(pending, sub)
        self._subscribe(thread, sub)

    # --- turns --------------------------------------------------------------------------

    async def start_turn(
        self,
        thread: LoadedThread,
        user_input: list[dict[str, Any]],
        settings: dict[str, Any],
        client_id: str | None = None,
    ) -> ActiveTurn:
        """turn/start: store the turn (threads/starting.py), then run it."""
        started = await begin_turn(thread, user_input, settings, client_id, self.backends)
        self.nursery.start_soon(self._turn_task, thread, started)
        return started.turn

    async def start_special_turn(
        self,
        thread: LoadedThread,
        make_agent: Callable[[AgentBackend], AgentBackend],
        *,
        summary_view: bool,
    ) -> ActiveTurn:
        """thread/compact/start, thread/shellCommand, review/start (threads/special.py)."""
        started = await begin_special_turn(
            thread, self.backends, make_agent, summary_view=summary_view
        )
        self.nursery.start_soon(self._turn_task, thread, started)
        return started.turn

    async def _turn_task(self, thread: LoadedThread, started: StartedTurn) -> None:
        try:
            await self._run_turn(thread, started)
        except LeaseLost as exc:  # final (cluster): abandoned here, never reported done
            log.warning("thread %s: turn %s abandoned: %s", thread.id, started.turn.id, exc)
            self.ownership.lost(thread)
        finally:
            self._update_idle(thread)

    async def _run_turn(self, thread: LoadedThread, started: StartedTurn) -> None:
        await run_turn(
            thread,
            started.turn,
            started.agent,
            started.user_item,
            self._requests,
            self._requests.settle_turn,
            self.store_retry,
            input_failure=started.input_failure,
            summary_view=started.summary_view,
        )

    async def interrupt(self, thread: LoadedThread, turn_id: str) -> None:
        turn = thread.turn
        if turn is None or turn.id != turn_id:
            raise errors.turn_not_active(turn_id)
        turn.cancel_scope.cancel()
        with trio.move_on_after(self.store_retry.seconds):
            await turn.done.wait()
            return
        if turn.store_reason is None or turn.store_failing_since is None:
            await turn.done.wait()  # slow to stop, not a store outage
            return
        # Stopped, but its end is not stored yet: turn/completed follows once it is.
        raise errors.store_unavailable(turn.store_reason)

    # --- approvals (§7, threads/requests.py) --------------------------------------------

    def on_client_response(self, sub: Subscriber, message: Response | ErrorResponse) -> None:
        self._requests.on_client_response(sub, message)

    def statistics(self) -> dict[str, int]:
        return {
            "loaded": len(self._loaded),
            "running_turns": sum(1 for t in self._loaded.values() if t.turn is not None),
            "subscriptions": sum(len(t.subscribers) for t in self._loaded.values()),
            "subscribers_indexed": len(self._subscriptions),
            "pending_requests": len(self._requests),
            "idle_timers": sum(1 for t in self._loaded.values() if t.idle_scope is not None),
        }


@asynccontextmanager
async def open_registry(
    store: ThreadStore,
    broadcast: Broadcast,
    *,
    idle_unload_seconds: float,
    backends: Backends | None = None,
    store_retry_seconds: float = STORE_RETRY_SECONDS,
    event_limits: EventLogLimits | None = None,
) -> AsyncIterator[Registry]:
    async with trio.open_nursery() as nursery:
        registry = Registry(
            store,
            broadcast,
            nursery,
            idle_unload_seconds,
            backends or Backends(),
            StoreRetry(seconds=store_retry_seconds),
        )
        registry.event_limits = event_limits or EventLogLimits()
        try:
            yield registry
        finally:
            registry.abandon_turns()
            nursery.cancel_scope.cancel()
