"""A loaded thread's numbered event log (PROTOCOL.md §13).

Every event a thread sends to its subscribers (notifications of §6 "to: subscribers" and
the server requests of §7) gets its seq here, in production order: `number` is the one
place. The event is kept, as an opted-in connection receives it (with `"seq"`), in an
in-memory buffer that a flusher task writes to the store in batches (`append_events`),
on a short timer and when the thread closes, never one write per event.

Seqs are reserved in blocks: the store's high-water mark (`EventSeqMark.reserved`) is
raised by `SEQ_BLOCK` before the numbers of a block are used, so a server that crashes
never hands out again a seq a client may have seen. Closing releases the block (the mark
becomes the last seq used, `clean`). A thread loaded after a crash (mark not clean)
starts one block past the mark and replays nothing from before its load (`floor`): the
log has a hole there, and the crash interrupted a turn with no event.
"""

from __future__ import annotations

import collections
import itertools
import logging
from collections.abc import Callable

import attrs
import trio

from appserver.store.base import EventSeqMark, LoggedEvent, StoreError, ThreadStore

log = logging.getLogger("appserver.events")

DEFAULT_MAX_EVENTS = 20_000
DEFAULT_MAX_BYTES = 16 * 1024 * 1024
SEQ_BLOCK = 1024
FLUSH_SECONDS = 0.2
RETRY_SECONDS = 1.0


@attrs.frozen(kw_only=True)
class EventLogLimits:
    """The per-thread bound of the log: the most recent `max_events` events whose texts
    total at most `max_bytes` (`--event-log-events`, `--event-log-bytes`)."""

    max_events: int = DEFAULT_MAX_EVENTS
    max_bytes: int = DEFAULT_MAX_BYTES


def is_server_request(text: str) -> bool:
    """Whether an encoded event is a server request (never suppressed by opt-outs)."""
    return text.startswith('{"jsonrpc":"2.0","id":')


def method_of(text: str) -> str:
    """The method of an encoded notification (codec.encode_notification's layout)."""
    start = text.find('"method":"') + 10
    return text[start : text.find('"', start)]


