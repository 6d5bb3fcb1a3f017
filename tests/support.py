"""Shared test helpers: schema validation of every server message, real server processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import jsonschema
import pytest
import trio

from appserver.protocol.converter import converter, validation_errors
from appserver.protocol.notifications import NOTIFICATIONS
from appserver.protocol.results import RESULTS, wire_name
from appserver.protocol.server_requests import SERVER_REQUESTS

REPO = Path(__file__).resolve().parents[1]
SCHEMA_DIR = Path(
    os.environ.get("APPSERVER_CODEX_SCHEMA", REPO.parent / "shared" / "codex-schema-0.171")
)

# What only a thread's subscribers may receive (PROTOCOL.md §6 "to: subscribers").
SUBSCRIBER_METHODS = frozenset(
    {
        "turn/started",
        "turn/completed",
        "item/started",
        "item/completed",
        "item/agentMessage/delta",
        "item/reasoning/summaryTextDelta",
        "item/commandExecution/outputDelta",
        "item/fileChange/outputDelta",
        "serverRequest/resolved",
        "error",
    }
)

# Result schemas whose file is not `v2/<wire name>Response.json` (see protocol.results).
RESPONSE_SCHEMAS = {
    "initialize": "v1/InitializeResponse.json",
    "thread/start": "v2/ThreadStartResponse.json",
    "thread/resume": "v2/ThreadResumeResponse.json",
    "thread/read": "v2/ThreadReadResponse.json",
    "thread/list": "v2/ThreadListResponse.json",
    "thread/loaded/list": "v2/ThreadLoadedListResponse.json",
    "thread/archive": "v2/ThreadArchiveResponse.json",
    "thread/unarchive": "v2/ThreadUnarchiveResponse.json",
    "thread/unsubscribe": "v2/ThreadUnsubscribeResponse.json",
    "thread/name/set": "v2/ThreadSetNameResponse.json",
    "turn/start": "v2/TurnStartResponse.json",
    "turn/interrupt": "v2/TurnInterruptResponse.json",
    "account/read": "v2/GetAccountResponse.json",
    "config/read": "v2/ConfigReadResponse.json",
    "model/list": "v2/ModelListResponse.json",
    "modelProvider/list": "v2/ModelProviderListResponse.json",
    "experimentalFeature/list": "v2/ExperimentalFeatureListResponse.json",
    "fuzzyFileSearch": "FuzzyFileSearchResponse.json",
}


def response_schema(method: str) -> str:
    """The 0.171 schema file of `method`'s result (Codex's naming for the others)."""
    return RESPONSE_SCHEMAS.get(method) or f"v2/{wire_name(method)}Response.json"


def drop_nulls(value: Any) -> Any:
    """`value` without object members whose value is null (null = absent, §9)."""
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value


def round_trip(value: Any, cls: Any) -> Any:
    """Structure `value` into the protocol type `cls` and back; raise AssertionError if
    it does not fit or if anything is lost (a field the type does not describe)."""
    try:
        typed = converter.structure(value, cls)
    except Exception as exc:  # any structuring failure is the finding
        errors = validation_errors(exc) or [{"path": "", "message": str(exc)}]
        raise AssertionError(
            f"{getattr(cls, '__name__', cls)} does not describe {json.dumps(value)[:1500]}: "
            + "; ".join(f"{e['path']}: {e['message']}" for e in errors[:5])
        ) from None
    back = drop_nulls(converter.unstructure(typed))
    if back != drop_nulls(value):
        raise AssertionError(
            f"{cls.__name__} loses part of {json.dumps(value)[:1500]}: round trip gives "
            f"{json.dumps(back)[:1500]}"
        )
    return typed


def _variants(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """An envelope schema's `oneOf` by method, each with the envelope's definitions."""
    defs = schema.get("definitions", {})
    return {
        variant["properties"]["method"]["enum"][0]: {**variant, "definitions": defs}
        for variant in schema["oneOf"]
    }


class SchemaChecker:
    """Validates every server message against the Codex 0.171 schemas (PROTOCOL.md
    preamble) and round-trips its params or result through the protocol types (the one
    description of the wire, appserver.protocol)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._validators: dict[str, jsonschema.Draft7Validator] = {}
        self._methods: dict[str, dict[str, jsonschema.Draft7Validator]] = {}
        self.checked = 0
        # Methods seen whose shape appserver.protocol does not describe (reported at the
        # end of the session by conftest.py, not failed: the schema check still applies).
        self.undescribed: set[str] = set()

    def validator(self, rel: str) -> jsonschema.Draft7Validator:
        if rel not in self._validators:
            path = self.root / rel
            if not path.exists():
                raise AssertionError(f"no 0.171 schema {rel}")
            schema = json.loads(path.read_text())
            self._validators[rel] = jsonschema.Draft7Validator(schema)
        return self._validators[rel]

    def _variant(self, envelope: str, method: str) -> jsonschema.Draft7Validator:
        if envelope not in self._methods:
            schema = json.loads((self.root / envelope).read_text())
            self._methods[envelope] = {
                m: jsonschema.Draft7Validator(v) for m, v in _variants(schema).items()
            }
        found = self._methods[envelope].get(method)
        if found is None:
            raise AssertionError(f"{method!r} is not in the 0.171 {envelope}")
        return found

    def _report(self, what: str, validator: jsonschema.Draft7Validator, instance: Any) -> None:
        errors = sorted(validator.iter_errors(instance), key=str)
        if errors:
            raise AssertionError(
                f"{what} rejects {json.dumps(instance)[:2000]}:\n"
                + "\n".join(
                    f"- {'/'.join(map(str, e.absolute_path))}: {e.message[:300]}"
                    for e in errors[:5]
                )
            )
        self.checked += 1

    def _validate(self, rel: str, instance: Any) -> None:
        self._report(rel, self.validator(rel), instance)

    def _described(self, method: str, value: Any, cls: type | None) -> None:
        if cls is None:
            self.undescribed.add(method)
        else:
            round_trip(value, cls)

    def check(self, message: dict[str, Any], method: str | None) -> None:
        assert message.get("jsonrpc") == "2.0", f"missing jsonrpc 2.0: {message}"
        body = {k: v for k, v in message.items() if k != "jsonrpc"}
        if "error" in message:
            assert "kind" in (message["error"].get("data") or {}), f"no data.kind: {message}"
            if body.get("id") is None:
                body = {**body, "id": 0}  # id null (parse errors) is JSON-RPC's own rule
            self._validate("JSONRPCError.json", body)
        elif "method" in message and "id" in message:
            name = message["method"]
            self._report(
                f"ServerRequest.json[{name}]", self._variant("ServerRequest.json", name), body
            )
            spec = SERVER_REQUESTS.get(name)
            self._described(name, message.get("params"), spec.params if spec else None)
        elif "method" in message:
            name = message["method"]
            self._report(
                f"ServerNotification.json[{name}]",
                self._variant("ServerNotification.json", name),
                body,
            )
            note = NOTIFICATIONS.get(name)
            self._described(name, message.get("params"), note.params if note else None)
        else:
            self._validate("JSONRPCResponse.json", body)
            if method is not None:
                self._validate(response_schema(method), message["result"])
                self._described(method, message["result"], RESULTS.get(method))

    def check_answer(self, method: str, result: Any) -> None:
        """Validate a client's answer to the server request `method`."""
        spec = SERVER_REQUESTS[method]
        self._validate(f"{spec.name}Response.json", result)
        round_trip(result, spec.result)


