"""thread/fork, thread/delete, thread/revert, thread/metadata/update, thread/inject_items
(Codex 0.171): params, results and notifications."""

from __future__ import annotations

from typing import Any

import attrs

from appserver.protocol.objects import Thread
from appserver.protocol.types import ThreadSettingsParams
from appserver.protocol.wire import any_json

# --- thread/fork -----------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ThreadForkParams(ThreadSettingsParams):
    thread_id: str
    # A rollout file path (Codex's storage): refused unless empty (the store is a database).
    path: str | None = None
    last_turn_id: str | None = None
    exclude_turns: bool = False
    ephemeral: bool = False
    thread_source: str | None = None  # stored; reported as Thread.threadSource


# --- thread/revert ---------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ThreadRevertParams:
    thread_id: str
    before_turn_id: str


@attrs.frozen(kw_only=True)
class ThreadRevertResponse:
    thread: Thread
    turns_backwards_cursor: str | None = None
    items_backwards_cursor: str | None = None


# --- thread/metadata/update ------------------------------------------------------------

GIT_FIELDS = ("branch", "sha", "originUrl")

_NULLABLE_STRING: dict[str, Any] = {"type": ["string", "null"]}
_GIT_INFO_UPDATE: dict[str, Any] = {
    "type": ["object", "null"],
    "properties": {field: _NULLABLE_STRING for field in GIT_FIELDS},
}


@attrs.frozen(kw_only=True)
class ThreadMetadataUpdateParams:
    thread_id: str
    # Taken as given: a patch tells an absent member (unchanged) from a null one (cleared),
    # which the converter's null-is-absent rule would erase (handlers/lifecycle.py checks it).
    git_info: Any = attrs.field(default=None, metadata=any_json(_GIT_INFO_UPDATE))


@attrs.frozen(kw_only=True)
class ThreadMetadataUpdateResponse:
    thread: Thread


# --- thread/inject_items ---------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ThreadInjectItemsParams:
    thread_id: str
    # Raw Responses API items (checked by handlers/lifecycle.py, stored as given).
    items: Any = attrs.field(
        default=None, metadata=any_json({"type": "array", "items": True}, required=True)
    )


# --- notifications ---------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ThreadDeletedNotification:
    thread_id: str


@attrs.frozen(kw_only=True)
class ThreadRevertedNotification:
    thread_id: str


__all__ = [
    "GIT_FIELDS",
    "ThreadDeletedNotification",
    "ThreadForkParams",
    "ThreadInjectItemsParams",
    "ThreadMetadataUpdateParams",
    "ThreadMetadataUpdateResponse",
    "ThreadRevertParams",
    "ThreadRevertResponse",
    "ThreadRevertedNotification",
]
