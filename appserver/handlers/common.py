"""What every handler area shares: the server's services and the validation helpers that
the wire types cannot express (PROTOCOL.md §9)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio

from appserver.agents import Backends
from appserver.protocol import errors
from appserver.protocol import types as t
from appserver.protocol.errors import InvalidParams
from appserver.protocol.policies import ApprovalPolicy, GranularApprovalPolicy
from appserver.requests import RequestContext
from appserver.store.base import ThreadRecord, ThreadStore
from appserver.threads import objects
from appserver.threads.loaded import Broadcast, LoadedThread
from appserver.threads.registry import Registry


@attrs.define(eq=False)
class Services:
    """What a handler may use: the store, the registry of loaded threads, the broadcast
    to every connection and the server's settings."""

    codex_home: str
    store: ThreadStore
    registry: Registry
    broadcast: Broadcast
    default_cwd: str = attrs.Factory(os.getcwd)
    backends: Backends = attrs.Factory(Backends)

    async def stored(self, thread_id: str) -> ThreadRecord:
        record = await self.store.get_thread(thread_id)
        if record is None:
            raise errors.thread_not_found(thread_id)
        return record

    def status_of(self, thread_id: str) -> dict[str, Any]:
        thread = self.registry.get(thread_id)
        return thread.status() if thread is not None else dict(objects.NOT_LOADED)


# A handler: the services, the request's context, its typed params -> the result (or
# None when it answered through ctx.respond itself).
Handler = Callable[[Services, RequestContext, Any], Awaitable[Any]]
# A handler that answers from live state without waiting (an area's `IMMEDIATE` table):
# the connection runs it in its inbound task, with no task of its own (at §2.4's limit
# it is refused like any other request; it is never itself in flight).
Immediate = Callable[[Services, RequestContext, Any], Any]


def thread_id_of(value: str) -> str:
    try:
        uuid.UUID(value)
    except ValueError:
        raise errors.invalid_thread_id(value) from None
    return value


def _absolute(path: str, field: str) -> str:
    if not os.path.isabs(path):
        raise InvalidParams.field(field, f"must be an absolute path, got {path!r}")
    return os.path.normpath(path)


async def checked_cwd(path: str, field: str) -> str:
    path = _absolute(path, field)
    if not await trio.Path(path).is_dir():
        raise InvalidParams.field(field, f"directory does not exist: {path}")
    return path


def checked_provider(provider: str, backends: Backends, field: str = "modelProvider") -> str:
    """A provider this server serves; else -32602 on `field` (a plugin that failed to
    load is named with its reason)."""
    if not backends.knows(provider):
        why = backends.unavailable.get(provider)
        if why is not None:
            raise InvalidParams.field(field, f"model provider {provider!r} is unavailable: {why}")
        raise InvalidParams.field(field, f"unknown model provider {provider!r}")
    return provider


def approval_policy_of(policy: ApprovalPolicy) -> str:
    """The policy appserver acts on (§7.3): `on-failure` (pre-0.171) and a granular
    policy ask as `on-request` does, and are reported so."""
    if isinstance(policy, GranularApprovalPolicy) or policy == "on-failure":
        return "on-request"
    return policy


async def settings_of(p: t.ThreadSettingsParams, backends: Backends) -> dict[str, Any]:
    """The settings a thread/start, thread/resume or thread/fork gives, validated against
    the server's `backends` (absent = None)."""
    settings: dict[str, Any] = {
        "approvalPolicy": None
        if p.approval_policy is None
        else approval_policy_of(p.approval_policy),
        "sandbox": p.sandbox,
        "baseInstructions": p.base_instructions,
        "developerInstructions": p.developer_instructions,
        "config": p.config,
        "model": p.model,
    }
    if p.cwd is not None:
        settings["cwd"] = await checked_cwd(p.cwd, "cwd")
    if p.model_provider is not None:
        settings["modelProvider"] = checked_provider(p.model_provider, backends)
    return {k: v for k, v in settings.items() if v is not None}


def session_result(thread: LoadedThread, turns: list[dict[str, Any]]) -> dict[str, Any]:
    """The result of thread/start and thread/resume (§5.1): while a turn runs, its
    settings; otherwise the thread's."""
    record, turn = thread.record, thread.turn
    if turn is not None:
        cwd, policy, sandbox, model = turn.cwd, turn.approval_policy, turn.sandbox, turn.model
    else:
        cwd = objects.effective(record, "cwd")
        policy = objects.effective(record, "approvalPolicy") or "on-request"
        sandbox = objects.effective(record, "sandbox") or "workspace-write"
        model = objects.effective(record, "model")
    return {
        "thread": thread.thread_object(turns),
        "model": model,
        "modelProvider": record.model_provider,
        "serviceTier": None,
        "disabledPluginIds": [],  # appserver hosts no plugins
        "instructionSources": [],  # nor instruction files (AGENTS.md)
        "cwd": cwd,
        "approvalPolicy": policy,
        "approvalsReviewer": "user",
        "sandbox": objects.sandbox_policy(sandbox, cwd),
        "reasoningEffort": None,
    }
