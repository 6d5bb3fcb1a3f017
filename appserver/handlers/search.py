"""fuzzyFileSearch (Codex 0.171)."""

from __future__ import annotations

from .common import Handler

METHODS: dict[str, Handler] = {}
