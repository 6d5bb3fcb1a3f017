"""`appserver schema --out DIR`: JSON Schemas (draft-07) of the wire protocol.

Every schema is generated from attrs classes with type hints:

- params: the classes of the METHODS table (`appserver.protocol.types`), which are also
  what the server validates requests with;
- results, notifications and server requests: the server builds those as plain dicts on
  the hot path, so their shapes are described once, here, by the small attrs models
  below (the tests check that what a real server emits validates against them).

Python names are snake_case; `converter.camel` gives the wire names, as for params.
"""

from __future__ import annotations

import argparse
import json
import sys
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, NoReturn

import attrs

from appserver.protocol import types as t
from appserver.protocol.converter import camel
from appserver.protocol.methods import METHODS

DRAFT_07 = "http://json-schema.org/draft-07/schema#"
SCHEMA_VERSION_DIR = "v2"

# --- objects (PROTOCOL.md §4) ----------------------------------------------------------


@attrs.frozen(kw_only=True)
class ThreadStatusNotLoaded:
    type: Literal["notLoaded"]


@attrs.frozen(kw_only=True)
class ThreadStatusIdle:
    type: Literal["idle"]


@attrs.frozen(kw_only=True)
class ThreadStatusSystemError:
    type: Literal["systemError"]


ActiveFlag = Literal["waitingOnApproval", "waitingOnUserInput"]


@attrs.frozen(kw_only=True)
class ThreadStatusActive:
    type: Literal["active"]
    active_flags: list[ActiveFlag]


ThreadStatus = (
    ThreadStatusNotLoaded | ThreadStatusIdle | ThreadStatusSystemError | ThreadStatusActive
)

ItemStatus = Literal["inProgress", "completed", "failed", "declined"]


@attrs.frozen(kw_only=True)
class UserMessageItem:
    type: Literal["userMessage"]
    id: str
    content: list[t.UserInput]


@attrs.frozen(kw_only=True)
class AgentMessageItem:
    type: Literal["agentMessage"]
    id: str
    text: str
    phase: None
    memory_citation: None


@attrs.frozen(kw_only=True)
class ReasoningItem:
    type: Literal["reasoning"]
    id: str
    summary: list[str]
    content: list[str]


@attrs.frozen(kw_only=True)
class CommandAction:
    type: Literal["unknown"]
    command: str


@attrs.frozen(kw_only=True)
class CommandExecutionItem:
    type: Literal["commandExecution"]
    id: str
    command: str
    cwd: str
    process_id: str | None
    source: Literal["agent"]
    status: ItemStatus
    command_actions: list[CommandAction]
    aggregated_output: str | None
    exit_code: int | None
    duration_ms: int | None


@attrs.frozen(kw_only=True)
class FileChangeKindAdd:
    type: Literal["add"]


@attrs.frozen(kw_only=True)
class FileChangeKindDelete:
    type: Literal["delete"]


@attrs.frozen(kw_only=True)
class FileChangeKindUpdate:
    type: Literal["update"]
    move_path: None


@attrs.frozen(kw_only=True)
class FileUpdateChange:
    path: str
    kind: FileChangeKindAdd | FileChangeKindDelete | FileChangeKindUpdate
    diff: str


@attrs.frozen(kw_only=True)
class FileChangeItem:
    type: Literal["fileChange"]
    id: str
    changes: list[FileUpdateChange]
    status: ItemStatus


ThreadItem = (
    UserMessageItem | AgentMessageItem | ReasoningItem | CommandExecutionItem | FileChangeItem
)


@attrs.frozen(kw_only=True)
class TurnError:
    message: str
    codex_error_info: None
    additional_details: None


@attrs.frozen(kw_only=True)
class Turn:
    id: str
    items: list[ThreadItem]
    status: Literal["inProgress", "completed", "interrupted", "failed"]
    error: TurnError | None


@attrs.frozen(kw_only=True)
class Thread:
    id: str
    preview: str
    name: str | None
    ephemeral: bool
    model_provider: str
    cwd: str
    created_at: int
    updated_at: int
    status: ThreadStatus
    path: None
    cli_version: str
    source: Literal["appServer"]
    agent_nickname: None
    agent_role: None
    git_info: None
    turns: list[Turn]


