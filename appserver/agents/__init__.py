"""Agent backends: the AgentBackend protocol (base.py) and the backends the server knows."""

from __future__ import annotations

from collections.abc import Callable

import attrs

from .base import AgentBackend, TurnCancelled, TurnContext, TurnFailed
from .builtin import ScriptAgent
from .openai_chat import OpenAIChatAgent, OpenAISettings


@attrs.frozen(kw_only=True)
class Backends:
    """The backends as configured at server start: the provider of new threads and each
    backend's settings."""

    default_provider: str = ScriptAgent.name
    openai: OpenAISettings = attrs.Factory(OpenAISettings)

    def get(self, name: str) -> AgentBackend | None:
        """A fresh backend for a `modelProvider` name, or None when there is no such backend."""
        factory = _BACKENDS.get(name)
        return None if factory is None else factory(self)

    def default_model(self, name: str) -> str:
        """The model of a new thread of this provider that names none."""
        return self.openai.model if name == OpenAIChatAgent.name else ScriptAgent.model


_BACKENDS: dict[str, Callable[[Backends], AgentBackend]] = {
    ScriptAgent.name: lambda _: ScriptAgent(),
    OpenAIChatAgent.name: lambda config: OpenAIChatAgent(config.openai),
}


def get_backend(name: str, backends: Backends | None = None) -> AgentBackend | None:
    """A fresh backend for a `modelProvider` name, or None when there is no such backend."""
    return (backends or Backends()).get(name)


__all__ = [
    "AgentBackend",
    "Backends",
    "OpenAIChatAgent",
    "OpenAISettings",
    "ScriptAgent",
    "TurnCancelled",
    "TurnContext",
    "TurnFailed",
    "get_backend",
]
