"""Thread lifecycle beyond start/archive: thread/fork, thread/delete, thread/revert,
thread/metadata/update, thread/inject_items (Codex 0.171)."""

from __future__ import annotations

from .common import Handler

METHODS: dict[str, Handler] = {}