@pytest.fixture(scope="session")
def schema_checker() -> SchemaChecker:
    if not (SCHEMA_DIR / "JSONRPCMessage.json").exists():
        pytest.skip(f"codex schemas not found at {SCHEMA_DIR}")
    return SCHEMA_CHECKER


def schemas_available() -> bool:
    return (SCHEMA_DIR / "JSONRPCMessage.json").exists()


# One checker for the session: compiled validators are reused by every test.
SCHEMA_CHECKER = SchemaChecker(SCHEMA_DIR)


@attrs.define
class ServerProcess:
    process: trio.Process
    url: str
    stderr_lines: list[str]
    _grown: trio.Event = attrs.field(factory=trio.Event, init=False)

    def _add_lines(self, lines: list[str]) -> None:
        self.stderr_lines.extend(lines)
        self._grown.set()
        self._grown = trio.Event()

    async def wait_for_stderr(self, needle: str) -> str:
        """The first stderr line containing `needle`, waiting for it to be logged (bound
        it with trio.fail_after)."""
        seen = 0
        while True:
            grown = self._grown
            for line in self.stderr_lines[seen:]:
                if needle in line:
                    return line
            seen = len(self.stderr_lines)
            await grown.wait()


def appserver_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "appserver", *args]


@asynccontextmanager
async def run_ws_server(
    *args: str,
    env: dict[str, str] | None = None,
    banner_timeout: float = 20,
    umask: int = -1,
) -> AsyncIterator[ServerProcess]:
    """Start the real CLI on ws://127.0.0.1:0 (under `umask`, default: ours) and yield it
    once its banner is printed. Leaving sends SIGTERM and waits for it to exit."""
    argv = appserver_argv("--listen", "ws://127.0.0.1:0", *args)
    async with trio.open_nursery() as nursery:
        proc: trio.Process = await nursery.start(
            _run_process, argv, {**os.environ, **(env or {})}, umask
        )
        assert proc.stderr is not None
        lines: list[str] = []
        buf = b""
        with trio.fail_after(banner_timeout):
            while True:
                chunk = await proc.stderr.receive_some(65536)
                if not chunk:
                    raise AssertionError(f"server exited before its banner: {buf.decode()}")
                buf += chunk
                *done, buf = buf.split(b"\n")
                lines.extend(d.decode() for d in done)
                banner = [ln for ln in lines if ln.startswith("appserver listening on ")]
                if banner:
                    break
        url = banner[0].removeprefix("appserver listening on ")
        server = ServerProcess(proc, url, lines)

        async def drain(rest: bytes) -> None:
            assert proc.stderr is not None
            async for chunk in proc.stderr:
                *done, rest = (rest + chunk).split(b"\n")
                server._add_lines([d.decode(errors="replace") for d in done])
            if rest:
                server._add_lines([rest.decode(errors="replace")])

        nursery.start_soon(drain, buf)
        try:
            yield server
        finally:
            if proc.returncode is None:
                proc.terminate()
            with trio.move_on_after(15):
                await proc.wait()
            if proc.returncode is None:
                proc.kill()


async def _run_process(
    argv: Sequence[str],
    env: dict[str, str],
    umask: int = -1,
    *,
    task_status: trio.TaskStatus[trio.Process] = trio.TASK_STATUS_IGNORED,
) -> None:
    await trio.run_process(
        argv,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        check=False,
        env=env,
        umask=umask,
        task_status=task_status,
    )
