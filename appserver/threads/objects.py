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


def active(*, waiting_on_approval: bool) -> dict[str, Any]:
    return {"type": "active", "activeFlags": ["waitingOnApproval"] if waiting_on_approval else []}


def now() -> int:
    return int(time.time())


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
    return {
        "id": record.id,
        "preview": record.preview,
        "name": record.name,
        "ephemeral": ephemeral,
        "modelProvider": record.model_provider,
        "cwd": effective(record, "cwd"),
        "createdAt": record.created_at,
        "updatedAt": record.updated_at,
        "status": status,
        "path": None,
        "cliVersion": __version__,
        "source": "appServer",
        "agentNickname": None,
        "agentRole": None,
        "gitInfo": None,
        "turns": turns if turns is not None else [],
    }


def turn_error(message: str) -> dict[str, Any]:
    return {"message": message, "codexErrorInfo": None, "additionalDetails": None}


def turn_object(
    turn_id: str,
    status: str,
    error: dict[str, Any] | None = None,
    items: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "id": turn_id,
        "items": items if items is not None else [],
        "status": status,
        "error": error,
    }


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
