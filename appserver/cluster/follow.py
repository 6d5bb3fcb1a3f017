"""Threads owned elsewhere, followed here: the owner's numbered event log (PostgreSQL
`thread_events`, PROTOCOL.md §13) delivered to this node's subscribers, in the owner's
order with the owner's seq. A follower wakes on the owner's NOTIFY (`thread_id seq`),
reads the log after the lowest cursor of its subscribers and gives each subscriber the
events after its own cursor, with or without "seq" as it opted in (as
LoadedThread.publish does). Server requests it delivers are remembered (id -> thread),
so an answer given here can be forwarded to the owner."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import attrs
import trio

from appserver import jsonrpc
from appserver.store.base import LoggedEvent, StoreError, ThreadStore
from appserver.threads.event_log import is_server_request, method_of
from appserver.threads.loaded import wants_seq
from appserver.threads.subscriber import Subscriber, needs_pace, pace

log = logging.getLogger("appserver.cluster")

RETRY_SECONDS = 0.5
CHECKPOINT_EVERY = 64
RESOLVED = "serverRequest/resolved"


def without_seq(text: str) -> str:
    """The text of a logged event as a connection without the capability gets it."""
    at = text.rfind(',"seq":')
    return text[:at] + "}" if at > 0 else text


def request_id_of(text: str) -> int | str | None:
    """The id of an encoded server request (codec layout: `{"jsonrpc":"2.0","id":N,`)."""
    start = len('{"jsonrpc":"2.0","id":')
    end = text.find(',"method"', start)
    raw = text[start:end]
    if raw.startswith('"'):
        return raw.strip('"')
    try:
        return int(raw)
    except ValueError:
        return None


def resolved_id(text: str) -> int | str | None:
    at = text.find('"requestId":')
    if at < 0:
        return None
    raw = text[at + 12 :].split("}", 1)[0].split(",", 1)[0]
    return raw.strip('"') if raw.startswith('"') else int(raw)


@attrs.define(eq=False)
class Follower:
    thread_id: str
    store: ThreadStore
    owner: str | None  # the node that holds the lease (None: unknown, being found)
    subs: dict[int, Subscriber] = attrs.Factory(dict)
    cursors: dict[int, int] = attrs.Factory(dict)  # per subscriber: the last seq it has
    # Server requests delivered here and not resolved: id -> the subscribers that got it.
    requests: dict[int | str, set[int]] = attrs.Factory(dict)
    last_seen: int = 0  # the highest seq announced or read
    delivered: int = 0  # events delivered (statistics)
    _wake: trio.Event = attrs.Factory(trio.Event)
    scope: trio.CancelScope = attrs.Factory(trio.CancelScope)
    stopped: bool = False
    taking: bool = False  # a takeover is under way (node.py)
    # Broadcasts of the owner about this thread (status changes ...), held until the
    # events it had produced before them are delivered here: (seq, method, params).
    release: Callable[[str, Any], None] | None = None
    held: list[tuple[int, str, Any]] = attrs.Factory(list)

    def add(self, sub: Subscriber, after_seq: int) -> None:
        self.subs[sub.id] = sub
        self.cursors[sub.id] = after_seq
        self.wake()

    def remove(self, sub_id: int) -> bool:
        self.cursors.pop(sub_id, None)
        for recipients in self.requests.values():
            recipients.discard(sub_id)
        return self.subs.pop(sub_id, None) is not None

    def hold(self, seq: int, method: str, params: Any) -> bool:
        """Hold a broadcast of the owner's until events up to `seq` are delivered here;
        False when they already are (deliver it now)."""
        if not self.cursors or min(self.cursors.values()) >= seq:
            return False
        self.held.append((seq, method, params))
        self.wake()
        return True

    def release_held(self, everything: bool = False) -> None:
        low = min(self.cursors.values()) if self.cursors and not everything else None
        while self.held and (low is None or self.held[0][0] <= low):
            _, method, params = self.held.pop(0)
            if self.release is not None:
                self.release(method, params)

    def announce(self, seq: int) -> None:
        """The owner stored events up to `seq` (its NOTIFY)."""
        if seq > self.last_seen:
            self.last_seen = seq
            self.wake()

    def wake(self) -> None:
        self._wake.set()

    def can_answer(self, request_id: Any, sub_id: int) -> bool:
        return sub_id in self.requests.get(request_id, ())

    async def run(self) -> None:
        with self.scope:
            while True:
                await self._wake.wait()
                self._wake = trio.Event()
                try:
                    await self.catch_up()
                except StoreError as exc:
                    log.warning("follower of %s: reading the log failed: %s", self.thread_id, exc)
                    await trio.sleep(RETRY_SECONDS)
                    self._wake.set()

    async def catch_up(self) -> None:
        """Read and deliver every stored event after the lowest cursor."""
        while self.cursors:
            low = min(self.cursors.values())
            events = await self.store.read_events(self.thread_id, low)
            if not events:
                return
            await self.deliver(events)
            self.release_held()
            if len(events) < 1000:
                return

    async def deliver(self, events: list[LoggedEvent]) -> None:
        """Each event to each subscriber past its cursor, with the flow control of
        §2.3 (as LoadedThread.after_publish): a subscriber whose queue must drain is
        waited for, and the task reaches a checkpoint every CHECKPOINT_EVERY events."""
        for index, event in enumerate(events):
            self.deliver_one(event)
            if needs_pace(self.subs):
                await pace(self.subs)
            if index % CHECKPOINT_EVERY == CHECKPOINT_EVERY - 1:
                await trio.sleep(0)  # noqa: ASYNC115 - the high-level checkpoint

    def deliver_one(self, event: LoggedEvent) -> None:
        self.last_seen = max(self.last_seen, event.seq)
        text = event.text
        request = is_server_request(text)
        method = "" if request else method_of(text)
        plain: jsonrpc.Outbound | None = None
        numbered: jsonrpc.Outbound | None = None
        got: set[int] = set()
        for sub_id, sub in list(self.subs.items()):
            if self.cursors.get(sub_id, event.seq) >= event.seq:
                continue
            self.cursors[sub_id] = event.seq
            if not request and not sub.wants(method):
                continue
            if wants_seq(sub):
                numbered = numbered or jsonrpc.Outbound(text)
                sub.send_nowait(numbered)
            else:
                plain = plain or jsonrpc.Outbound(without_seq(text))
                sub.send_nowait(plain)
            got.add(sub_id)
            self.delivered += 1
        if request:
            request_id = request_id_of(text)
            if request_id is not None:
                self.requests.setdefault(request_id, set()).update(got)
        elif method == RESOLVED:
            self.requests.pop(resolved_id(text) or "", None)

    def send_pending(self, sub: Subscriber, texts: list[str]) -> None:
        """The owner's pending requests (with "seq"), to a subscriber joining by snapshot."""
        for text in texts:
            sub.send_nowait(text if wants_seq(sub) else without_seq(text))
            request_id = request_id_of(text)
            if request_id is not None:
                self.requests.setdefault(request_id, set()).add(sub.id)
