"""Builders for the wire objects of PROTOCOL.md §4: threads, statuses, turns, errors."""

from __future__ import annotations

import os
import time
from typing import Any

from appserver._version import __version__
from appserver.store.base import ThreadRecord

NOT_LOADED: dict[str, Any] = {"type": "notLoaded"}
IDLE: dict[str, Any] = {"type": "idle"}
SYSTEM_ERROR: dict[str, Any] = {"type": "systemError"}


def active(*, waiting_on_approval: bool, waiting_on_user_input: bool = False) -> dict[str, Any]:
    """§4.2: the flags in that order when both."""
    flags = ["waitingOnApproval"] if waiting_on_approval else []
    if waiting_on_user_input:
        flags.append("waitingOnUserInput")
    return {"type": "active", "activeFlags": flags}


def now() -> int:
    return int(time.time())


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def uuid7() -> str:
    """A UUIDv7 string: 48-bit Unix milliseconds, version 7, variant, 74 random bits."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


RECORD_FIELDS = {"cwd": "cwd", "model": "model", "modelProvider": "model_provider"}


def effective(record: ThreadRecord, key: str) -> Any:
    """A thread setting: cwd / model / modelProvider are record columns (thread/list
    filters on them), the rest live in `settings`."""
    field = RECORD_FIELDS.get(key)
    return getattr(record, field) if field is not None else record.settings.get(key)


def apply_settings(record: ThreadRecord, changes: dict[str, Any]) -> dict[str, Any]:
    """Apply setting changes to `record` in memory; return the store update for them."""
    update: dict[str, Any] = {}
    settings = dict(record.settings)
    for key, value in changes.items():
        field = RECORD_FIELDS.get(key)
        if field is not None:
            setattr(record, field, value)
            update[field] = value
        else:
            settings[key] = value
    if settings != record.settings:
        record.settings = settings
        update["settings"] = settings
    return update


def thread_object(
    record: ThreadRecord,
    status: dict[str, Any],
    *,
    ephemeral: bool = False,
    turns: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    settings = record.settings
    return {
        "id": record.id,
        "sessionId": record.id,  # as the reference, a fork starts a session of its own
        "forkedFromId": settings.get("forkedFromId"),  # thread/fork (handlers/lifecycle.py)
        "parentThreadId": None,
        "preview": record.preview,
        "ephemeral": ephemeral,
        "projectId": None,
        "historyMode": "legacy",  # the whole history comes with thread/read, unpaged
        "modelProvider": record.model_provider,
        "model": record.model,
        "reasoningEffort": None,
        "createdAt": record.created_at,
        "updatedAt": record.updated_at,
        "recencyAt": record.recency_at,
        "status": status,
        "path": None,
        "cwd": effective(record, "cwd"),
        "cliVersion": __version__,
        "originator": settings.get("originator"),
        "source": "appServer",
        "threadSource": settings.get("threadSource"),
        "section": None,
        "sectionEnteredAt": None,
        "agentNickname": None,
        "agentRole": None,
        "gitInfo": git_info(settings),  # thread/metadata/update
        "name": record.name,
        "turns": turns if turns is not None else [],
    }


def git_info(settings: dict[str, Any]) -> dict[str, Any] | None:
    """Thread.gitInfo from the stored settings: null unless a field is set."""
    stored = settings.get("gitInfo") or {}
    info = {key: stored.get(key) for key in ("sha", "branch", "originUrl")}
    return info if any(value is not None for value in info.values()) else None


def turn_error(message: str) -> dict[str, Any]:
    return {"message": message, "codexErrorInfo": None, "additionalDetails": None}


def turn_object(
    turn_id: str,
    status: str,
    error: dict[str, Any] | None = None,
    items: list[dict[str, Any]] | None = None,
    *,
    items_view: str = "full",
    started_at_ms: int | None = None,
    completed_at_ms: int | None = None,
) -> dict[str, Any]:
    """A Turn (§4.3). `items_view` says what `items` holds, as Codex 0.171 does:
    `notLoaded` (nothing), `summary` (the final answer), `full` (every item)."""
    duration = None
    if started_at_ms is not None and completed_at_ms is not None:
        duration = max(0, completed_at_ms - started_at_ms)
    return {
        "id": turn_id,
        "rootTurnId": turn_id,
        "items": items if items is not None else [],
        "itemsView": items_view,
        "status": status,
        "error": error,
        "startedAt": None if started_at_ms is None else started_at_ms // 1000,
        "completedAt": None if completed_at_ms is None else completed_at_ms // 1000,
        "durationMs": duration,
    }


def turn_summary(status: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The items of a `turn/completed` turn: the final agent message of a completed turn
    (the reference's `summary` view), nothing for an interrupted or failed one."""
    if status != "completed":
        return []
    for item in reversed(items):
        if item.get("type") == "agentMessage":
            return [item]
    return []


def started_item(item: dict[str, Any], at_ms: int) -> dict[str, Any]:
    """An item as `item/started` carries it: with its start time (0.171 lifecycle)."""
    return {**item, "startedAtMs": at_ms, "completedAtMs": None}


def completed_item(item: dict[str, Any], started_at_ms: int | None, at_ms: int) -> dict[str, Any]:
    return {**item, "startedAtMs": started_at_ms, "completedAtMs": at_ms}


def sandbox_policy(mode: str, cwd: str) -> dict[str, Any]:
    if mode == "read-only":
        return {"type": "readOnly"}
    if mode == "danger-full-access":
        return {"type": "dangerFullAccess"}
    return {"type": "workspaceWrite", "writableRoots": [cwd], "networkAccess": False}


def sandbox_mode(policy_type: str) -> str:
    return {
        "readOnly": "read-only",
        "workspaceWrite": "workspace-write",
        "dangerFullAccess": "danger-full-access",
        # Confinement is someone else's: appserver restricts nothing more (§7.3).
        "externalSandbox": "danger-full-access",
    }[policy_type]


def preview_of(user_input: list[dict[str, Any]]) -> str:
    """First line of the first user text, at most 200 characters."""
    for entry in user_input:
        if entry.get("type") == "text":
            text = str(entry.get("text", ""))
            for line in text.splitlines():
                if line.strip():
                    return line.strip()[:200]
            return ""
    return ""
