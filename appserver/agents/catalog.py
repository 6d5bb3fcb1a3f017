"""The agent backends a server serves (docs/agents.md): the two builtin ones, an
embedder's (`ServerConfig(agents={name: factory})`) and installed plugins (entry point
group `appserver.agents`). Each is a model provider: a thread picks one by `modelProvider`.

A factory is any zero-argument callable returning an AgentBackend (a class will do). It
is called once when the server starts, to check it and read what the backend advertises,
and then once per turn (a backend that keeps state across turns returns one instance
from its factory). What a backend may advertise, as optional attributes:

- `models`: a sequence of model ids (str) or AgentModel, the first being the one a new
  thread gets when it names none; without it, one model named after the provider;
- `display_name`: the provider's name in modelProvider/list (default: its registered name).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Literal

import attrs

from .base import AgentBackend
from .builtin import ScriptAgent
from .openai_settings import PROVIDER_NAME as OPENAI
from .openai_settings import OpenAISettings

log = logging.getLogger("appserver.agents")

ENTRY_POINT_GROUP = "appserver.agents"
BUILTIN_NAMES = (ScriptAgent.name, OPENAI)

AgentFactory = Callable[[], AgentBackend]
Modality = Literal["text", "image", "audio"]
MODALITIES: tuple[Modality, ...] = ("text", "image", "audio")


class AgentUnavailable(ValueError):
    """The server's default agent is unknown or cannot be served (its plugin failed to
    load, its factory failed); a ServerConfig's agents that do not fit."""


@attrs.frozen
class AgentModel:
    """A model a backend advertises in model/list (the `models` attribute)."""

    id: str
    display_name: str | None = None  # None: the id
    description: str = ""
    input_modalities: tuple[Modality, ...] = ("text",)


@attrs.frozen
class AgentEntry:
    """One served backend besides the builtin ones, as checked at server start."""

    name: str
    factory: AgentFactory
    models: tuple[AgentModel, ...]
    display_name: str
    source: str  # where it comes from, for messages: ServerConfig.agents or the entry point


@attrs.frozen(kw_only=True)
class Backends:
    """The backends as configured at server start: the provider of new threads, the
    OpenAI-compatible backend's settings, the embedder's and plugins' backends (in the
    order they are listed) and the plugins that could not be loaded (name -> why)."""

    default_provider: str = ScriptAgent.name
    openai: OpenAISettings = attrs.Factory(OpenAISettings)
    agents: Mapping[str, AgentEntry] = attrs.Factory(dict)
    unavailable: Mapping[str, str] = attrs.Factory(dict)
    builtin_usage: bool = False  # the builtin agent reports character-counted token usage

    def get(self, name: str) -> AgentBackend | None:
        """A fresh backend for a `modelProvider` name, or None when there is no such backend."""
        if name == ScriptAgent.name:
            return ScriptAgent(report_usage=self.builtin_usage)
        if name == OPENAI:
            # Imported here: httpx and the rest only when an openai turn runs.
            from .openai_chat import OpenAIChatAgent

            return OpenAIChatAgent(self.openai)
        entry = self.agents.get(name)
        return None if entry is None else entry.factory()

    def knows(self, name: str) -> bool:
        return name in BUILTIN_NAMES or name in self.agents

    def names(self) -> list[str]:
        """Every provider a thread can pick, in the order modelProvider/list gives them."""
        return [*BUILTIN_NAMES, *self.agents]

    def default_model(self, name: str) -> str:
        """The model of a new thread of this provider that names none."""
        if name == OPENAI:
            return self.openai.model
        entry = self.agents.get(name)
        return ScriptAgent.model if entry is None else entry.models[0].id

    def why_not(self, name: str) -> str:
        """Why `name` cannot be served (it is not known)."""
        if name in self.unavailable:
            return f"agent {name!r} is unavailable: {self.unavailable[name]}"
        return f"unknown agent {name!r} (known: {', '.join(self.names())})"


