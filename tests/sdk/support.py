"""The official Codex Python SDK (`openai-codex`) driving a real appserver subprocess.

The SDK spawns `<codex_bin> [--config K=V]... app-server --listen stdio://` itself; `codex_bin`
is appserver's own `appserver-codex` entry point (no shim written by the tests) and the data
dir is chosen with `APPSERVER_HOME`, so every test uses a real SQLite store of its own.

The SDK is blocking and has no timeouts of its own, so every test runs under a `Watchdog`:
after `TIMEOUT_S` it kills the server processes this test started (every `CodexClient.start`
is recorded, for `Codex`, `AsyncCodex` and `CodexClient` alike), which makes every blocked
SDK call raise `TransportClosedError` at once; the test then fails with the reason instead of
hanging.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
from openai_codex import AsyncCodex, Codex, CodexConfig
from openai_codex.client import ApprovalHandler, CodexClient
from openai_codex.generated.notification_registry import NOTIFICATION_MODELS
from openai_codex.models import JsonObject, JsonValue, Notification, UnknownNotification

from support import SCHEMA_CHECKER

CODEX_BIN = Path(sys.executable).parent / "appserver-codex"
TIMEOUT_S = 25.0
WIRE_TAIL = 60


class Watchdog:
    """Kills this test's server processes after `timeout` seconds (see the module doc)."""

    def __init__(self, procs: list[subprocess.Popen[str]], timeout: float = TIMEOUT_S) -> None:
        self.timeout = timeout
        self.fired = False
        self._procs = procs
        self._timer = threading.Timer(timeout, self._fire)
        self._timer.daemon = True

    def start(self) -> None:
        self._timer.start()

    def cancel(self) -> None:
        self._timer.cancel()

    def _fire(self) -> None:
        self.fired = True
        for proc in list(self._procs):
            with suppress(OSError):
                proc.kill()


class WireLog:
    """Records every JSON-RPC message the SDK writes and reads (for failure reports and for
    the assertions on what the SDK sends). It only observes: the SDK's methods still run."""

    def __init__(self) -> None:
        self.messages: deque[tuple[str, JsonObject]] = deque(maxlen=2000)
        self.procs: list[subprocess.Popen[str]] = []
        self.clients: list[CodexClient] = []
        self._lock = threading.Lock()

    def add(self, direction: str, message: JsonObject) -> None:
        with self._lock:
            self.messages.append((direction, message))

    def sent(self, method: str) -> list[JsonObject]:
        """Params of every request/notification the SDK sent with this method."""
        with self._lock:
            return [
                _as_object(m.get("params"))
                for d, m in self.messages
                if d == ">>" and m.get("method") == method
            ]

    def error_responses(self) -> list[JsonObject]:
        """Every JSON-RPC error the server answered, with the request's method."""
        with self._lock:
            methods = {
                m["id"]: m.get("method") for d, m in self.messages if d == ">>" and "id" in m
            }
            return [
                {"method": methods.get(m.get("id")), "error": m["error"]}
                for d, m in self.messages
                if d == "<<" and "error" in m and "method" not in m
            ]

    def schema_problems(self) -> list[str]:
        """Every message the server sent (and every answer the SDK gave to a server request)
        checked against the Codex 0.171 schemas by the suite's shared checker
        (tests/support.py), as the issue asks of every message the whole suite receives."""
        with self._lock:
            items = list(self.messages)
        sent_methods = {m["id"]: m.get("method") for d, m in items if d == ">>" and "id" in m}
        server_requests = {
            m["id"]: m.get("method") for d, m in items if d == "<<" and "method" in m and "id" in m
        }
        problems = []
        for direction, message in items:
            try:
                if direction == "<<":
                    method = None if "method" in message else sent_methods.get(message.get("id"))
                    SCHEMA_CHECKER.check(message, method if isinstance(method, str) else None)
                elif "method" not in message and message.get("id") in server_requests:
                    request_method = server_requests[message.get("id")]
                    if isinstance(request_method, str) and "result" in message:
                        SCHEMA_CHECKER.check_answer(request_method, message["result"])
            except AssertionError as exc:
                problems.append(f"{direction} {str(exc)[:1500]}")
        return problems

    def stderr_tails(self, n: int = 40) -> str:
        """The last stderr lines of every server process (the SDK keeps them)."""
        return "\n\n".join(
            f"[server {i}]\n{client._stderr_tail(n)}" for i, client in enumerate(self.clients)
        )

    def tail(self, n: int = WIRE_TAIL) -> str:
        with self._lock:
            items = list(self.messages)[-n:]
        return "\n".join(f"{d} {json.dumps(m)[:400]}" for d, m in items)


