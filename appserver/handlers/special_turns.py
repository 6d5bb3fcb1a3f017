"""Turns that are not a user's turn/start: thread/compact/start, thread/shellCommand,
review/start (Codex 0.171)."""

from __future__ import annotations

from .common import Handler

METHODS: dict[str, Handler] = {}
