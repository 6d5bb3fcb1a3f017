"""Logging for operators (docs/operations.md "Logs"): the stderr handler (text, or one
JSON object per line with each event's `extra=` fields as keys), trio-websocket's chatter
kept at warning, and the connection-level and shutdown lines. The thread layer's lines are
threads/audit.py. Every line is %-style: nothing is formatted when its level is off."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from appserver.connection import Connection
    from appserver.transports.base import Transport

log = logging.getLogger("appserver")
conn_log = logging.getLogger("appserver.connection")

# The attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():  # the event's fields (`extra=`) as keys
            if key not in _RECORD_FIELDS and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_logging(level: str, as_json: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if as_json
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # trio-websocket logs every frame and handshake at debug: only asked for, with debug.
    chatter = logging.DEBUG if level == "debug" else logging.WARNING
    logging.getLogger("trio-websocket").setLevel(chatter)


def shutdown_notice(signal_name: str, running: int, timeout: float, forced: bool = False) -> None:
    """What a shutdown signal starts, and what it waits for (PROTOCOL.md §8.8)."""
    fields: dict[str, object] = {"event": "shutdown", "signal": signal_name, "forced": forced}
    if forced:
        log.info("received %s again; stopping now", signal_name, extra=fields)
    elif running and timeout > 0:
        fields.update(running_turns=running, timeout_s=timeout)
        log.info(
            "received %s; waiting for %d running turn%s (up to %g s); signal again to stop now",
            signal_name,
            running,
            "" if running == 1 else "s",
            timeout,
            extra=fields,
        )
    else:
        log.info("received %s", signal_name, extra={**fields, "running_turns": 0})


def connection_initialized(conn: int, client: str, version: str) -> None:
    conn_log.info(
        "connection %d initialized (client %s %s)",
        conn,
        client,
        version,
        extra={
            "event": "connection.initialized",
            "connection_id": conn,
            "client": client,
            "client_version": version,
        },
    )


def slow_consumer(conn: int, client: str | None, queued: int) -> None:
    conn_log.warning(
        "connection %d (client %s) is a slow consumer (%d queued); closing it",
        conn,
        client,
        queued,
        extra={
            "event": "connection.slow_consumer",
            "connection_id": conn,
            "client": client,
            "queued": queued,
        },
    )


def peer_of(transport: Transport) -> str:
    """Who is on the other end (the transport's `peer`)."""
    return transport.peer


def connection_opened(conn: int, transport: Transport) -> str:
    """Logs the connection opening; returns its peer (for the closing line)."""
    peer = peer_of(transport)
    conn_log.info(
        "connection %d opened (%s from %s)",
        conn,
        transport.kind,
        peer,
        extra={
            "event": "connection.opened",
            "connection_id": conn,
            "transport": transport.kind,
            "peer": peer,
        },
    )
    return peer


def connection_closed(conn: Connection, kind: str, peer: str) -> None:
    reason = conn.close_reason or "closed"
    conn_log.info(
        "connection %d closed (%s from %s; client %s): %s",
        conn.id,
        kind,
        peer,
        conn.client_name,
        reason,
        extra={
            "event": "connection.closed",
            "connection_id": conn.id,
            "transport": kind,
            "peer": peer,
            "client": conn.client_name,
            "reason": reason,
            "code": conn.close_code,
        },
    )
