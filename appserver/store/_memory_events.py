"""The numbered event log of ``MemoryStore`` (PROTOCOL.md §13): per thread a bounded
deque of recent events and the seq high-water mark."""

from __future__ import annotations

import collections

import attrs

from appserver.store.base import EventSeqMark, LoggedEvent


@attrs.define
class _ThreadLog:
    events: collections.deque[tuple[LoggedEvent, int]] = attrs.Factory(collections.deque)
    bytes: int = 0


@attrs.define
class MemoryEvents:
    marks: dict[str, EventSeqMark] = attrs.Factory(dict)
    logs: dict[str, _ThreadLog] = attrs.Factory(dict)

    def get_mark(self, thread_id: str) -> EventSeqMark:
        return self.marks.get(thread_id, EventSeqMark())

    def put_mark(self, thread_id: str, mark: EventSeqMark) -> None:
        self.marks[thread_id] = mark

    def append(
        self, thread_id: str, events: list[LoggedEvent], max_events: int, max_bytes: int
    ) -> None:
        log = self.logs.setdefault(thread_id, _ThreadLog())
        for event in events:
            if log.events and event.seq <= log.events[-1][0].seq:
                raise ValueError(f"event {event.seq} is not after the logged ones")
            size = len(event.text.encode("utf-8"))
            log.events.append((event, size))
            log.bytes += size
        while log.events and (len(log.events) > max_events or log.bytes > max_bytes):
            _, size = log.events.popleft()
            log.bytes -= size

    def read(self, thread_id: str, after_seq: int) -> list[LoggedEvent]:
        log = self.logs.get(thread_id)
        if log is None or not log.events:
            return []
        first = log.events[0][0].seq
        if after_seq < first:
            return [event for event, _ in log.events]
        # seqs are ascending but may have holes: skip by position, then filter
        start = min(after_seq - first, len(log.events))
        while start > 0 and log.events[start - 1][0].seq > after_seq:
            start -= 1
        return [event for event, _ in list(log.events)[start:] if event.seq > after_seq]

    def forget(self, thread_id: str) -> None:
        self.marks.pop(thread_id, None)
        self.logs.pop(thread_id, None)
