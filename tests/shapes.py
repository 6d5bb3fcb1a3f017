"""Codex 0.171 timing fields in test expectations (PROTOCOL.md §4.3, §4.5, §6).

`timed(value)` checks every timing field of a wire value (ints in a sane range, a start
never after its end, a turn's `durationMs` consistent with its seconds) and replaces each
int with a placeholder, so the rest of an object still compares exactly and a null stays
a null. Tests compare the values themselves wherever they can (a snapshot against the
notifications, an item/started time against the item's); the placeholders are for the
times a test cannot know.
"""

from __future__ import annotations

import time
from typing import Any

MS = "<unix ms>"
SECONDS = "<unix s>"
DURATION = "<duration ms>"

# No timestamp of a test run is older than this (2020-09-13) or much newer than now.
EARLIEST_SECONDS = 1_600_000_000
SLACK_SECONDS = 5


def check_seconds(value: Any) -> int:
    assert type(value) is int, f"not an int timestamp: {value!r}"
    assert EARLIEST_SECONDS <= value <= time.time() + SLACK_SECONDS, value
    return value


def check_ms(value: Any) -> int:
    assert type(value) is int, f"not an int timestamp: {value!r}"
    assert EARLIEST_SECONDS * 1000 <= value <= (time.time() + SLACK_SECONDS) * 1000, value
    return value


def _pair(value: dict[str, Any], start: str, end: str, check: Any) -> None:
    for key in (start, end):
        if value.get(key) is not None:
            check(value[key])
    if value.get(start) is not None and value.get(end) is not None:
        assert value[start] <= value[end], f"{start} after {end}: {value}"


def _is_turn(value: dict[str, Any]) -> bool:
    return "rootTurnId" in value and "itemsView" in value


def timed(value: Any) -> Any:
    """`value` with its timing fields checked and normalised (see the module doc):
    `startedAtMs` / `completedAtMs` → MS, a turn's `startedAt` / `completedAt` → SECONDS
    and its `durationMs` → DURATION. Other fields (a command's `durationMs`) are kept."""
    if isinstance(value, list):
        return [timed(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: timed(v) for k, v in value.items()}
    _pair(value, "startedAtMs", "completedAtMs", check_ms)
    for key in ("startedAtMs", "completedAtMs"):
        if value.get(key) is not None:
            out[key] = MS
    if _is_turn(value):
        _pair(value, "startedAt", "completedAt", check_seconds)
        duration = value["durationMs"]
        if value["completedAt"] is None:
            assert duration is None, f"a duration without an end: {value}"
        else:
            assert type(duration) is int and duration >= 0, f"bad durationMs: {value}"
            # startedAt/completedAt are the floors of the ms times durationMs separates.
            spread = value["completedAt"] - value["startedAt"]
            assert spread in (duration // 1000, duration // 1000 + 1), value
            out["durationMs"] = DURATION
        for key in ("startedAt", "completedAt"):
            if value[key] is not None:
                out[key] = SECONDS
    return out


def agent_message(item_id: str, text: str) -> dict[str, Any]:
    """An agentMessage item without its times (§4.5): 0.171's optional fields null."""
    return {
        "id": item_id,
        "type": "agentMessage",
        "text": text,
        "phase": None,
        "memoryCitation": None,
        "moderation": None,
        "delivery": None,
        "questions": None,
    }


def turn_shape(
    turn_id: str,
    status: str,
    items_view: str,
    items: list[dict[str, Any]] | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A Turn as `timed` shows it: ended (completedAt, durationMs set) unless inProgress."""
    ended = status != "inProgress"
    return {
        "id": turn_id,
        "rootTurnId": turn_id,
        "items": timed(items or []),
        "itemsView": items_view,
        "status": status,
        "error": error,
        "startedAt": SECONDS,
        "completedAt": SECONDS if ended else None,
        "durationMs": DURATION if ended else None,
    }


def started_params(params: dict[str, Any]) -> dict[str, Any]:
    """`item/started` params, checked (top-level startedAtMs = the item's, not completed)
    and normalised by `timed`."""
    item = params["item"]
    assert params["startedAtMs"] == item["startedAtMs"], params
    assert item["completedAtMs"] is None, params
    normalised: dict[str, Any] = timed(params)
    return normalised


def completed_params(
    params: dict[str, Any], started: dict[str, Any] | None = None
) -> dict[str, Any]:
    """`item/completed` params, checked (top-level completedAtMs = the item's, no token
    count, the start time of its `item/started` params if given) and normalised."""
    item = params["item"]
    assert params["completedAtMs"] == item["completedAtMs"] is not None, params
    assert params["contentTokenCount"] is None, params
    if started is not None:
        assert item["startedAtMs"] == started["startedAtMs"], (started, params)
    normalised: dict[str, Any] = timed(params)
    return normalised