@attrs.frozen(kw_only=True)
class SandboxPolicyReadOnly:
    type: Literal["readOnly"]


@attrs.frozen(kw_only=True)
class SandboxPolicyWorkspaceWrite:
    type: Literal["workspaceWrite"]
    writable_roots: list[str]
    network_access: bool


@attrs.frozen(kw_only=True)
class SandboxPolicyDangerFullAccess:
    type: Literal["dangerFullAccess"]


SandboxPolicy = SandboxPolicyReadOnly | SandboxPolicyWorkspaceWrite | SandboxPolicyDangerFullAccess

# --- results (§3, §5) ------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ThreadSessionResult:
    """The result of thread/start and thread/resume (§5.1, §5.2)."""

    thread: Thread
    model: str
    model_provider: str
    service_tier: None
    cwd: str
    approval_policy: t.ApprovalPolicy
    approvals_reviewer: Literal["user"]
    sandbox: SandboxPolicy
    reasoning_effort: None


@attrs.frozen(kw_only=True)
class ThreadResult:
    thread: Thread


@attrs.frozen(kw_only=True)
class ThreadListResult:
    data: list[Thread]
    next_cursor: str | None


@attrs.frozen(kw_only=True)
class ThreadLoadedListResult:
    data: list[str]
    next_cursor: str | None


@attrs.frozen(kw_only=True)
class ThreadUnsubscribeResult:
    status: Literal["notLoaded", "notSubscribed", "unsubscribed"]


@attrs.frozen(kw_only=True)
class TurnResult:
    turn: Turn


@attrs.frozen(kw_only=True)
class EmptyResult:
    """An empty object."""


RESULTS: dict[str, type] = {
    "initialize": t.InitializeResult,
    "thread/start": ThreadSessionResult,
    "thread/resume": ThreadSessionResult,
    "thread/read": ThreadResult,
    "thread/list": ThreadListResult,
    "thread/loaded/list": ThreadLoadedListResult,
    "thread/archive": EmptyResult,
    "thread/unarchive": ThreadResult,
    "thread/unsubscribe": ThreadUnsubscribeResult,
    "thread/name/set": EmptyResult,
    "turn/start": TurnResult,
    "turn/interrupt": EmptyResult,
}

# --- notifications (§6) ----------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ThreadStartedNotification:
    thread: Thread


@attrs.frozen(kw_only=True)
class ThreadStatusChangedNotification:
    thread_id: str
    status: ThreadStatus


@attrs.frozen(kw_only=True)
class ThreadIdNotification:
    thread_id: str


@attrs.frozen(kw_only=True)
class ThreadNameUpdatedNotification:
    thread_id: str
    thread_name: str


@attrs.frozen(kw_only=True)
class TurnNotification:
    thread_id: str
    turn: Turn


@attrs.frozen(kw_only=True)
class ItemNotification:
    thread_id: str
    turn_id: str
    item: ThreadItem


@attrs.frozen(kw_only=True)
class ItemDeltaNotification:
    thread_id: str
    turn_id: str
    item_id: str
    delta: str


@attrs.frozen(kw_only=True)
class ReasoningSummaryTextDeltaNotification(ItemDeltaNotification):
    summary_index: int


@attrs.frozen(kw_only=True)
class ServerRequestResolvedNotification:
    thread_id: str
    request_id: int | str


@attrs.frozen(kw_only=True)
class ErrorNotification:
    error: TurnError
    will_retry: bool
    thread_id: str
    turn_id: str


