"""`appserver schema --out DIR`: JSON Schemas (draft-07) of the wire, in Codex's layout.

Everything is generated from the one description of the wire in `appserver.protocol`:
the METHODS table and its params types, `protocol.results.RESULTS`,
`protocol.notifications.NOTIFICATIONS`, `protocol.server_requests.SERVER_REQUESTS` and the
JSON-RPC envelopes. The files are laid out as Codex 0.171's own `generate-json-schema`
writes them:

    ClientRequest.json  ClientNotification.json  ServerNotification.json  ServerRequest.json
    JSONRPC{Message,Request,Notification,Response,Error,ErrorError}.json  RequestId.json
    <ServerRequest>Params.json  <ServerRequest>Response.json       (server requests)
    v1/InitializeParams.json  v1/InitializeResponse.json
    v2/<Method>Params.json  v2/<Method>Response.json  v2/<Notification>.json
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

from appserver.protocol import envelopes
from appserver.protocol.converter import field_wire_name
from appserver.protocol.methods import CLIENT_NOTIFICATIONS, METHODS
from appserver.protocol.notifications import NOTIFICATIONS
from appserver.protocol.results import RESULTS, TOP_LEVEL_METHODS, V1_METHODS, wire_name
from appserver.protocol.server_requests import SERVER_REQUESTS
from appserver.protocol.wire import WIRE_SCHEMA, RequestId, is_wire_required

DRAFT_07 = "http://json-schema.org/draft-07/schema#"

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


def _description(cls: type) -> str | None:
    doc = cls.__doc__
    if doc and not doc.startswith(f"{cls.__name__}("):  # attrs' generated docstring
        return " ".join(doc.split())
    return None


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
        if tp == RequestId:
            return self._named("RequestId", {"anyOf": [{"type": "string"}, {"type": "integer"}]})
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

    def _named(self, name: str, schema: dict[str, Any]) -> dict[str, Any]:
        self.definitions.setdefault(name, schema)
        return {"$ref": f"#/definitions/{name}"}

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
            name = field_wire_name(cls, field.name)
            if WIRE_SCHEMA in field.metadata:
                schema = dict(field.metadata[WIRE_SCHEMA])
            else:
                schema = dict(self.of(field.type))
            if is_wire_required(field):
                required.append(name)
            else:
                # An optional field sent as null means the same as leaving it out (§9).
                if not _allows_null(schema):
                    schema = {"anyOf": [schema, {"type": "null"}]}
                if field.default is not None and type(field.default) in _PRIMITIVES:
                    schema["default"] = field.default
            properties[name] = schema
        out: dict[str, Any] = {"title": title or cls.__name__, "type": "object"}
        description = _description(cls)
        if description:
            out["description"] = description
        out["properties"] = properties
        if required:
            out["required"] = sorted(required)
        return out

    def union(self, tp: Any, title: str) -> dict[str, Any]:
        return {"title": title, "anyOf": [self.of(a) for a in typing.get_args(tp)]}


def _finish(gen: SchemaGenerator, body: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = {"$schema": DRAFT_07, **body}
    if gen.definitions:
        schema["definitions"] = dict(sorted(gen.definitions.items()))
    return schema


def root_schema(cls: type, title: str) -> dict[str, Any]:
    """A standalone draft-07 schema for `cls`, with every nested class in `definitions`."""
    gen = SchemaGenerator()
    return _finish(gen, gen.object(cls, title))


def _envelope(
    title: str,
    description: str,
    variants: list[tuple[str, str, type | None]],
    *,
    with_id: bool,
) -> dict[str, Any]:
    """A `oneOf` over (method, params definition name, params type) variants."""
    gen = SchemaGenerator()
    one_of: list[dict[str, Any]] = []
    for method, def_name, params in variants:
        props: dict[str, Any] = {}
        required = ["method"]
        if with_id:
            props["id"] = gen.of(RequestId)
            required.insert(0, "id")
        props["method"] = {"type": "string", "enum": [method]}
        if params is not None:
            if def_name not in gen.definitions:
                gen.definitions[def_name] = gen.object(params, def_name)
            props["params"] = {"$ref": f"#/definitions/{def_name}"}
            required.append("params")
        variant_title = def_name.removesuffix("Params") or method
        one_of.append(
            {"title": variant_title, "type": "object", "properties": props, "required": required}
        )
    return _finish(gen, {"title": title, "description": description, "oneOf": one_of})


def method_files(method: str) -> tuple[str, str]:
    """The params and response schema files of a client→server method."""
    stem = wire_name(method)
    if method in TOP_LEVEL_METHODS:
        return f"{stem}Params.json", f"{stem}Response.json"
    folder = "v1" if method in V1_METHODS else "v2"
    return f"{folder}/{stem}Params.json", f"{folder}/{stem}Response.json"


def all_schemas() -> dict[str, dict[str, Any]]:
    """Every schema by its path relative to the output directory."""
    missing = sorted(set(METHODS) - set(RESULTS))
    if missing:
        raise RuntimeError(f"no result type in appserver.protocol.results for {missing}")
    files: dict[str, dict[str, Any]] = {}

    def add(rel: str, cls: type) -> None:
        files[rel] = root_schema(cls, Path(rel).stem)

    for method, spec in METHODS.items():
        params_file, result_file = method_files(method)
        add(params_file, spec.params)
        add(result_file, RESULTS[method])
    for note in NOTIFICATIONS.values():
        add(f"v2/{note.name}.json", note.params)
    for request in SERVER_REQUESTS.values():
        add(f"{request.name}Params.json", request.params)
        add(f"{request.name}Response.json", request.result)

    files["ClientRequest.json"] = _envelope(
        "ClientRequest",
        "Request from the client to the server.",
        [(m, f"{wire_name(m)}Params", spec.params) for m, spec in METHODS.items()],
        with_id=True,
    )
    files["ClientNotification.json"] = _envelope(
        "ClientNotification",
        "Notification from the client to the server.",
        [(m, m, None) for m in sorted(CLIENT_NOTIFICATIONS)],
        with_id=False,
    )
    files["ServerNotification.json"] = _envelope(
        "ServerNotification",
        "Notification sent from the server to the client.",
        [(m, spec.name, spec.params) for m, spec in NOTIFICATIONS.items()],
        with_id=False,
    )
    files["ServerRequest.json"] = _envelope(
        "ServerRequest",
        "Request initiated from the server and sent to the client.",
        [(m, f"{r.name}Params", r.params) for m, r in SERVER_REQUESTS.items()],
        with_id=True,
    )
    for cls in (
        envelopes.JSONRPCRequest,
        envelopes.JSONRPCNotification,
        envelopes.JSONRPCResponse,
        envelopes.JSONRPCError,
        envelopes.JSONRPCErrorError,
    ):
        add(f"{cls.__name__}.json", cls)
    gen = SchemaGenerator()
    files["JSONRPCMessage.json"] = _finish(
        gen, gen.union(envelopes.JSONRPCMessage, "JSONRPCMessage")
    )
    files["RequestId.json"] = {
        "$schema": DRAFT_07,
        "title": "RequestId",
        "anyOf": [{"type": "string"}, {"type": "integer"}],
    }
    return dict(sorted(files.items()))


def export(out: Path) -> list[Path]:
    """Write every schema under `out`; return the paths written."""
    written: list[Path] = []
    for rel, schema in all_schemas().items():
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
        "server request to DIR, in the file layout of Codex's generate-json-schema.",
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
