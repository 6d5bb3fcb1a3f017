"""Codex 0.171's experimental API gate (`initialize.capabilities.experimentalApi`).

The reference marks some params fields, and the `granular` variant of AskForApproval, as
experimental: a connection that did not opt in gets `-32600` `"<reason> requires
experimentalApi capability"` when it uses one (after its params are otherwise valid).
The 0.171 stable schemas leave most of these fields out; an opted-in client may send them
and appserver accepts them (ignored where it has no such feature, PROTOCOL.md §12).

`experimental_reason(method, params)` reads the raw params, since appserver's params
types drop fields they do not model. The table lists, per method appserver offers, the
gated fields in the order the reference checks them (probed against the reference), so
the first one named matches its message when several are used. None of the methods
appserver offers is experimental as a whole.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from appserver.protocol.errors import InvalidRequest

Test = Callable[[Any], bool]
# A gated field: its wire name, the reason the error names, and when it counts as used.
Gate = tuple[str, str, Test]

MISSING = object()


def _given(value: Any) -> bool:
    """An optional field counts when it is present and not null."""
    return value is not MISSING and value is not None


def _present(value: Any) -> bool:
    """A double-option field (`projectId`: null means "unassigned") counts when present."""
    return value is not MISSING


def _true(value: Any) -> bool:
    """A boolean field that defaults to false counts when true."""
    return value is True


def _path(value: Any) -> bool:
    """A path field: an empty string is treated as absent."""
    return _given(value) and value != ""


def _granular(value: Any) -> bool:
    return isinstance(value, dict) and "granular" in value


GRANULAR = "askForApproval.granular"


def _fields(method: str, *entries: tuple[str, Test]) -> tuple[Gate, ...]:
    return tuple(
        (name, GRANULAR if test is _granular else f"{method}.{name}", test)
        for name, test in entries
    )


EXPERIMENTAL_FIELDS: dict[str, tuple[Gate, ...]] = {
    "thread/start": _fields(
        "thread/start",
        ("runtimeWorkspaceRoots", _given),
        ("approvalPolicy", _granular),
        ("permissions", _given),
        ("environments", _given),
        ("dynamicTools", _given),
        ("mockExperimentalField", _given),
        ("experimentalRawEvents", _true),
    ),
    "thread/resume": _fields(
        "thread/resume",
        ("history", _given),
        ("path", _path),
        ("runtimeWorkspaceRoots", _given),
        ("approvalPolicy", _granular),
        ("permissions", _given),
        ("initialTurnsPage", _given),
    ),
    "thread/list": _fields(
        "thread/list",
        ("projectId", _present),
        ("parentThreadId", _given),
        ("ancestorThreadId", _given),
    ),
    "turn/start": _fields(
        "turn/start",
        ("responsesapiClientMetadata", _given),
        ("additionalContext", _given),
        ("environments", _given),
        ("approvalPolicy", _granular),
        ("permissions", _given),
        ("collaborationMode", _given),
    ),
}

# Methods offered only to connections that opted in (none yet).
EXPERIMENTAL_METHODS: frozenset[str] = frozenset()


def experimental_reason(method: str, params: Any) -> str | None:
    """The reason `method` with these raw params needs the experimentalApi capability,
    or None when it uses nothing experimental."""
    if method in EXPERIMENTAL_METHODS:
        return method
    gates = EXPERIMENTAL_FIELDS.get(method)
    if not gates or type(params) is not dict:
        return None
    for name, reason, test in gates:
        if test(params.get(name, MISSING)):
            return reason
    return None


def experimental_required(reason: str) -> InvalidRequest:
    """The reference's refusal, word for word."""
    return InvalidRequest(f"{reason} requires experimentalApi capability", kind="invalidRequest")


def check_experimental(method: str, params: Any, *, opted_in: bool) -> None:
    """Raise the reference's refusal when a connection that did not opt in uses an
    experimental method or field."""
    if opted_in:
        return
    reason = experimental_reason(method, params)
    if reason is not None:
        raise experimental_required(reason)
