"""Agent backends: the AgentBackend protocol (base.py) and the backends a server serves
(catalog.py: the builtin ones, an embedder's and installed plugins'; docs/agents.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
from .openai_settings import OpenAISettings

if TYPE_CHECKING:
    from .openai_chat import OpenAIChatAgent


def __getattr__(name: str) -> Any:
    # OpenAIChatAgent (and with it httpx, tenacity, ...) is imported on first use.
    if name == "OpenAIChatAgent":
        from .openai_chat import OpenAIChatAgent

        return OpenAIChatAgent
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
