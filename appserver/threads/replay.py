"""thread/resume `afterSeq` (PROTOCOL.md §13): the events a rejoining connection missed,
from the thread's numbered log, then the live stream, with no gap and no duplicate.

The log's lock is held from the store read to the subscription, so no flush moves an
event between the store and the buffer meanwhile: the store's events, then the buffer's,
are every event after `afterSeq`, and events the thread produces while the replay is
being written are appended to the buffer, where the replay picks them up. The replay is
written in chunks, each ended early by the subscriber's flow control (§2.3), so a long
replay never overflows the outbound queue of a client that reads; the last chunk and the
subscription are one synchronous step. Nothing is sent (the caller answers with the
snapshot) when the log no longer holds every event after `afterSeq`.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from appserver.protocol import errors
from appserver.protocol.replay_types import Replay
from appserver.store.base import LoggedEvent
from appserver.threads.event_log import is_server_request, method_of
from appserver.threads.loaded import LoadedThread
from appserver.threads.registry import Registry
from appserver.threads.subscriber import Subscriber

CHUNK = 128


def _complete(backlog: list[LoggedEvent], after_seq: int, last_seq: int) -> bool:
    if len(backlog) != last_seq - after_seq:
        return False
    return not backlog or (backlog[0].seq == after_seq + 1 and backlog[-1].seq == last_seq)


def _send(sub: Subscriber, backlog: list[LoggedEvent], start: int) -> int:
    """Send from `backlog[start]` on, up to CHUNK events or until the subscriber's flow
    control says wait (§2.3); returns the index to go on from."""
    end = min(len(backlog), start + CHUNK)
    index = start
    while index < end:
        event = backlog[index]
        index += 1
        if is_server_request(event.text) or sub.wants(method_of(event.text)):
            sub.send_nowait(event.text)
            if sub.needs_wait():
                break
    return index


async def replay_rejoin(
    registry: Registry,
    thread: LoadedThread,
    sub: Subscriber,
    after_seq: int,
    respond: Callable[[Replay], None],
) -> bool:
    """Rejoin `sub` with a replay of every event after `after_seq`: `respond` (the
    thread/resume answer) first, then the events, then the live stream. False, with
    nothing sent, when the log does not reach back to `after_seq`."""
    log = thread.events
    async with log.lock:
        if not log.floor <= after_seq <= log.last_seq:
            return False
        first = log.first_in_memory
        in_memory = first is not None and first <= after_seq + 1
        if in_memory or after_seq == log.last_seq:
            stored: list[LoggedEvent] = []
        else:
            stored = await thread.store.read_events(thread.id, after_seq)
        if thread.closing or registry.get(thread.id) is not thread:
            raise errors.thread_closing(thread.id)
        backlog = stored + log.in_memory_after(stored[-1].seq if stored else after_seq)
        if not _complete(backlog, after_seq, log.last_seq):
            return False
        # A subscriber resuming again gets the replay first, then the live stream.
        thread.subscribers.pop(sub.id, None)
        respond(Replay(from_seq=after_seq + 1, to_seq=log.last_seq))
        sent = 0
        while True:
            # Requests still pending may be answered by `sub` as soon as it sees them.
            for pending in thread.pending.values():
                pending.recipients.add(sub.id)
            sent = _send(sub, backlog, sent)
            backlog += log.in_memory_after(backlog[-1].seq if backlog else after_seq)
            if sent >= len(backlog):
                registry.join(thread, sub)  # the live stream from here on
                return True
            if sub.needs_wait():
                await sub.wait_writable()
            await trio.sleep(0)  # noqa: ASYNC115 - the high-level checkpoint
            if sub.closed or registry.get(thread.id) is not thread:
                registry.replay_abandoned(thread)
                return True  # gone meanwhile: nothing more to send
