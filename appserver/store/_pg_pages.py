"""PostgresStore's thread/turns/list and thread/items/list pages: its SQL text (the
logic, shared with the SQLite store, is :mod:`._sql_pages`)."""

from __future__ import annotations

from typing import Final

from appserver.store._sql_pages import PagesSql

__all__ = ["SQL"]

SQL: Final = PagesSql(
    p="%s",
    user_messages="SELECT body FROM items "
    "WHERE turn_seq = %s AND type = 'userMessage' ORDER BY seq",
    last_agent_message="SELECT body FROM items "
    "WHERE turn_seq = %s AND type = 'agentMessage' ORDER BY seq DESC LIMIT 1",
    running_turns="SELECT id FROM turns "
    "WHERE thread_id = %s AND status = 'inProgress' ORDER BY seq",
    last_status="SELECT status FROM turns WHERE thread_id = %s ORDER BY seq DESC LIMIT 1",
    turns="SELECT seq, id, status, error, started_at_ms, completed_at_ms FROM turns "
    "WHERE thread_id = %s{where} ORDER BY seq {order} LIMIT %s",
    turn_items="SELECT body FROM items WHERE turn_seq = %s ORDER BY seq",
    thread_items="SELECT i.seq, t.id, i.body FROM turns t "
    "JOIN items i ON i.turn_seq = t.seq "
    "WHERE t.thread_id = %s{where} ORDER BY i.seq {order} LIMIT %s",
    turn_seq="SELECT seq FROM turns WHERE thread_id = %s AND id = %s",
    item_seq="SELECT seq FROM items WHERE turn_seq = %s AND id = %s",
    one_turn_items="SELECT seq, %s::text, body FROM items "
    "WHERE turn_seq = %s{where} ORDER BY seq {order} LIMIT %s",
)