# method -> (schema name, params model)
NOTIFICATIONS: dict[str, tuple[str, type]] = {
    "thread/started": ("ThreadStartedNotification", ThreadStartedNotification),
    "thread/status/changed": ("ThreadStatusChangedNotification", ThreadStatusChangedNotification),
    "thread/closed": ("ThreadClosedNotification", ThreadIdNotification),
    "thread/archived": ("ThreadArchivedNotification", ThreadIdNotification),
    "thread/unarchived": ("ThreadUnarchivedNotification", ThreadIdNotification),
    "thread/name/updated": ("ThreadNameUpdatedNotification", ThreadNameUpdatedNotification),
    "turn/started": ("TurnStartedNotification", TurnNotification),
    "turn/completed": ("TurnCompletedNotification", TurnNotification),
    "item/started": ("ItemStartedNotification", ItemNotification),
    "item/completed": ("ItemCompletedNotification", ItemNotification),
    "item/agentMessage/delta": ("AgentMessageDeltaNotification", ItemDeltaNotification),
    "item/reasoning/summaryTextDelta": (
        "ReasoningSummaryTextDeltaNotification",
        ReasoningSummaryTextDeltaNotification,
    ),
    "item/commandExecution/outputDelta": (
        "CommandExecutionOutputDeltaNotification",
        ItemDeltaNotification,
    ),
    "item/fileChange/outputDelta": ("FileChangeOutputDeltaNotification", ItemDeltaNotification),
    "serverRequest/resolved": (
        "ServerRequestResolvedNotification",
        ServerRequestResolvedNotification,
    ),
    "error": ("ErrorNotification", ErrorNotification),
}

# --- server requests (§7) --------------------------------------------------------------


@attrs.frozen(kw_only=True)
class CommandExecutionRequestApprovalParams:
    thread_id: str
    turn_id: str
    item_id: str
    approval_id: str | None = None
    reason: str | None = None
    command: str
    cwd: str
    command_actions: list[CommandAction]


@attrs.frozen(kw_only=True)
class FileChangeRequestApprovalParams:
    thread_id: str
    turn_id: str
    item_id: str
    reason: None
    grant_root: None


@attrs.frozen(kw_only=True)
class ApprovalResponse:
    decision: t.Decision


# method -> (schema name stem, params model, result model)
SERVER_REQUESTS: dict[str, tuple[str, type, type]] = {
    "item/commandExecution/requestApproval": (
        "CommandExecutionRequestApproval",
        CommandExecutionRequestApprovalParams,
        ApprovalResponse,
    ),
    "item/fileChange/requestApproval": (
        "FileChangeRequestApproval",
        FileChangeRequestApprovalParams,
        ApprovalResponse,
    ),
}

# Method names whose schema name is not their parts capitalised and joined.
_METHOD_NAME_OVERRIDES = {"thread/name/set": "ThreadSetName"}


def method_schema_name(method: str) -> str:
    """`thread/loaded/list` -> `ThreadLoadedList` (the Codex schema file naming)."""
    override = _METHOD_NAME_OVERRIDES.get(method)
    if override is not None:
        return override
    return "".join(part[:1].upper() + part[1:] for part in method.split("/"))


# --- the generator ---------------------------------------------------------------------