def _models(name: str, agent: Any) -> tuple[AgentModel, ...]:
    declared = getattr(agent, "models", None)
    if declared is None:
        return (AgentModel(id=name),)
    if isinstance(declared, str | AgentModel):
        declared = [declared]
    models = tuple(AgentModel(id=m) if isinstance(m, str) else m for m in declared)
    if not models or not all(isinstance(m, AgentModel) and m.id for m in models):
        raise TypeError("`models` must be a non-empty sequence of model ids or AgentModel")
    ids = [m.id for m in models]
    if len(set(ids)) < len(ids):
        raise TypeError(f"`models` names a model twice: {ids}")
    for m in models:
        if not m.input_modalities or not set(m.input_modalities) <= set(MODALITIES):
            raise TypeError(
                f"model {m.id!r}: input_modalities must be some of {', '.join(MODALITIES)}"
            )
    return models


def describe(name: str, factory: AgentFactory, source: str) -> AgentEntry:
    """Check a factory by calling it once; raises (TypeError or the factory's own
    exception) when it does not make an AgentBackend."""
    if not callable(factory):
        raise TypeError(f"{factory!r} is not callable")
    agent: Any = factory()
    if not callable(getattr(agent, "run_turn", None)):
        raise TypeError(f"{factory!r} made {agent!r}, which has no run_turn method")
    display = getattr(agent, "display_name", None)
    return AgentEntry(
        name=name,
        factory=factory,
        models=_models(name, agent),
        display_name=display if isinstance(display, str) and display else name,
        source=source,
    )


def installed_plugins() -> list[EntryPoint]:
    """The entry points of group `appserver.agents` (nothing is imported)."""
    return sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


def _where(ep: EntryPoint) -> str:
    dist = f" ({ep.dist.name} {ep.dist.version})" if ep.dist is not None else ""
    return f"entry point {ep.name} = {ep.value}{dist}"


def load_plugins(
    eps: Iterable[EntryPoint], taken: Iterable[str]
) -> tuple[dict[str, AgentEntry], dict[str, str]]:
    """Load each plugin; one that fails (to import, or to make a backend) is logged and
    left out, with its reason. A builtin or embedder's name is not taken over."""
    loaded: dict[str, AgentEntry] = {}
    failed: dict[str, str] = {}
    taken = set(taken)
    seen: dict[str, str] = {}
    for ep in eps:
        where = _where(ep)
        if ep.name in seen:
            failed[ep.name] = (
                f"two installed plugins are named {ep.name!r}: {seen[ep.name]}, {where}"
            )
            loaded.pop(ep.name, None)
            continue
        seen[ep.name] = where
        if ep.name in taken or ep.name in BUILTIN_NAMES:
            log.warning("agent plugin %s ignored: the name %r is taken", where, ep.name)
            continue
        try:
            loaded[ep.name] = describe(ep.name, ep.load(), where)
        except Exception as exc:  # a broken plugin never stops the server
            failed[ep.name] = f"its plugin failed to load ({where}): {type(exc).__name__}: {exc}"
    for name, why in failed.items():
        log.warning("agent %r is unavailable: %s", name, why)
    return loaded, failed


def build_backends(
    *,
    default_provider: str,
    openai: OpenAISettings,
    agents: Mapping[str, AgentFactory],
    plugins: bool = True,
    builtin_usage: bool = False,
) -> Backends:
    """The backends of a server: ServerConfig's `agents` (checked; a builtin name or a
    factory that fails raises AgentUnavailable), then the installed plugins (when
    `plugins`); raises AgentUnavailable when `default_provider` is not among them."""
    own: dict[str, AgentEntry] = {}
    for name, factory in agents.items():
        if not isinstance(name, str) or not name:
            raise AgentUnavailable(f"ServerConfig.agents: {name!r} is not a name")
        if name in BUILTIN_NAMES:
            raise AgentUnavailable(f"ServerConfig.agents: {name!r} is a builtin agent's name")
        try:
            own[name] = describe(name, factory, "ServerConfig.agents")
        except Exception as exc:
            raise AgentUnavailable(
                f"ServerConfig.agents[{name!r}]: {type(exc).__name__}: {exc}"
            ) from exc
    loaded, failed = (
        load_plugins(installed_plugins(), [*BUILTIN_NAMES, *own]) if plugins else ({}, {})
    )
    backends = Backends(
        default_provider=default_provider,
        openai=openai,
        agents={**own, **loaded},
        unavailable=failed,
        builtin_usage=builtin_usage,
    )
    if not backends.knows(default_provider):
        raise AgentUnavailable(backends.why_not(default_provider))
    return backends
