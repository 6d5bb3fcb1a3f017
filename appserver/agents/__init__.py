"""Agent backends: the AgentBackend protocol (base.py) and the backends a server serves
(catalog.py: the builtin ones, an embedder's and installed plugins'; docs/agents.md)."""

from __future__ import annotations

from .base import AgentBackend, TurnCancelled, TurnContext, TurnFailed
from .builtin import ScriptAgent
from .catalog import (
    ENTRY_POINT_GROUP,
    AgentFactory,
    AgentModel,
    AgentUnavailable,
    Backends,
    installed_plugins,
)
from .openai_chat import OpenAIChatAgent, OpenAISettings


def get_backend(name: str, backends: Backends | None = None) -> AgentBackend | None:
    """A fresh backend for a `modelProvider` name, or None when there is no such backend."""
    return (backends or Backends()).get(name)


__all__ = [
    "ENTRY_POINT_GROUP",
    "AgentBackend",
    "AgentFactory",
    "AgentModel",
    "AgentUnavailable",
    "Backends",
    "OpenAIChatAgent",
    "OpenAISettings",
    "ScriptAgent",
    "TurnCancelled",
    "TurnContext",
    "TurnFailed",
    "get_backend",
    "installed_plugins",
]
