"""One node of a cluster: the composition of leases, the LISTEN connection, followers,
forwarded calls and lifecycle broadcasts (the design: docs/architecture.md "Cluster").

- Ownership (threads/ownership.py) for the registry: a thread is loaded where its lease
  is taken (leases.py); the store is fenced with the lease's epoch, so a node that lost
  it can write nothing more of the thread. Closing the thread releases the lease.
- The heartbeat renews every lease of the node's session in one UPDATE every
  lease_seconds / 3. A lease the renewal no longer returns, or no successful renewal for
  lease_seconds (monotonic clock), and the node fences itself: it stops running those
  threads (turns cut off untold) and follows them like any thread owned elsewhere.
- Followed threads whose lease expired (their owner died or fenced itself) are taken
  over by a node that has subscribers for them (the watcher, every lease_seconds / 3):
  loading them marks the cut-off turn interrupted, as after a crash.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import attrs
import trio

from appserver.cluster import leases
from appserver.cluster.bus import RELAY_IDS, Bus
from appserver.cluster.calls import Calls, Relay
from appserver.cluster.db import Conn, ControlDb
from appserver.cluster.follow import Follower
from appserver.protocol.errors import JsonRpcError
from appserver.requests import RequestContext
from appserver.store.base import StoreError
from appserver.store.errors import StoreUnavailable
from appserver.threads.loaded import Broadcast, LoadedThread
from appserver.threads.ownership import OwnedElsewhere
from appserver.threads.registry import Registry
from appserver.threads.subscriber import Subscriber

log = logging.getLogger("appserver.cluster")


RunRequest = Callable[[RequestContext, str, Any], Awaitable[Any]]


@attrs.define(eq=False)
class Node(Bus):
    node_id: str
    lease_seconds: float
    pg: Any  # the PostgresStore: fence / unfence / read_events
    db: ControlDb  # leases and the heartbeat; its session is the node's
    bus_db: ControlDb  # NOTIFYs, broadcasts, calls: busy, never delays a renewal
    nursery: trio.Nursery
    calls: Calls
    registry: Registry = attrs.field(init=False)
    run_request: RunRequest = attrs.field(init=False)  # Handlers.handle_here
    local_broadcast: Broadcast = attrs.field(init=False)
    urls: list[str] = attrs.Factory(list)
    # thread id -> (epoch, trio time the take was asked)
    owned: dict[str, tuple[int, float]] = attrs.Factory(dict)
    followers: dict[str, Follower] = attrs.Factory(dict)
    followed_by: dict[int, set[str]] = attrs.Factory(dict)  # subscriber -> followed ids
    _fenced_at: dict[str, float] = attrs.Factory(dict)
    _last_renewal: float = 0.0
    _to_notify: dict[str, int] = attrs.Factory(dict)
    _notify_wake: trio.Event = attrs.Factory(trio.Event)
    _broadcasts: list[str] = attrs.Factory(list)
    _bcast_wake: trio.Event = attrs.Factory(trio.Event)
    calls_wake: trio.Event = attrs.Factory(trio.Event)
    takeovers: int = 0
    fenced: int = 0

    @property
    def call_timeout(self) -> float:
        return max(3 * self.lease_seconds, 5.0)

    # --- Ownership (threads/ownership.py) -------------------------------------------------

    async def acquire(self, thread_id: str, *, new: bool = False) -> None:
        lease = self.lease_seconds
        while True:
            asked = trio.current_time()
            got = await self.db.run(lambda c, s: leases.take(c, s, thread_id, self.node_id, lease))
            if isinstance(got, int):
                break
            if got:
                raise OwnedElsewhere(thread_id, got)
        self.owned[thread_id] = (got, asked)
        self._fenced_at.pop(thread_id, None)
        fence = getattr(self.pg, "fence", None)
        if fence is not None:
            fence(thread_id, self.node_id, got)

    async def release(self, thread: LoadedThread) -> None:
        held = self.owned.pop(thread.id, None)
        if thread.ephemeral or held is None:
            return
        epoch = held[0]
        try:
            await self.db.run(lambda c, s: leases.release(c, s, thread.id, self.node_id, epoch))
        except StoreError as exc:  # it expires by itself
            log.warning("thread %s: releasing the lease failed: %s", thread.id, exc)
        unfence = getattr(self.pg, "unfence", None)
        if unfence is not None and thread.id not in self.owned:
            unfence(thread.id)

    def lost(self, thread: LoadedThread) -> None:
        self.fence_thread(thread.id, "a write was refused (lease lost)")

    def fence_thread(self, thread_id: str, why: str) -> None:
        """Stop running a thread whose lease is no longer ours; follow it instead."""
        self.owned.pop(thread_id, None)
        self._fenced_at[thread_id] = trio.current_time()
        thread = self.registry.get(thread_id)
        if thread is None:
            return
        self.fenced += 1
        log.warning(
            "thread %s: this node fenced itself: %s",
            thread_id,
            why,
            extra={"event": "cluster_fenced", "thread_id": thread_id},
        )
        last = thread.events.last_seq
        local = [s for s in self.registry.evict(thread) if s.id < RELAY_IDS]
        if local:
            follower = self.follower(thread_id, None)
            for sub in local:
                self.follow(follower, sub, last)

    # --- followers -------------------------------------------------------------------------

    def follower(self, thread_id: str, owner: str | None) -> Follower:
        follower = self.followers.get(thread_id)
        if follower is None:
            follower = self.followers[thread_id] = Follower(thread_id, self.pg, owner)
            follower.release = self.local_broadcast
            self.nursery.start_soon(follower.run)
        elif owner:
            follower.owner = owner
        return follower

    def follow(self, follower: Follower, sub: Subscriber, after_seq: int) -> None:
        follower.add(sub, after_seq)
        self.followed_by.setdefault(sub.id, set()).add(follower.thread_id)

    def unfollow(self, thread_id: str, sub_id: int) -> bool:
        follower = self.followers.get(thread_id)
        if follower is None or not follower.remove(sub_id):
            return False
        ids = self.followed_by.get(sub_id)
        if ids is not None:
            ids.discard(thread_id)
            if not ids:
                del self.followed_by[sub_id]
        if not follower.subs:
            self.stop_following(follower, leave=True)
        return True

    def stop_following(self, follower: Follower, *, leave: bool) -> None:
        follower.scope.cancel()
        follower.stopped = True
        follower.release_held(everything=True)
        if self.followers.get(follower.thread_id) is follower:
            del self.followers[follower.thread_id]
        for sub_id in follower.subs:
            ids = self.followed_by.get(sub_id)
            if ids is not None:
                ids.discard(follower.thread_id)
                if not ids:
                    del self.followed_by[sub_id]
        if leave and follower.owner and follower.owner != self.node_id:
            self.nursery.start_soon(self._leave, follower.owner, follower.thread_id)

    async def _leave(self, owner: str, thread_id: str) -> None:
        try:
            await self.calls.call(owner, thread_id, "leave", {}, self.call_timeout)
        except Exception as exc:  # the owner is gone: nothing to leave
            log.info("thread %s: leaving node %s failed: %s", thread_id, owner, exc)

    def on_disconnect(self, sub: Subscriber) -> None:
        for thread_id in list(self.followed_by.get(sub.id, ())):
            self.unfollow(thread_id, sub.id)

    async def register_with(self, follower: Follower) -> None:
        """Tell a (new) owner that this node follows the thread (its relay subscribes)."""
        owner = follower.owner
        if not owner or owner == self.node_id:
            return
        body = {
            "method": "thread/resume",
            "params": {"threadId": follower.thread_id, "excludeTurns": True},
        }
        try:
            reply = await self.calls.call(
                owner, follower.thread_id, "request", body, self.call_timeout
            )
        except Exception as exc:
            log.info("thread %s: following on node %s failed: %s", follower.thread_id, owner, exc)
            return
        if isinstance(reply, dict) and reply.get("moved"):
            follower.owner = str(reply["moved"])
        follower.wake()  # what it stored before it knew of this node: no NOTIFY came

    async def take_over(self, follower: Follower) -> LoadedThread | None:
        """Load a followed thread whose lease expired (failover); its subscribers here
        become the loaded thread's."""
        if follower.taking:
            return None
        follower.taking = True
        try:
            with contextlib.suppress(StoreError):
                await follower.catch_up()  # the last events the old owner stored
            try:
                thread, _ = await self.registry.load(follower.thread_id)
            except OwnedElsewhere as exc:
                follower.owner = exc.node_id
                self.nursery.start_soon(self.register_with, follower)
                return None
            except JsonRpcError as exc:
                log.warning("thread %s: taking over failed: %s", follower.thread_id, exc)
                return None
            self.takeovers += 1
            log.info(
                "thread %s: taken over from node %s",
                follower.thread_id,
                follower.owner,
                extra={"event": "cluster_takeover", "thread_id": follower.thread_id},
            )
            self.merge(follower, thread)
            return thread
        finally:
            follower.taking = False

    def merge(self, follower: Follower, thread: LoadedThread) -> None:
        if follower.stopped:
            return
        self.stop_following(follower, leave=False)
        for sub in follower.subs.values():
            if not sub.closed:
                self.registry.join(thread, sub)
        for request_id in list(follower.requests):  # asked by the old owner: gone
            thread.publish(
                "serverRequest/resolved", {"threadId": thread.id, "requestId": request_id}
            )

    # --- heartbeat, self-fencing, failover -------------------------------------------------

    async def _heartbeat(self) -> None:
        beats = 0
        while True:
            asked = trio.current_time()
            try:
                held = await self.db.run(
                    lambda c, s: leases.renew(c, s, self.node_id, self.lease_seconds, self.urls)
                )
            except StoreUnavailable as exc:
                log.warning("cluster: lease renewal failed: %s", exc)
            else:
                self._last_renewal = asked
                for thread_id, (_, taken) in list(self.owned.items()):
                    if thread_id not in held and taken < asked:
                        self.fence_thread(thread_id, "its lease was not renewed")
                beats += 1
                if beats % 30 == 0:
                    await self._housekeeping()
            await trio.sleep(self.lease_seconds / 3)

    async def _housekeeping(self) -> None:
        """Old call rows go; relays of dead nodes are unsubscribed (their threads may
        then unload here)."""
        try:
            await self.calls.prune()
            dead = await self.db.run(lambda c, s: leases.dead_nodes(c, s, self.lease_seconds))
        except StoreUnavailable:
            return
        relays = self.calls.relay_nodes()
        for node in dead & set(relays):
            self.registry.on_disconnect(Relay(relays[node], node))

    async def _watchdog(self) -> None:
        """No successful renewal for lease_seconds: the leases may be gone; stop."""
        while True:
            await trio.sleep(self.lease_seconds / 6)
            now = trio.current_time()
            for thread_id, (_, taken) in list(self.owned.items()):
                if now - max(taken, self._last_renewal) > self.lease_seconds:
                    self.fence_thread(thread_id, f"no lease renewal for {self.lease_seconds} s")

    async def _watch(self) -> None:
        """The leases of followed threads: a new owner is followed there, an expired
        lease is taken over."""
        while True:
            await trio.sleep(self.lease_seconds / 3)
            ids = list(self.followers)
            if not ids:
                continue
            try:
                owners = await self.db.run(partial(_owners, ids))
            except StoreUnavailable:
                continue
            now = trio.current_time()
            for thread_id in ids:
                follower = self.followers.get(thread_id)
                if follower is None:
                    continue
                owner = owners.get(thread_id)
                if owner == self.node_id:
                    owner = None  # an older session's lease of this node: nobody runs it
                if owner is None:
                    # A thread this node fenced itself out of: other nodes get two lease
                    # periods to take it first.
                    fenced = self._fenced_at.get(thread_id)
                    if fenced is None or now - fenced >= 2 * self.lease_seconds:
                        self.nursery.start_soon(self.take_over, follower)
                elif owner != follower.owner:
                    follower.owner = owner
                    self.nursery.start_soon(self.register_with, follower)

    def statistics(self) -> dict[str, int]:
        return {
            "cluster_threads_owned": len(self.owned),
            "cluster_threads_followed": len(self.followers),
            "cluster_followers": sum(len(f.subs) for f in self.followers.values()),
            "cluster_calls_forwarded": self.calls.forwarded,
            "cluster_calls_served": self.calls.served,
            "cluster_lease_takeovers": self.takeovers,
            "cluster_self_fenced": self.fenced,
            "cluster_events_delivered": sum(f.delivered for f in self.followers.values()),
        }


def _owners(ids: list[str], conn: Conn, session: str) -> dict[str, str]:
    return leases.owners(conn, session, ids)
