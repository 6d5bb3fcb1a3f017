"""SqliteStore's thread/turns/list and thread/items/list pages: its SQL text (the logic
is :mod:`._sql_pages`). ``INDEXED BY`` pins each query to the index the page is
designed around (``turns_by_thread``, ``items_by_turn``, ``items_by_type``, schema 4)."""

from __future__ import annotations

from typing import Final

from appserver.store._sql_pages import PagesSql

__all__ = ["SQL"]

SQL: Final = PagesSql(
    p="?",
    user_messages="SELECT body FROM items INDEXED BY items_by_type "
    "WHERE turn_seq = ? AND type = 'userMessage' ORDER BY seq",
    last_agent_message="SELECT body FROM items INDEXED BY items_by_type "
    "WHERE turn_seq = ? AND type = 'agentMessage' ORDER BY seq DESC LIMIT 1",
    running_turns="SELECT id FROM turns INDEXED BY turns_by_thread "
    "WHERE thread_id = ? AND status = 'inProgress' ORDER BY seq",
    last_status="SELECT status FROM turns INDEXED BY turns_by_thread "
    "WHERE thread_id = ? ORDER BY seq DESC LIMIT 1",
    turns="SELECT seq, id, status, error, started_at_ms, completed_at_ms FROM turns "
    "INDEXED BY turns_by_thread WHERE thread_id = ?{where} ORDER BY seq {order} LIMIT ?",
    turn_items="SELECT body FROM items WHERE turn_seq = ? ORDER BY seq",
    thread_items="SELECT i.seq, t.id, i.body FROM turns t INDEXED BY turns_by_thread "
    "JOIN items i ON i.turn_seq = t.seq "
    "WHERE t.thread_id = ?{where} ORDER BY i.seq {order} LIMIT ?",
    turn_seq="SELECT seq FROM turns WHERE thread_id = ? AND id = ?",
    item_seq="SELECT seq FROM items WHERE turn_seq = ? AND id = ?",
    one_turn_items="SELECT seq, ?, body FROM items INDEXED BY items_by_turn "
    "WHERE turn_seq = ?{where} ORDER BY seq {order} LIMIT ?",
)
