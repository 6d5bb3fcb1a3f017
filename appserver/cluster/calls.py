"""Forwarding owner-only operations through PostgreSQL (`cluster_calls`).

The caller inserts a row (target = the lease holder) and NOTIFYs the target's channel
in the same transaction (NOTIFY is delivered at commit); the target reads its new rows
(on the NOTIFY, and on every LISTEN reconnect: NOTIFY keeps nothing), runs each, writes
`reply` and NOTIFYs the caller, who reads the reply. A call not answered within its
timeout raises CallTimeout (the caller then checks the lease: failover, node.py).

On the owner a forwarded request runs through the ordinary handlers with a `Relay` as
its connection: one subscriber id per calling node, so the owner's subscriptions,
pending-request recipients and first-answer-wins apply to a whole remote node as they
apply to a local connection. A relay's sends are dropped (the remote node reads the
event log), except, while its call runs, the response and the pending requests a
resume re-sends, which go back in the reply."""

from __future__ import annotations

import itertools
import json
import logging
from typing import Any

import attrs
import trio
from psycopg.types.json import Jsonb

from appserver.cluster.db import Conn, ControlDb
from appserver.cluster.listen import node_channel
from appserver.jsonrpc import Outbound
from appserver.protocol.errors import JsonRpcError

log = logging.getLogger("appserver.cluster")

# Relay subscriber ids: far above connection ids, one per remote node.
_relay_ids = itertools.count(1 << 40)


class RemoteError(JsonRpcError):
    """An error answer of the owner, passed through as it was encoded there."""

    def __init__(self, wire: dict[str, Any]) -> None:
        data = wire.get("data") or {}
        super().__init__(str(wire.get("message", "")), kind=data.get("kind"))
        self.wire = wire

    def to_wire(self) -> dict[str, Any]:
        return self.wire


class CallTimeout(Exception):
    def __init__(self, target: str, kind: str) -> None:
        super().__init__(f"node {target} did not answer a {kind} call in time")
        self.target = target


@attrs.define(eq=False)
class Relay:
    """A remote node as the owner's handlers see it: a subscriber and, for one forwarded
    request, the connection the request came on."""

    id: int
    node: str
    client_name: str | None = None
    event_seq: bool = True  # pending requests re-sent with their seq
    experimental_api: bool = True
    initialized: bool = True
    closed: bool = False
    capturing: bool = True
    captured: list[str] = attrs.Factory(list)
    # When the response is captured: the thread's last seq, in the same step (rejoin).
    on_response: Any = None
    seq_at_response: int | None = None

    def wants(self, method: str) -> bool:
        return True

    def send_nowait(self, text: str | Outbound) -> bool:
        if self.capturing:
            raw = text if isinstance(text, str) else text.text
            if self.on_response is not None and '"result":' in raw[:60] and not self.captured:
                self.seq_at_response = self.on_response()
            self.captured.append(raw)
        return True

    def reply(self, text: str) -> bool:
        """A response, as `Connection.reply`: captured like anything else sent."""
        return self.send_nowait(text)

    @property
    def hungry(self) -> bool:
        return False  # captures, never waits: nobody a producer could delay

    def needs_wait(self, *, alone: bool = False) -> bool:
        return False

    async def wait_writable(self, *, alone: bool = False, recheck: float = 0.5) -> None:
        return None

    def notify(self, method: str, params: Any) -> bool:
        return True


