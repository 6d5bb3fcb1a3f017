"""Server→client request ids and the table of requests awaiting an answer (sans-IO)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

import attrs

from appserver.jsonrpc.codec import RequestId

T = TypeVar("T")

# One process-wide counter: server→client request ids are unique across connections (§1).
_server_request_ids = itertools.count(1)


def next_server_request_id() -> int:
    return next(_server_request_ids)


def seed_server_request_ids(start: int) -> None:
    """A cluster node numbers its server requests from a start unique to the node, so an
    id names one owner's request across the cluster (appserver/cluster/node.py)."""
    global _server_request_ids
    _server_request_ids = itertools.count(start)


@attrs.define(eq=False)
class PendingRequest(Generic[T]):
    id: RequestId
    method: str
    params: Any
    # Who may answer (opaque to this layer: connection objects, subscriber ids, ...).
    recipients: set[T] = attrs.Factory(set)


@attrs.define(eq=False)
class PendingTable(Generic[T]):
    """Requests sent and not yet answered. The first valid answer wins; `pop` for an id
    that is not pending, or from someone it was not sent to, returns None."""

    _entries: dict[RequestId, PendingRequest[T]] = attrs.Factory(dict)

    def add(self, entry: PendingRequest[T]) -> None:
        if entry.id in self._entries:
            raise KeyError(f"request id already pending: {entry.id!r}")
        self._entries[entry.id] = entry

    def get(self, request_id: RequestId) -> PendingRequest[T] | None:
        return self._entries.get(request_id)

    def claim(self, request_id: RequestId, answerer: T) -> PendingRequest[T] | None:
        entry = self._entries.get(request_id)
        if entry is None or answerer not in entry.recipients:
            return None
        del self._entries[request_id]
        return entry

    def discard(self, request_id: RequestId) -> PendingRequest[T] | None:
        return self._entries.pop(request_id, None)

    def __iter__(self) -> Iterator[PendingRequest[T]]:
        return iter(list(self._entries.values()))

    def __len__(self) -> int:
        return len(self._entries)
