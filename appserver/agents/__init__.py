"""Agent backends: the AgentBackend protocol (base.py) and the backends the server knows."""

from __future__ import annotations

from collections.abc import Callable

from .base import AgentBackend, TurnCancelled, TurnContext, TurnFailed
from .builtin import ScriptAgent

_BACKENDS: dict[str, Callable[[], AgentBackend]] = {ScriptAgent.name: ScriptAgent}


def get_backend(name: str) -> AgentBackend | None:
    """A fresh backend for a `modelProvider` name, or None when there is no such backend."""
    factory = _BACKENDS.get(name)
    return None if factory is None else factory()


__all__ = [
    "AgentBackend",
    "ScriptAgent",
    "TurnCancelled",
    "TurnContext",
    "TurnFailed",
    "get_backend",
]
