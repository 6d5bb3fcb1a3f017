"""A node's wake-ups through PostgreSQL: event NOTIFYs for followers of the threads it
owns, lifecycle broadcasts to the other nodes (a payload over NOTIFY's limit goes through
a row), and the dispatch of what its LISTEN connection receives (listen.py). Part of
Node (node.py), kept apart so each module stays one concern."""

from __future__ import annotations

import contextlib
import json
import logging
from functools import partial
from typing import Any, cast

import trio

from appserver.cluster.calls import Calls
from appserver.cluster.db import Conn, ControlDb
from appserver.cluster.follow import Follower
from appserver.cluster.listen import BROADCAST, EVENTS
from appserver.cluster.serve import serve_call
from appserver.store.base import StoreError
from appserver.store.errors import StoreUnavailable
from appserver.threads.loaded import Broadcast
from appserver.threads.registry import Registry

log = logging.getLogger("appserver.cluster")

RELAY_IDS = 1 << 40  # subscriber ids from here on are remote nodes (calls.Relay)
# Broadcasts after which a thread has no subscriber left.
ENDED = frozenset({"thread/closed", "thread/archived", "thread/deleted"})
NOTIFY_LIMIT = 7500  # bytes of a NOTIFY payload; a larger broadcast goes through a row


class Bus:
    """The notification half of Node; the attributes are Node's."""

    node_id: str
    lease_seconds: float
    bus_db: ControlDb
    nursery: trio.Nursery
    calls: Calls
    registry: Registry
    local_broadcast: Broadcast
    followers: dict[str, Follower]
    _to_notify: dict[str, int]
    _notify_wake: trio.Event
    _broadcasts: list[str]
    _bcast_wake: trio.Event
    calls_wake: trio.Event

    # --- notifications -----------------------------------------------------------------------

    def events_flushed(self, thread_id: str, seq: int) -> None:
        """The owner stored events up to `seq`: NOTIFY the nodes that follow the thread."""
        thread = self.registry.get(thread_id)
        if thread is None or not any(sub_id >= RELAY_IDS for sub_id in thread.subscribers):
            return
        self._to_notify[thread_id] = seq
        self._notify_wake.set()

    def broadcast_remote(self, method: str, params: Any) -> None:
        """To the other nodes; with the thread's last seq, so a node that follows the
        thread delivers it after the events that came before it (per-thread order)."""
        thread_id = params.get("threadId") if isinstance(params, dict) else None
        thread = self.registry.get(thread_id) if isinstance(thread_id, str) else None
        seq = 0
        if thread is not None and thread.events.last_seq > thread.events.floor:
            seq = thread.events.last_seq  # an event this owner produced (not a hole)
        text = json.dumps([method, params, thread_id, seq], separators=(",", ":"))
        self._broadcasts.append(text)
        self._bcast_wake.set()

    def deliver_broadcast(self, body: list[Any]) -> None:
        method, params, thread_id, seq = body
        follower = self.followers.get(thread_id) if isinstance(thread_id, str) else None
        if follower is not None and method in ENDED:
            self.nursery.start_soon(self._ended, follower, method, params)
        elif follower is None or not follower.hold(int(seq), method, params):
            self.local_broadcast(method, params)

    def owner_hint(self, node: str, text: str) -> None:
        """A thread's status changes are broadcast by its owner: a follower that still
        thinks another node owns it follows the sender (after a takeover)."""
        thread_id = json.loads(text)[2]
        follower = self.followers.get(thread_id) if isinstance(thread_id, str) else None
        if follower is not None and follower.owner != node:
            follower.owner = node
            self.nursery.start_soon(self.register_with, follower)

    async def register_with(self, follower: Follower) -> None:
        raise NotImplementedError

    async def _ended(self, follower: Follower, method: str, params: Any) -> None:
        """The owner closed the thread: its last events, then the broadcast; the
        subscribers here are no longer subscribed (as a close does, §8.4)."""
        with contextlib.suppress(StoreError):
            await follower.catch_up()
        follower.release_held(everything=True)
        self.local_broadcast(method, params)
        if self.followers.get(follower.thread_id) is follower:
            self.stop_following(follower, leave=False)

    def stop_following(self, follower: Follower, *, leave: bool) -> None:
        raise NotImplementedError

    async def _send_event_notifies(self) -> None:
        while True:
            await self._notify_wake.wait()
            self._notify_wake = trio.Event()
            batch, self._to_notify = self._to_notify, {}

            try:
                await self.bus_db.run(partial(_notify_events, batch))
            except StoreUnavailable as exc:  # followers poll on reconnect and takeover
                log.warning("cluster: event NOTIFY failed: %s", exc)

    async def _send_broadcasts(self) -> None:
        while True:
            await self._bcast_wake.wait()
            self._bcast_wake = trio.Event()
            batch, self._broadcasts = self._broadcasts, []

            def send(conn: Conn, session: str, batch: list[str] = batch) -> None:
                for text in batch:
                    payload = f"{self.node_id}\n{text}"
                    if len(payload.encode()) > NOTIFY_LIMIT:
                        row = conn.execute(
                            "INSERT INTO cluster_calls (target_node, from_node, kind, body, "
                            "reply) VALUES ('*', %s, 'broadcast', %s::jsonb, 'null'::jsonb) "
                            "RETURNING id",
                            (self.node_id, text),
                        ).fetchone()
                        assert row is not None
                        payload = f"{self.node_id}\n@{row[0]}"
                    conn.execute("SELECT pg_notify(%s, %s)", (BROADCAST, payload))

            try:
                await self.bus_db.run(send)
            except StoreUnavailable as exc:
                log.warning("cluster: %d broadcasts lost: %s", len(batch), exc)

    def dispatch(self, batch: list[tuple[str, str]]) -> None:
        for channel, payload in batch:
            if channel == EVENTS:
                thread_id, _, seq = payload.partition(" ")
                follower = self.followers.get(thread_id)
                if follower is not None:
                    follower.announce(int(seq))
            elif channel == BROADCAST:
                node, _, text = payload.partition("\n")
                if node == self.node_id:
                    continue
                if text.startswith('["thread/status/changed"'):
                    self.owner_hint(node, text)
                if text.startswith("@"):
                    self.nursery.start_soon(self._big_broadcast, int(text[1:]))
                else:
                    self.deliver_broadcast(json.loads(text))
            elif payload.startswith("c"):
                self.calls_wake.set()
            elif payload.startswith("r"):
                self.nursery.start_soon(self._poll_reply, int(payload[1:]))

    async def _big_broadcast(self, row_id: int) -> None:
        def read(conn: Conn, session: str) -> Any:
            row = conn.execute("SELECT body FROM cluster_calls WHERE id = %s", (row_id,)).fetchone()
            return None if row is None else row[0]

        try:
            body = await self.bus_db.run(read)
        except StoreUnavailable as exc:
            log.warning("cluster: a broadcast was lost: %s", exc)
            return
        if body is not None:
            self.deliver_broadcast(body)

    async def _poll_reply(self, call_id: int) -> None:
        try:
            await self.calls.poll_replies([call_id])
        except StoreUnavailable as exc:
            log.warning("cluster: reading a reply failed: %s", exc)

    async def on_connected(self) -> None:
        """After every LISTEN (re)connection: what NOTIFY may not have told."""
        self.calls_wake.set()
        for follower in self.followers.values():
            follower.wake()
        try:
            await self.calls.poll_replies()
        except StoreUnavailable as exc:
            log.warning("cluster: reading replies failed: %s", exc)

    async def _serve_calls(self) -> None:
        while True:
            await self.calls_wake.wait()
            self.calls_wake = trio.Event()
            try:
                new = await self.calls.take_new()
            except StoreUnavailable as exc:
                log.warning("cluster: reading calls failed: %s", exc)
                await trio.sleep(self.lease_seconds / 3)
                self.calls_wake.set()
                continue
            for call_id, caller, thread_id, kind, body in new:
                self.nursery.start_soon(
                    serve_call, cast(Any, self), call_id, caller, thread_id, kind, body
                )


def _notify_events(batch: dict[str, int], conn: Conn, session: str) -> None:
    for thread_id, seq in batch.items():
        conn.execute("SELECT pg_notify(%s, %s)", (EVENTS, f"{thread_id} {seq}"))
