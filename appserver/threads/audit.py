"""The operator's log lines of the thread layer (docs/operations.md "Logs"): one line at
info per thread loaded or closed, turn started or ended, server request asked, answered
or settled. Each carries its fields as `extra=` (keys of `--log-json`); all arguments are
%-style, so nothing is formatted when info is off. Never called per delta or delivery."""

from __future__ import annotations

import logging
from typing import Any

from appserver.threads.loaded import ActiveTurn, LoadedThread, PendingApproval

log = logging.getLogger("appserver.threads")

# The special turns' adapter agents (threads/special.py), by class name: a turn's kind.
_KINDS = {"CompactionTurn": "compaction", "ShellTurn": "shell", "ReviewTurn": "review"}


def turn_kind(agent: object) -> str:
    return _KINDS.get(type(agent).__name__, "turn")


def thread_loaded(thread: LoadedThread, how: str, interrupted: int = 0) -> None:
    """created (thread/start), forked, or resumed (loaded from the store; `interrupted`:
    the turns a crash had left running, now stored interrupted)."""
    if not log.isEnabledFor(logging.INFO):
        return
    log.info(
        "thread %s loaded (%s%s)",
        thread.id,
        how,
        f"; {interrupted} turn(s) left running by a crash marked interrupted"
        if interrupted
        else "",
        extra={
            "event": "thread.loaded",
            "thread_id": thread.id,
            "how": how,
            "ephemeral": thread.ephemeral,
            "interrupted_turns": interrupted,
        },
    )


def thread_closed(thread: LoadedThread, why: str) -> None:
    log.info(
        "thread %s closed (%s)",
        thread.id,
        why,
        extra={"event": "thread.closed", "thread_id": thread.id, "reason": why},
    )


def turn_started(thread: LoadedThread, turn: ActiveTurn, kind: str) -> None:
    log.info(
        "turn %s started on thread %s (%s)",
        turn.id,
        thread.id,
        kind,
        extra={"event": "turn.started", "thread_id": thread.id, "turn_id": turn.id, "kind": kind},
    )


def turn_ended(
    thread: LoadedThread, turn: ActiveTurn, kind: str, status: str, completed_ms: int
) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    duration = max(0, completed_ms - turn.started_at_ms)
    log.info(
        "turn %s on thread %s (%s) ended %s after %d ms",
        turn.id,
        thread.id,
        kind,
        status,
        duration,
        extra={
            "event": "turn.ended",
            "thread_id": thread.id,
            "turn_id": turn.id,
            "kind": kind,
            "status": status,
            "duration_ms": duration,
        },
    )


def request_asked(pending: PendingApproval) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    to = sorted(pending.recipients)
    log.info(
        "server request %s %s for item %s (turn %s) sent to connection(s) %s",
        pending.id,
        pending.method,
        pending.item_id,
        pending.turn_id,
        to,
        extra={
            "event": "request.asked",
            "request_id": pending.id,
            "method": pending.method,
            "thread_id": pending.thread.id,
            "turn_id": pending.turn_id,
            "item_id": pending.item_id,
            "connections": to,
        },
    )


def _decision(result: Any, error: bool) -> str:
    """What an answer said, in one word: an approval's decision, else its result's keys."""
    if error:
        return "error"
    if isinstance(result, dict):
        decision = result.get("decision")
        if isinstance(decision, str):
            return decision
        return ",".join(sorted(str(k) for k in result)) or "empty"
    return type(result).__name__


def request_answered(pending: PendingApproval, connection: int) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    decision = _decision(pending.result, pending.error)
    log.info(
        "server request %s %s answered by connection %d: %s",
        pending.id,
        pending.method,
        connection,
        decision,
        extra={
            "event": "request.answered",
            "request_id": pending.id,
            "method": pending.method,
            "thread_id": pending.thread.id,
            "turn_id": pending.turn_id,
            "item_id": pending.item_id,
            "connection_id": connection,
            "decision": decision,
        },
    )


def request_settled(pending: PendingApproval) -> None:
    log.info(
        "server request %s %s settled with no answer",
        pending.id,
        pending.method,
        extra={
            "event": "request.settled",
            "request_id": pending.id,
            "method": pending.method,
            "thread_id": pending.thread.id,
            "turn_id": pending.turn_id,
            "item_id": pending.item_id,
        },
    )
