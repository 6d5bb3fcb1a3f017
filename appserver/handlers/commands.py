"""Placeholder: filled by the commands work (issue 14)."""

from __future__ import annotations

from .common import Handler

METHODS: dict[str, Handler] = {}