@attrs.define(eq=False)
class Calls:
    db: ControlDb
    node_id: str
    _waiting: dict[int, trio.Event] = attrs.Factory(dict)
    _replies: dict[int, Any] = attrs.Factory(dict)
    _relay_ids: dict[str, int] = attrs.Factory(dict)
    served_after: int = 0  # the highest call id read for this node
    forwarded: int = 0
    served: int = 0

    def relay_id(self, node: str) -> int:
        if node not in self._relay_ids:
            self._relay_ids[node] = next(_relay_ids)
        return self._relay_ids[node]

    def relay_nodes(self) -> dict[str, int]:
        return dict(self._relay_ids)

    async def call(
        self, target: str, thread_id: str | None, kind: str, body: Any, wait: float
    ) -> Any:
        """Run `kind` with `body` on node `target`; its reply."""

        def insert(conn: Conn, session: str) -> int:
            row = conn.execute(
                "INSERT INTO cluster_calls (target_node, from_node, thread_id, kind, body) "
                "VALUES (%s, %s, %s, %s, %s) RETURNING id",
                (target, self.node_id, thread_id, kind, Jsonb(body)),
            ).fetchone()
            assert row is not None
            call_id = int(row[0])
            conn.execute("SELECT pg_notify(%s, %s)", (node_channel(target), f"c{call_id}"))
            return call_id

        self.forwarded += 1
        call_id = await self.db.run(insert)
        done = self._waiting[call_id] = trio.Event()
        try:
            with trio.move_on_after(wait):
                await done.wait()
            if call_id not in self._replies:
                await self.poll_replies([call_id])
            if call_id not in self._replies:
                raise CallTimeout(target, kind)
            return self._replies.pop(call_id)
        finally:
            self._waiting.pop(call_id, None)
            self._replies.pop(call_id, None)

    def on_reply(self, call_id: int) -> None:
        if call_id in self._waiting:
            self._waiting[call_id].set()

    async def poll_replies(self, ids: list[int] | None = None) -> None:
        """Read the replies of calls still waiting (after a NOTIFY, or a reconnect)."""
        ids = list(self._waiting) if ids is None else ids
        if not ids:
            return

        def read(conn: Conn, session: str) -> list[tuple[int, Any]]:
            rows = conn.execute(
                "SELECT id, reply FROM cluster_calls WHERE id = ANY(%s) AND reply IS NOT NULL",
                (ids,),
            ).fetchall()
            return [(int(r[0]), r[1]) for r in rows]

        for call_id, reply in await self.db.run(read):
            self._replies[call_id] = reply
            self.on_reply(call_id)

    async def take_new(self) -> list[tuple[int, str, str | None, str, Any]]:
        """The calls for this node not read yet, oldest first."""

        def read(conn: Conn, session: str) -> list[tuple[int, str, str | None, str, Any]]:
            rows = conn.execute(
                "SELECT id, from_node, thread_id, kind, body FROM cluster_calls "
                "WHERE target_node = %s AND reply IS NULL AND id > %s ORDER BY id",
                (self.node_id, self.served_after),
            ).fetchall()
            return [(int(r[0]), str(r[1]), r[2], str(r[3]), r[4]) for r in rows]

        calls = await self.db.run(read)
        if calls:
            self.served_after = max(self.served_after, calls[-1][0])
        return calls

    async def start_after_existing(self) -> None:
        """At start: calls left for a previous incarnation of this node are not run."""

        def read(conn: Conn, session: str) -> int:
            row = conn.execute(
                "SELECT coalesce(max(id), 0) FROM cluster_calls WHERE target_node = %s",
                (self.node_id,),
            ).fetchone()
            return int(row[0]) if row else 0

        self.served_after = await self.db.run(read)

    async def answer(self, call_id: int, caller: str, reply: Any) -> None:
        self.served += 1

        def write(conn: Conn, session: str) -> None:
            conn.execute(
                "UPDATE cluster_calls SET reply = %s, replied_at = now() WHERE id = %s",
                (Jsonb(reply), call_id),
            )
            conn.execute("SELECT pg_notify(%s, %s)", (node_channel(caller), f"r{call_id}"))

        await self.db.run(write)

    async def prune(self) -> None:
        def delete(conn: Conn, session: str) -> None:
            conn.execute(
                "DELETE FROM cluster_calls WHERE created_at < now() - interval '2 minutes'"
            )

        await self.db.run(delete)


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
