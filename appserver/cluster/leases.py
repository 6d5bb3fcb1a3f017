"""Thread leases (the `thread_leases` table): a thread is owned by the node whose lease
is live (`expires_at >= now()`, the database's clock); taking one raises its fencing
epoch, which every write of the owner carries (PostgresStore.fence)."""

from __future__ import annotations

from typing import Any

from appserver.cluster.db import Conn

TAKE_SQL = """
INSERT INTO thread_leases (thread_id, node_id, session, epoch, expires_at)
VALUES (%(thread)s, %(node)s, %(session)s, 1, now() + make_interval(secs => %(lease)s))
ON CONFLICT (thread_id) DO UPDATE
   SET node_id = EXCLUDED.node_id, session = EXCLUDED.session,
       epoch = thread_leases.epoch + 1, expires_at = EXCLUDED.expires_at
 WHERE thread_leases.expires_at < now() OR thread_leases.node_id = EXCLUDED.node_id
RETURNING epoch
"""


def take(conn: Conn, session: str, thread_id: str, node: str, lease: float) -> int | str:
    """Take the thread's lease if it is free, expired, or this node's own (an older
    session's: the caller does not run the thread, so nothing of it runs here): its new
    epoch; else the node that holds it (the row lock makes one of two racers win)."""
    params = {"thread": thread_id, "node": node, "session": session, "lease": lease}
    row = conn.execute(TAKE_SQL, params).fetchone()
    if row is not None:
        return int(row[0])
    held = conn.execute(
        "SELECT node_id FROM thread_leases WHERE thread_id = %s", (thread_id,)
    ).fetchone()
    return str(held[0]) if held is not None else ""


def renew(conn: Conn, session: str, node: str, lease: float, urls: list[str]) -> set[str]:
    """The heartbeat: renew every lease of this node's session in one UPDATE (returns the
    threads still held) and record the node as alive."""
    conn.execute(
        "INSERT INTO cluster_nodes (node_id, session, urls) VALUES (%s, %s, %s::jsonb) "
        "ON CONFLICT (node_id) DO UPDATE SET session = EXCLUDED.session, "
        "heartbeat_at = now(), urls = EXCLUDED.urls",
        (node, session, _json(urls)),
    )
    rows = conn.execute(
        "UPDATE thread_leases SET expires_at = now() + make_interval(secs => %s) "
        "WHERE node_id = %s AND session = %s RETURNING thread_id",
        (lease, node, session),
    ).fetchall()
    return {str(r[0]) for r in rows}


def release(conn: Conn, session: str, thread_id: str, node: str, epoch: int) -> None:
    conn.execute(
        "DELETE FROM thread_leases WHERE thread_id = %s AND node_id = %s AND epoch = %s",
        (thread_id, node, epoch),
    )


def owners(conn: Conn, session: str, thread_ids: list[str]) -> dict[str, str]:
    """The live owner of each thread that has one (threads without are left out)."""
    rows = conn.execute(
        "SELECT thread_id, node_id FROM thread_leases "
        "WHERE thread_id = ANY(%s) AND expires_at >= now()",
        (thread_ids,),
    ).fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


def dead_nodes(conn: Conn, session: str, lease: float) -> set[str]:
    """Nodes whose heartbeat is older than two lease periods."""
    rows = conn.execute(
        "SELECT node_id FROM cluster_nodes WHERE heartbeat_at < now() - make_interval(secs => %s)",
        (2 * lease,),
    ).fetchall()
    return {str(r[0]) for r in rows}


def _json(value: Any) -> str:
    import json

    return json.dumps(value)