def _as_object(value: JsonValue | None) -> JsonObject:
    return value if isinstance(value, dict) else {}


def install_wire_log(monkeypatch: pytest.MonkeyPatch, log: WireLog) -> None:
    """Wrap `CodexClient._write_message` / `_read_message` so `log` sees every message, and
    `CodexClient.start` so it knows every server process (sync and async clients alike)."""
    original_start = CodexClient.start
    original_write = CodexClient._write_message
    original_read = CodexClient._read_message

    def start(self: CodexClient) -> None:
        original_start(self)
        if self._proc is not None and self._proc not in log.procs:
            log.procs.append(self._proc)
            log.clients.append(self)

    def write(self: CodexClient, payload: JsonObject) -> None:
        log.add(">>", payload)
        original_write(self, payload)

    def read(self: CodexClient) -> dict[str, JsonValue]:
        message = original_read(self)
        log.add("<<", message)
        return message

    monkeypatch.setattr(CodexClient, "start", start)
    monkeypatch.setattr(CodexClient, "_write_message", write)
    monkeypatch.setattr(CodexClient, "_read_message", read)


class SdkEnv:
    """Per-test factory: SDK configs, clients and the directories they use."""

    def __init__(self, tmp_path: Path, wire: WireLog, watchdog: Watchdog) -> None:
        self.tmp_path = tmp_path
        self.wire = wire
        self.watchdog = watchdog
        self.workdir = tmp_path / "work"
        self.workdir.mkdir()
        self.data_dir = tmp_path / "data"
        self._closers: list[Callable[[], None]] = []

    def config(
        self,
        *,
        data_dir: Path | None = None,
        cwd: Path | None = None,
        config_overrides: tuple[str, ...] = (),
    ) -> CodexConfig:
        return CodexConfig(
            codex_bin=str(CODEX_BIN),
            config_overrides=config_overrides,
            cwd=str(cwd or self.workdir),
            env={"APPSERVER_HOME": str(data_dir or self.data_dir)},
        )

    def codex(self, config: CodexConfig | None = None) -> Codex:
        """A started and initialized `Codex`, closed at teardown if the test does not."""
        codex = Codex(config or self.config())
        self._closers.append(codex.close)
        return codex

    def async_codex(self, config: CodexConfig | None = None) -> AsyncCodex:
        """An `AsyncCodex` (initialized lazily by the SDK, on `async with` or first use).
        The test must close it in its own event loop (`async with`)."""
        return AsyncCodex(config or self.config())

    def client(
        self,
        approval_handler: ApprovalHandler | None = None,
        config: CodexConfig | None = None,
    ) -> CodexClient:
        """A started and initialized low-level `CodexClient`."""
        client = CodexClient(config or self.config(), approval_handler=approval_handler)
        self._closers.append(client.close)
        client.start()
        client.initialize()
        return client

    def close(self) -> None:
        for closer in reversed(self._closers):
            with suppress(Exception):
                closer()
        # The SDK's close() leaves the pipes of its process open; close them so no
        # ResourceWarning fires later in an unrelated test.
        for proc in self.wire.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=5)
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    with suppress(Exception):
                        stream.close()


@contextmanager
def sdk_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, timeout: float = TIMEOUT_S
) -> Iterator[SdkEnv]:
    wire = WireLog()
    install_wire_log(monkeypatch, wire)
    watchdog = Watchdog(wire.procs, timeout)
    env = SdkEnv(tmp_path, wire, watchdog)
    watchdog.start()
    try:
        yield env
    finally:
        watchdog.cancel()
        env.close()


def untyped(notifications: list[Notification]) -> list[str]:
    """Notifications the SDK knows but could not validate (it then silently hands out an
    `UnknownNotification`): each with the pydantic error, so a failure names the field."""
    problems = []
    for n in notifications:
        model = NOTIFICATION_MODELS.get(n.method)
        if model is None or not isinstance(n.payload, UnknownNotification):
            continue
        try:
            model.model_validate(n.payload.params)
        except Exception as exc:
            problems.append(f"{n.method}: {exc}")
        else:  # pragma: no cover - the SDK would have typed it
            problems.append(f"{n.method}: untyped although it validates")
    return problems


def root(model: Any) -> Any:
    """The variant inside a pydantic RootModel union (ThreadItem, ThreadStatus, ...)."""
    return getattr(model, "root", model)
