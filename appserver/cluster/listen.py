"""The node's one LISTEN connection. A worker thread waits in `conn.notifies()` for at
most WAIT_SECONDS at a time (so cancelling the task never waits long); each batch is
handed to `dispatch` in the trio thread. NOTIFY keeps nothing for a listener that is not
connected: after every (re)connection `on_connected` runs, and the node re-reads what it
may have missed (event logs from the last delivered seq, pending calls and replies)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import attrs
import psycopg
import trio
from psycopg import sql

from appserver.cluster.db import Conn, connect

log = logging.getLogger("appserver.cluster")

WAIT_SECONDS = 0.5
RETRY_SECONDS = 0.5

EVENTS = "appserver.events"  # payload "THREAD_ID LAST_SEQ"
BROADCAST = "appserver.broadcast"  # payload "NODE\nJSON" or "NODE\n@ROW_ID"


def node_channel(node_id: str) -> str:
    """Calls to the node ("c" + id) and replies to its calls ("r" + id)."""
    return f"appserver.node.{node_id}"


Dispatch = Callable[[list[tuple[str, str]]], None]


@attrs.define(eq=False)
class Listener:
    conninfo: str
    application_name: str
    channels: list[str]
    dispatch: Dispatch
    on_connected: Callable[[], Awaitable[None]]
    connected: trio.Event = attrs.Factory(trio.Event)
    reconnects: int = 0

    async def run(self) -> None:
        while True:
            try:
                conn = await trio.to_thread.run_sync(self._open)
            except psycopg.Error as exc:
                log.warning("cluster LISTEN connection failed: %s", exc)
                await trio.sleep(RETRY_SECONDS)
                continue
            try:
                self.reconnects += 1
                await self.on_connected()
                self.connected.set()
                while True:
                    batch = await trio.to_thread.run_sync(self._wait, conn)
                    if batch:
                        self.dispatch(batch)
            except psycopg.Error as exc:
                log.warning("cluster LISTEN connection lost: %s", exc)
            finally:
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(conn.close)
            await trio.sleep(RETRY_SECONDS)

    def _open(self) -> Conn:
        conn = connect(self.conninfo, self.application_name)
        for channel in self.channels:
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        return conn

    @staticmethod
    def _wait(conn: Conn) -> list[tuple[str, str]]:
        got = [(n.channel, n.payload) for n in conn.notifies(timeout=WAIT_SECONDS, stop_after=1)]
        if got:  # what came meanwhile, without waiting
            got += [(n.channel, n.payload) for n in conn.notifies(timeout=0.0)]
        return got
