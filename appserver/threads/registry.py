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

from appserver import jsonrpc
from appserver.agents import Backends, get_backend
from appserver.agents.base import ApprovalKind
from appserver.jsonrpc import ErrorResponse, Response
from appserver.protocol import errors
from appserver.store.base import ThreadRecord, ThreadStore
from appserver.store.memory import MemoryStore
from appserver.threads import objects
from appserver.threads.loaded import ActiveTurn, Broadcast, LoadedThread, PendingApproval
from appserver.threads.subscriber import Subscriber
from appserver.threads.turn import run_turn, stored_turn

log = logging.getLogger("appserver.registry")

CLOSE_TIMEOUT = 60.0
DECISIONS = frozenset({"accept", "acceptForSession", "decline", "cancel"})


@attrs.define(eq=False)
class Registry:
    store: ThreadStore
    broadcast: Broadcast
    nursery: trio.Nursery
    idle_unload_seconds: float = 1800.0
    backends: Backends = attrs.Factory(Backends)
    _loaded: dict[str, LoadedThread] = attrs.Factory(dict)
    _loading: dict[str, trio.Event] = attrs.Factory(dict)
    _archiving: set[str] = attrs.Factory(set)
    # Every pending server request, by id: claim() lets only a recipient answer, once.
    _requests: jsonrpc.PendingTable[int] = attrs.Factory(jsonrpc.PendingTable)
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
            self.nursery.start_soon(self._finish_close, thread, False)
        return "unsubscribed"

    def _forget_subscription(self, sub_id: int, thread_id: str) -> None:
        ids = self._subscriptions.get(sub_id)
        if ids is not None:
            ids.discard(thread_id)
            if not ids:
                del self._subscriptions[sub_id]

    def on_disconnect(self, sub: Subscriber) -> None:
        """§8.2: remove the subscriber everywhere; threads and turns go on."""
        for thread_id in self._subscriptions.pop(sub.id, set()):
            thread = self._loaded.get(thread_id)
            if thread is not None:
                thread.unsubscribe(sub.id)
                self._update_idle(thread)
        for pending in self._requests:
            pending.recipients.discard(sub.id)

    # --- loading ------------------------------------------------------------------------

    async def create(
        self, sub: Subscriber, record: ThreadRecord, *, ephemeral: bool
    ) -> LoadedThread:
        """thread/start: store (unless ephemeral), load with status idle, subscribe."""
        store: ThreadStore = MemoryStore() if ephemeral else self.store
        await store.create_thread(record)
        thread = LoadedThread(record, store, self.broadcast, ephemeral=ephemeral)
        self._loaded[record.id] = thread
        self._subscribe(thread, sub)
        return thread

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
            record = await self.store.get_thread(thread_id)
            if record is None:
                raise errors.thread_not_found(thread_id)
            if record.archived:
                raise errors.thread_archived(thread_id)
            turns = await self.store.get_turns(thread_id)
            for turn in turns:
                if turn.status == "inProgress":  # a turn cut off by a crash
                    await self.store.finish_turn(
                        thread_id,
                        turn.id,
                        status="interrupted",
                        error=None,
                        updated_at=record.updated_at,
                    )
            thread = LoadedThread(record, self.store, self.broadcast)
            thread.status_sent = dict(objects.NOT_LOADED)
            thread.last_failed = bool(turns) and turns[-1].status == "failed"
            self._loaded[thread_id] = thread
            thread.refresh_status()  # notLoaded -> idle / systemError, broadcast
            self._update_idle(thread)
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
            sub.send_nowait(pending.text)
        self._subscribe(thread, sub)

    # --- turns --------------------------------------------------------------------------

    async def start_turn(
        self,
        thread: LoadedThread,
        user_input: list[dict[str, Any]],
        settings: dict[str, Any],
        client_id: str | None = None,
    ) -> ActiveTurn:
        if thread.closing:
            raise errors.thread_closing(thread.id)
        if thread.turn is not None:
            raise errors.turn_already_active(thread.id, thread.turn.id)
        record = thread.record
        update = objects.apply_settings(record, settings)  # they apply to this turn too
        agent = get_backend(record.model_provider, self.backends)
        if agent is None:
            raise errors.InvalidRequest(
                f"no agent backend for model provider {record.model_provider!r}"
            )
        turn = ActiveTurn(
            id=objects.uuid7(),
            input=user_input,
            cwd=record.cwd,
            approval_policy=objects.effective(record, "approvalPolicy") or "on-request",
            sandbox=objects.effective(record, "sandbox") or "workspace-write",
            model=record.model,
        )
        thread.turn = turn  # reserved before any await: a second turn/start is refused
        try:
            ts = turn.started_at_ms // 1000
            preview = objects.preview_of(user_input) if not record.preview else None
            if update:
                await thread.store.update_thread(thread.id, **update)
            await thread.store.start_turn(
                thread.id, turn.id, updated_at=ts, preview=preview, started_at_ms=turn.started_at_ms
            )
            user_item = {
                "type": "userMessage",
                "id": objects.uuid7(),
                "clientId": client_id,
                "content": user_input,
                "startedAtMs": turn.started_at_ms,
                "completedAtMs": turn.started_at_ms,
            }
            await thread.store.put_item(thread.id, turn.id, user_item)
        except BaseException:
            thread.turn = None
            raise
        record.updated_at = record.recency_at = ts
        if preview:
            record.preview = preview
        self.nursery.start_soon(self._turn_task, thread, turn, agent, user_item)
        return turn

    async def _turn_task(
        self, thread: LoadedThread, turn: ActiveTurn, agent: Any, user_item: dict[str, Any]
    ) -> None:
        try:
            await run_turn(thread, turn, agent, user_item, self._ask, self._settle_turn)
        finally:
            self._update_idle(thread)

    async def interrupt(self, thread: LoadedThread, turn_id: str) -> None:
        turn = thread.turn
        if turn is None or turn.id != turn_id:
            raise errors.turn_not_active(turn_id)
        turn.cancel_scope.cancel()
        await turn.done.wait()

    # --- approvals (§7) -----------------------------------------------------------------

    async def _ask(
        self, thread: LoadedThread, turn: ActiveTurn, kind: ApprovalKind, params: dict[str, Any]
    ) -> str:
        request_id = jsonrpc.next_server_request_id()
        method = f"item/{kind}/requestApproval"
        # startedAtMs: when this request started (one item may ask several times, §10).
        full = {"threadId": thread.id, "turnId": turn.id, **params, "startedAtMs": objects.now_ms()}
        if kind == "commandExecution":
            full["kind"] = "command"
        pending = PendingApproval(
            thread=thread,
            id=request_id,
            method=method,
            params=full,
            text=jsonrpc.encode_request(request_id, method, full),
            turn_id=turn.id,
            item_id=params["itemId"],
            recipients=set(thread.subscribers),
        )
        thread.pending[request_id] = pending
        self._requests.add(pending)
        for sub in list(thread.subscribers.values()):
            sub.send_nowait(pending.text)  # server requests are never suppressed
        thread.refresh_status()
        await pending.done.wait()
        return pending.decision or "decline"

    def on_client_response(self, sub: Subscriber, message: Response | ErrorResponse) -> None:
        """§7.2: only a recipient may answer; the first answer wins; others are ignored."""
        assert message.id is not None  # the connection passes only answers with an id
        pending = self._requests.claim(message.id, sub.id)
        if not isinstance(pending, PendingApproval):
            log.info(
                "ignoring answer %r from connection %d: not pending for it", message.id, sub.id
            )
            return
        if isinstance(message, ErrorResponse):
            decision = "error"
        else:
            result = message.result
            value = result.get("decision") if isinstance(result, dict) else None
            decision = value if isinstance(value, str) and value in DECISIONS else "decline"
        self._settle(pending.thread, pending, decision)

    def _settle(self, thread: LoadedThread, pending: PendingApproval, decision: str | None) -> None:
        thread.pending.pop(pending.id, None)
        self._requests.discard(pending.id)
        pending.decision = decision
        thread.publish("serverRequest/resolved", {"threadId": thread.id, "requestId": pending.id})
        thread.refresh_status()
        pending.done.set()

    def _settle_turn(self, thread: LoadedThread, turn: ActiveTurn) -> set[str]:
        """§7.4: settle a turn's still-pending requests with no decision."""
        items = set()
        for pending in list(thread.pending.values()):
            if pending.turn_id == turn.id:
                self._settle(thread, pending, None)
                items.add(pending.item_id)
        return items

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
            await self.close(thread)

    async def close(self, thread: LoadedThread, *, archive: bool = False) -> None:
        """Close a loaded thread once, however many causes race (§8.4). A thread loaded
        again later is a new instance this teardown never touches (generations)."""
        if self._begin_close(thread):
            await self._finish_close(thread, archive)
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

    async def _finish_close(self, thread: LoadedThread, archive: bool) -> None:
        with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT):
            turn = thread.turn
            if turn is not None:
                turn.cancel_scope.cancel()
                await turn.done.wait()
        for pending in list(thread.pending.values()):
            self._settle(thread, pending, None)
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
        thread.closed.set()

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
                nursery.start_soon(self.close, thread)

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
) -> AsyncIterator[Registry]:
    async with trio.open_nursery() as nursery:
        registry = Registry(store, broadcast, nursery, idle_unload_seconds, backends or Backends())
        try:
            yield registry
        finally:
            nursery.cancel_scope.cancel()