@attrs.define(eq=False)
class EventLog:
    thread_id: str
    store: ThreadStore
    limits: EventLogLimits = attrs.Factory(EventLogLimits)
    _next: int = 1  # the seq the next event gets
    reserved: int = 0  # durable high-water mark: seqs <= this may be handed out
    # Replay needs afterSeq >= floor (raised when loaded after a crash).
    floor: int = 0
    _buffer: collections.deque[LoggedEvent] = attrs.Factory(collections.deque)  # not written
    _flushing: list[LoggedEvent] = attrs.Factory(list)  # being written
    # Held by a flush and by a replay (threads/replay.py), so a replay reads the store
    # and the buffer as one consistent whole.
    lock: trio.Lock = attrs.Factory(trio.Lock)
    _reserving: trio.Lock = attrs.Factory(trio.Lock)
    _wake: trio.Event = attrs.Factory(trio.Event)
    _scope: trio.CancelScope = attrs.Factory(trio.CancelScope)
    _closed: bool = False
    _retry_at: float = 0.0  # after a failed reservation, producers retry from then on
    # A cluster node (appserver/cluster/): write as soon as events are buffered (what
    # comes during a write goes in the next), and tell followers what is stored.
    eager: bool = False
    on_flushed: Callable[[str, int], None] | None = None

    @property
    def last_seq(self) -> int:
        return self._next - 1

    # --- numbering (synchronous: called from publish) ------------------------------------

    def number(self) -> int:
        """The seq of the next event, in production order."""
        seq = self._next
        self._next += 1
        if seq > self.reserved:
            # A burst with no producer checkpoint outran the reservation (or the store
            # is failing): the flusher raises the mark as soon as it can; it normally
            # stays SEQ_BLOCK / 2 ahead.
            if seq == self.reserved + 1:
                log.warning(
                    "thread %s: seq %d is past the reserved %d", self.thread_id, seq, self.reserved
                )
            self._wake.set()
        return seq

    def keep(self, event: LoggedEvent) -> None:
        """Buffer a numbered event for the flusher."""
        self._buffer.append(event)
        if len(self._buffer) > self.limits.max_events and not self.lock.locked():
            # Older than the newest max_events: the store would trim it anyway. Not while
            # a replay (or a flush) holds the lock: a replay in progress reads on from
            # the buffer. (Replay checks what it finds is complete: never across a hole.)
            self._buffer.popleft()
        self._wake.set()

    @property
    def needs_reserve(self) -> bool:
        return self._next + SEQ_BLOCK // 2 > self.reserved

    async def reserve(self) -> None:
        """Raise the durable mark a block ahead of the next seq (when due)."""
        if not self.needs_reserve or self._closed or trio.current_time() < self._retry_at:
            return
        async with self._reserving:
            if not self.needs_reserve:
                return
            target = self._next - 1 + SEQ_BLOCK
            try:
                await self.store.put_event_mark(
                    self.thread_id, EventSeqMark(reserved=target, clean=False)
                )
            except StoreError as exc:  # never fails a turn: the flusher tries again
                log.warning("thread %s: seq reservation failed: %s", self.thread_id, exc)
                self._retry_at = trio.current_time() + RETRY_SECONDS
                self._wake.set()
                return
            self.reserved = max(self.reserved, target)

    # --- loading and closing ---------------------------------------------------------------

    async def restore(self) -> None:
        """A stored thread being loaded: continue after its mark (§13 survives unload and
        restart) and reserve the first block."""
        mark = await self.store.get_event_mark(self.thread_id)
        if mark.clean:
            self._next = mark.reserved + 1
        else:  # a crash: skip a block (insurance) and replay nothing from before
            self._next = mark.reserved + SEQ_BLOCK + 1
            self.floor = self._next - 1
        self.reserved = self._next - 1
        await self.reserve()

    async def run(self) -> None:
        """The flusher: writes the buffer shortly after events come, until closed."""
        with self._scope:
            while True:
                await self._wake.wait()
                if not self.eager:
                    await trio.sleep(FLUSH_SECONDS)  # batch what comes meanwhile
                self._wake = trio.Event()
                try:
                    await self.reserve()
                    await self.flush()
                except StoreError as exc:
                    log.warning("thread %s: event log write failed: %s", self.thread_id, exc)
                    self._wake.set()
                    await trio.sleep(RETRY_SECONDS)

    async def flush(self) -> None:
        async with self.lock:
            await self.flush_locked()

    async def flush_locked(self) -> None:
        if not self._buffer:
            return
        self._flushing = list(self._buffer)
        self._buffer.clear()
        written = self._flushing[-1].seq
        try:
            await self.store.append_events(
                self.thread_id,
                self._flushing,
                max_events=self.limits.max_events,
                max_bytes=self.limits.max_bytes,
            )
        except BaseException:
            self._buffer.extendleft(reversed(self._flushing))
            while len(self._buffer) > self.limits.max_events:
                self._buffer.popleft()
            raise
        finally:
            self._flushing = []
        if self.on_flushed is not None:
            self.on_flushed(self.thread_id, written)

    async def aclose(self) -> None:
        """The thread is closing: stop the flusher, write the rest, release the block."""
        self._scope.cancel()
        if self._closed:
            return
        self._closed = True
        with trio.CancelScope(shield=True):
            try:
                await self.flush()
                await self.store.put_event_mark(
                    self.thread_id, EventSeqMark(reserved=self.last_seq, clean=True)
                )
            except StoreError as exc:  # the next load treats it as a crash: safe
                log.warning("thread %s: event log not closed cleanly: %s", self.thread_id, exc)

    def abandon(self) -> None:
        """Another node owns the thread now (cluster): stop, write nothing more."""
        self._scope.cancel()
        self._closed = True

    # --- replay (threads/replay.py holds `lock`) ---------------------------------------

    def in_memory_after(self, seq: int) -> list[LoggedEvent]:
        return [e for e in itertools.chain(self._flushing, self._buffer) if e.seq > seq]

    @property
    def first_in_memory(self) -> int | None:
        if self._flushing:
            return self._flushing[0].seq
        return self._buffer[0].seq if self._buffer else None