_PRIMITIVES: dict[object, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


def _json_type(value: object) -> str:
    for py, name in _PRIMITIVES.items():
        if type(value) is py:
            return name
    raise TypeError(f"no JSON type for literal {value!r}")


def _allows_null(schema: dict[str, Any]) -> bool:
    if not schema:
        return True
    kind = schema.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    return any(_allows_null(branch) for branch in schema.get("anyOf", ()))


class SchemaGenerator:
    """Turns type hints into JSON Schema; attrs classes become `definitions`."""

    def __init__(self) -> None:
        self.definitions: dict[str, Any] = {}

    def of(self, tp: Any) -> Any:
        if tp is Any or tp is object:
            return {}
        if tp is None or tp is type(None):
            return {"type": "null"}
        if tp in _PRIMITIVES:
            return {"type": _PRIMITIVES[tp]}
        if isinstance(tp, type) and attrs.has(tp):
            return self.ref(tp)
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin is Literal:
            kinds = sorted({_json_type(a) for a in args})
            return {"type": kinds[0] if len(kinds) == 1 else kinds, "enum": list(args)}
        if origin is types.UnionType or origin is typing.Union:
            return {"anyOf": [self.of(a) for a in args]}
        if origin in (list, Sequence, tuple) and args:
            return {"type": "array", "items": self.of(args[0])}
        if origin is dict:
            value = self.of(args[1]) if len(args) == 2 else {}
            return {"type": "object", "additionalProperties": value if value else True}
        if tp in (list, tuple):
            return {"type": "array"}
        if tp is dict:
            return {"type": "object"}
        raise TypeError(f"no JSON Schema for type {tp!r}")

    def ref(self, cls: type) -> dict[str, Any]:
        name = cls.__name__
        if name not in self.definitions:
            self.definitions[name] = {}  # placeholder: breaks cycles
            self.definitions[name] = self.object(cls)
        return {"$ref": f"#/definitions/{name}"}

    def object(self, cls: type, title: str | None = None) -> dict[str, Any]:
        attrs.resolve_types(cls)
        properties: dict[str, Any] = {}
        required: list[str] = []
        for field in attrs.fields(cls):
            name = camel(field.name)
            schema = dict(self.of(field.type))
            if field.default is attrs.NOTHING:
                required.append(name)
            else:
                # An optional field sent as null means the same as leaving it out (§9).
                if not _allows_null(schema):
                    schema = {"anyOf": [schema, {"type": "null"}]}
                if field.default is not None and type(field.default) in _PRIMITIVES:
                    schema["default"] = field.default
            properties[name] = schema
        out: dict[str, Any] = {"title": title or cls.__name__, "type": "object"}
        doc = cls.__doc__
        if doc and not doc.startswith(f"{cls.__name__}("):  # attrs' generated docstring
            out["description"] = " ".join(doc.split())
        out["properties"] = properties
        if required:
            out["required"] = required
        return out


def root_schema(cls: type, title: str) -> dict[str, Any]:
    """A standalone draft-07 schema for `cls`, with every nested class in `definitions`."""
    gen = SchemaGenerator()
    body = gen.object(cls, title)
    schema: dict[str, Any] = {"$schema": DRAFT_07, **body}
    if gen.definitions:
        schema["definitions"] = dict(sorted(gen.definitions.items()))
    return schema


def all_schemas() -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Every schema by relative file path, and the index that lists them."""
    files: dict[str, dict[str, Any]] = {}

    def add(name: str, cls: type) -> str:
        rel = f"{SCHEMA_VERSION_DIR}/{name}.json"
        files[rel] = root_schema(cls, name)
        return rel

    methods: dict[str, Any] = {}
    missing = set(METHODS) - set(RESULTS)
    if missing:
        raise RuntimeError(f"no result model for {sorted(missing)}")
    for method, spec in METHODS.items():
        stem = method_schema_name(method)
        methods[method] = {
            "params": add(f"{stem}Params", spec.params),
            "result": add(f"{stem}Response", RESULTS[method]),
        }
    notifications = {method: add(name, cls) for method, (name, cls) in NOTIFICATIONS.items()}
    server_requests = {
        method: {"params": add(f"{stem}Params", params), "result": add(f"{stem}Response", result)}
        for method, (stem, params, result) in SERVER_REQUESTS.items()
    }
    index = {
        "$schema": DRAFT_07,
        "description": "appserver wire schemas: file paths relative to this index",
        "methods": methods,
        "notifications": notifications,
        "serverRequests": server_requests,
    }
    return files, index


def export(out: Path) -> list[Path]:
    """Write every schema under `out` plus `out/index.json`; return the paths written."""
    files, index = all_schemas()
    written: list[Path] = []
    for rel, schema in {**files, "index.json": index}.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(schema, indent=2) + "\n", encoding="utf-8")
        written.append(path)
    return written


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(message)


def main(argv: Sequence[str] | None = None) -> int:
    """`appserver schema --out DIR`."""
    parser = _Parser(
        prog="appserver schema",
        description="Write JSON Schemas (draft-07) of every method, notification and "
        "server request to DIR.",
    )
    parser.add_argument("--out", type=Path, required=True, metavar="DIR")
    try:
        args = parser.parse_args(argv)
        written = export(args.out)
    except _UsageError as exc:
        print(f"appserver schema: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(
            f"appserver schema: error: cannot write to {exc.filename}: {exc.strerror}",
            file=sys.stderr,
        )
        return 2
    print(f"wrote {len(written)} files to {args.out}", file=sys.stderr)
    return 0
