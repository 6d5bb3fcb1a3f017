"""turn/steer (PROTOCOL.md §10): extra input for the running turn.

`steer` runs in the request's own synchronous step: the steered userMessage item joins the
turn's inbox and the scope the agent's work runs in (`TurnRunner.until_steered`) is
cancelled. The turn task then completes what the agent left open, stores and announces each
steered item in order, and hands the agent the steered input. A steer is a cancellation:
nothing is checked per delta.
"""

from __future__ import annotations

from typing import Any

from appserver.protocol.errors import InvalidRequest
from appserver.threads import objects
from appserver.threads.loaded import ActiveTurn, LoadedThread


def no_turn_to_steer() -> InvalidRequest:
    return InvalidRequest("no active turn to steer", kind="turnNotActive")


def steerable_turn(thread: LoadedThread | None, expected_turn_id: str) -> ActiveTurn:
    """The running turn a steer may go to, or the reference's error."""
    turn = None if thread is None or thread.closing else thread.turn
    if turn is None or not turn.steerable:
        raise no_turn_to_steer()
    if turn.id != expected_turn_id:
        raise InvalidRequest(
            f"expected active turn id `{expected_turn_id}` but found `{turn.id}`",
            kind="turnNotActive",
        )
    return turn


def steered_item(content: list[dict[str, Any]], client_id: str | None) -> dict[str, Any]:
    at_ms = objects.now_ms()
    return {
        "type": "userMessage",
        "id": objects.uuid7(),
        "clientId": client_id,
        "content": content,
        "startedAtMs": at_ms,
        "completedAtMs": at_ms,
    }


def steer(turn: ActiveTurn, item: dict[str, Any]) -> None:
    """Queue a steered item for the turn and stop the agent's running work."""
    turn.steered.append(item)
    if turn.steer_scope is not None:
        turn.steer_scope.cancel()
