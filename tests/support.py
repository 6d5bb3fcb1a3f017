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

REPO = Path(__file__).resolve().parents[1]
SCHEMA_DIR = Path(os.environ.get("APPSERVER_CODEX_SCHEMA", REPO.parent / "shared" / "codex-schema"))

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
}


class SchemaChecker:
    """Validates server messages against ../shared/codex-schema (PROTOCOL.md preamble)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._validators: dict[str, jsonschema.Draft7Validator] = {}
        self.checked = 0

    def validator(self, rel: str) -> jsonschema.Draft7Validator:
        if rel not in self._validators:
            schema = json.loads((self.root / rel).read_text())
            self._validators[rel] = jsonschema.Draft7Validator(schema)
        return self._validators[rel]

    def _validate(self, rel: str, instance: Any) -> None:
        errors = sorted(self.validator(rel).iter_errors(instance), key=str)
        if errors:
            raise AssertionError(
                f"{rel} rejects {json.dumps(instance)[:2000]}:\n"
                + "\n".join(
                    f"- {'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:5]
                )
            )
        self.checked += 1

    def check(self, message: dict[str, Any], method: str | None) -> None:
        assert message.get("jsonrpc") == "2.0", f"missing jsonrpc 2.0: {message}"
        if "error" in message:
            assert "kind" in (message["error"].get("data") or {}), f"no data.kind: {message}"
            body = {k: v for k, v in message.items() if k != "jsonrpc"}
            if body.get("id") is None:
                body = {**body, "id": 0}  # id null (parse errors) is JSON-RPC's own rule
            self._validate("JSONRPCError.json", body)
        elif "method" in message and "id" in message:
            self._validate(
                "ServerRequest.json", {k: v for k, v in message.items() if k != "jsonrpc"}
            )
        elif "method" in message:
            self._validate(
                "ServerNotification.json", {k: v for k, v in message.items() if k != "jsonrpc"}
            )
        elif method in RESPONSE_SCHEMAS:
            self._validate(RESPONSE_SCHEMAS[method], message["result"])


@pytest.fixture(scope="session")
def schema_checker() -> SchemaChecker:
    if not (SCHEMA_DIR / "JSONRPCMessage.json").exists():
        pytest.skip(f"codex schemas not found at {SCHEMA_DIR}")
    return SchemaChecker(SCHEMA_DIR)


@attrs.define
class ServerProcess:
    process: trio.Process
    url: str
    stderr_lines: list[str]


def appserver_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "appserver", *args]


@asynccontextmanager
async def run_ws_server(
    *args: str, env: dict[str, str] | None = None, banner_timeout: float = 20
) -> AsyncIterator[ServerProcess]:
    """Start the real CLI on ws://127.0.0.1:0 and yield it once its banner is printed.
    Leaving sends SIGTERM and waits for it to exit."""
    argv = appserver_argv("--listen", "ws://127.0.0.1:0", *args)
    async with trio.open_nursery() as nursery:
        proc: trio.Process = await nursery.start(_run_process, argv, {**os.environ, **(env or {})})
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

        async def drain() -> None:
            assert proc.stderr is not None
            async for chunk in proc.stderr:
                lines.extend(chunk.decode(errors="replace").splitlines())

        nursery.start_soon(drain)
        try:
            yield ServerProcess(proc, url, lines)
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
    *,
    task_status: trio.TaskStatus[trio.Process] = trio.TASK_STATUS_IGNORED,
) -> None:
    await trio.run_process(
        argv,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        check=False,
        env=env,
        task_status=task_status,
    )
