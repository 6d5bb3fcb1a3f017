"""Helpers for the reliability and security suites (issue #7): real server processes, raw
websocket / stdio peers that can send anything, a trio loop in a background thread for
hypothesis, latency probes, RSS and SQLite integrity checks, and the JSON-RPC message
strategies derived from the METHODS table. Nothing here mocks the server."""

from __future__ import annotations

import json
import os
import sqlite3
import statistics
import subprocess
import threading
import types
import typing
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import attrs
import trio
import trio_websocket
from hypothesis import strategies as st

from appserver.client import Client
from appserver.protocol.converter import SNAKE_CASE_FIELDS
from appserver.protocol.methods import METHODS

from support import appserver_argv

T = TypeVar("T")
Message = dict[str, Any]

TIMEOUT = 30
DB_NAME = "appserver.sqlite3"


# --- store and process checks --------------------------------------------------------------


def integrity_check(data_dir: Path) -> str:
    """`PRAGMA integrity_check` through a separate, read-only SQLite connection."""
    db = data_dir / DB_NAME
    assert db.exists(), f"no store at {db}"
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        rows = conn.execute("PRAGMA integrity_check").fetchall()
    finally:
        conn.close()
    return "\n".join(str(r[0]) for r in rows)


def rss_bytes(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def p50(samples: Sequence[float]) -> float:
    return statistics.median(samples)


def text_input(text: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": text}]


# --- a real CLI server process ----------------------------------------------------------------


@attrs.define(eq=False)
class CliProcess:
    process: trio.Process
    url: str = ""
    lines: list[str] = attrs.Factory(list)
    _changed: trio.Event = attrs.Factory(trio.Event)
    eof: bool = False

    def _add(self, chunk: list[str]) -> None:
        self.lines.extend(chunk)
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for_line(self, predicate: Callable[[str], bool]) -> str:
        while True:
            for line in self.lines:
                if predicate(line):
                    return line
            if self.eof:
                raise AssertionError(f"stderr ended without the expected line: {self.lines}")
            await self._changed.wait()

    async def wait_eof(self) -> None:
        while not self.eof:
            await self._changed.wait()

    @property
    def stderr_text(self) -> str:
        return "\n".join(self.lines)


@asynccontextmanager
async def cli_server(
    *args: str, cwd: Path | None = None, listen: str = "ws://127.0.0.1:0"
) -> AsyncIterator[CliProcess]:
    """The real `appserver` CLI listening on a websocket, stderr collected. Leaving kills
    a process that is still running (tests that want a graceful stop signal it first)."""
    argv = appserver_argv("--listen", listen, *args)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    async with trio.open_nursery() as nursery:
        process: trio.Process = await nursery.start(
            _run_process, argv, env, str(cwd) if cwd else None
        )
        server = CliProcess(process)
        nursery.start_soon(_drain, server)
        try:
            with trio.fail_after(TIMEOUT):
                banner = await server.wait_for_line(
                    lambda ln: ln.startswith("appserver listening on ")
                )
            server.url = banner.removeprefix("appserver listening on ")
            yield server
        finally:
            if process.returncode is None:
                process.kill()
            with trio.CancelScope(shield=True):
                await process.wait()


async def stop_gracefully(server: CliProcess) -> int:
    server.process.terminate()
    with trio.fail_after(TIMEOUT):
        return await server.process.wait()


async def _drain(server: CliProcess) -> None:
    stderr = server.process.stderr
    assert stderr is not None
    buf = b""
    async for chunk in stderr:
        buf += chunk
        *done, buf = buf.split(b"\n")
        if done:
            server._add([d.decode(errors="replace") for d in done])
    if buf:
        server._add([buf.decode(errors="replace")])
    server.eof = True
    server._changed.set()


async def _run_process(
    argv: Sequence[str],
    env: dict[str, str],
    cwd: str | None,
    *,
    task_status: trio.TaskStatus[trio.Process] = trio.TASK_STATUS_IGNORED,
) -> None:
    await trio.run_process(
        argv,
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
        env=env,
        cwd=cwd,
        task_status=task_status,
    )


# --- raw peers: send any bytes, read every message ------------------------------------------


def check_server_message(message: Any, *, tolerate_internal: bool = False) -> None:
    """What every server message must be, whatever the client sent (§1, §1.1).
    `tolerate_internal` exists only for the known bug pinned by the xfail tests of
    test_fuzz.py (lone surrogates reaching the SQLite store); the fuzz tests count such
    answers and match them against the server log's signature of that bug."""
    assert isinstance(message, dict), message
    assert message.get("jsonrpc") == "2.0", message
    if "error" in message:
        err = message["error"]
        assert isinstance(err.get("code"), int), message
        assert "kind" in (err.get("data") or {}), message
        if not tolerate_internal:
            assert err["code"] != -32603, f"internal error (a server bug, §1.1): {message}"


class RawPeer:
    """A JSON-RPC peer over a raw transport; subclasses move frames."""

    def __init__(self) -> None:
        self.received: list[Message] = []
        self.tolerate_internal = False
        self.internal_errors = 0

    async def send_frame(self, frame: bytes | str) -> None:
        raise NotImplementedError

    async def receive(self) -> Message:
        raise NotImplementedError

    async def send(self, message: Message) -> None:
        await self.send_frame(json.dumps(message))

    async def call(self, request_id: int | str, method: str, params: Any = None) -> Message:
        """Send a request and read until its answer; every message read is checked and
        kept in `received`."""
        message: Message = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        await self.send(message)
        return await self.answer_to(request_id)

    async def answer_to(self, request_id: int | str) -> Message:
        while True:
            msg = await self.receive()
            if "method" not in msg and msg.get("id") == request_id:
                return msg

    async def result(self, request_id: int | str, method: str, params: Any = None) -> Any:
        answer = await self.call(request_id, method, params)
        assert "result" in answer, answer
        return answer["result"]


class RawWebSocket(RawPeer):
    def __init__(self, ws: trio_websocket.WebSocketConnection) -> None:
        super().__init__()
        self.ws = ws

    async def send_frame(self, frame: bytes | str) -> None:
        await self.ws.send_message(frame)

    async def receive(self) -> Message:
        text = await self.ws.get_message()
        msg = json.loads(text)
        check_server_message(msg, tolerate_internal=self.tolerate_internal)
        if "error" in msg and msg["error"]["code"] == -32603:
            self.internal_errors += 1
        self.received.append(msg)
        result: Message = msg
        return result


@asynccontextmanager
async def raw_websocket(
    url: str,
    *,
    token: str | None = None,
    max_message: int = 256 * 1024 * 1024,
    queue: int = 1,
) -> AsyncIterator[RawWebSocket]:
    headers: list[tuple[bytes, bytes]] = []
    if token is not None:
        headers.append((b"Authorization", f"Bearer {token}".encode()))
    stream: Any = None
    try:
        async with trio_websocket.open_websocket_url(
            url, extra_headers=headers, max_message_size=max_message, message_queue_size=queue
        ) as ws:
            stream = ws._stream
            yield RawWebSocket(ws)
    finally:
        # trio-websocket leaves the TCP stream open after an abnormal close by the peer
        # (ResourceWarning); once it is done with it, close it ourselves.
        if stream is not None:
            with trio.CancelScope(shield=True):
                await stream.aclose()


class RawStdio(RawPeer):
    """A real `appserver` stdio process; frames are written as raw lines."""

    def __init__(self, process: trio.Process) -> None:
        super().__init__()
        self.process = process
        self._buf = b""

    async def send_frame(self, frame: bytes | str) -> None:
        data = frame.encode("utf-8", "surrogatepass") if isinstance(frame, str) else frame
        await self.send_bytes(data + b"\n")

    async def send_bytes(self, data: bytes) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send_all(data)

    async def receive(self) -> Message:
        assert self.process.stdout is not None
        while b"\n" not in self._buf:
            chunk = await self.process.stdout.receive_some(1 << 20)
            if not chunk:
                raise EOFError("stdio server closed its stdout")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        msg = json.loads(line.decode("utf-8"))  # strict: the server writes valid UTF-8
        check_server_message(msg, tolerate_internal=self.tolerate_internal)
        if "error" in msg and msg["error"]["code"] == -32603:
            self.internal_errors += 1
        self.received.append(msg)
        result: Message = msg
        return result


@asynccontextmanager
async def raw_stdio(
    *args: str, cwd: Path | None = None, stderr_path: Path | None = None
) -> AsyncIterator[RawStdio]:
    """`stderr_path`: where the server's log goes (else discarded)."""
    argv = appserver_argv(*args)
    async with trio.open_nursery() as nursery:
        process: trio.Process = await nursery.start(
            _run_stdio, argv, str(cwd) if cwd else None, stderr_path
        )
        try:
            yield RawStdio(process)
        finally:
            if process.returncode is None:
                process.kill()
            with trio.CancelScope(shield=True):
                await process.wait()


async def _run_stdio(
    argv: Sequence[str],
    cwd: str | None,
    stderr_path: Path | None,
    *,
    task_status: trio.TaskStatus[trio.Process] = trio.TASK_STATUS_IGNORED,
) -> None:
    with open(stderr_path or os.devnull, "wb") as stderr:  # noqa: ASYNC230
        await trio.run_process(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            check=False,
            cwd=cwd,
            task_status=task_status,
        )


INIT_PARAMS = {"clientInfo": {"name": "raw", "version": "0"}}


# --- a trio loop in a thread, so sync hypothesis tests can reuse long-lived servers ---------


class TrioPortal:
    """One trio run in a background thread. `run` calls an async function in it;
    `enter` keeps an async context manager open in it until `close`."""

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._token: trio.lowlevel.TrioToken | None = None
        self._nursery: trio.Nursery | None = None
        self._exits: list[tuple[trio.Event, trio.Event]] = []
        self._stop: trio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="trio-portal", daemon=True)
        self._thread.start()
        self._ready.wait()

    def _main(self) -> None:
        try:
            trio.run(self._amain)
        except BaseException as exc:  # reported by close()
            self._error = exc
            self._ready.set()

    async def _amain(self) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self._token = trio.lowlevel.current_trio_token()
            self._stop = trio.Event()
            self._ready.set()
            await self._stop.wait()
            for leave, left in reversed(self._exits):
                leave.set()
                await left.wait()
            nursery.cancel_scope.cancel()

    def run(self, afn: Callable[..., Awaitable[T]], *args: Any) -> T:
        assert self._token is not None, self._error
        return trio.from_thread.run(afn, *args, trio_token=self._token)

    def enter(self, cm: AbstractAsyncContextManager[T]) -> T:
        async def hold(*, task_status: trio.TaskStatus[T] = trio.TASK_STATUS_IGNORED) -> None:
            leave, left = trio.Event(), trio.Event()
            self._exits.append((leave, left))
            try:
                async with cm as value:
                    task_status.started(value)
                    await leave.wait()
            finally:
                left.set()

        async def start() -> T:
            assert self._nursery is not None
            value: T = await self._nursery.start(hold)
            return value

        return self.run(start)

    def close(self) -> None:
        if self._token is not None and self._stop is not None:
            trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
        self._thread.join(60)
        if self._error is not None:
            raise self._error


# --- latency of a well-behaved client ----------------------------------------------------------


async def round_trip(client: Client, thread_id: str) -> float:
    start = trio.current_time()
    result = await client.request("thread/read", {"threadId": thread_id})
    assert result["thread"]["id"] == thread_id
    return trio.current_time() - start


async def quiet_latency(client: Client, thread_id: str, samples: int = 40) -> float:
    for _ in range(5):
        await round_trip(client, thread_id)  # warm-up
    return p50([await round_trip(client, thread_id) for _ in range(samples)])


@attrs.define
class LatencyUnderLoad:
    """Measures round trips while `until` is not set; `p50` of the samples."""

    samples: list[float] = attrs.Factory(list)

    async def sample_until(self, client: Client, thread_id: str, done: trio.Event) -> None:
        while not done.is_set():
            self.samples.append(await round_trip(client, thread_id))
            # Pace the probe (load shaping, not synchronisation): a sample every 10 ms.
            with trio.move_on_after(0.01):
                await done.wait()

    @property
    def p50(self) -> float:
        assert self.samples, "no latency sample was taken under load"
        return p50(self.samples)


def latency_bound(quiet: float) -> float:
    return max(5 * quiet, 0.05)


# --- hypothesis strategies from the METHODS table ---------------------------------------------

SCRIPTS = [
    "hello",
    "/say hi there fuzz",
    "/think pondering",
    "/stream 20 4",
    "/sleep 0.01",
    "/fail on purpose",
    "/write fuzz-out.txt fuzz data",
    "/run echo fuzz",
    "/nonsense directive",
    "",
]

json_scalars: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=10),
)
# Nested JSON without st.recursive (whose leaf budget is shared state across draws).
_json_shallow: st.SearchStrategy[Any] = json_scalars | st.lists(json_scalars, max_size=3)
json_values: st.SearchStrategy[Any] = st.one_of(
    json_scalars,
    st.lists(_json_shallow, max_size=3),
    st.dictionaries(st.text(max_size=5), _json_shallow, max_size=3),
)

wild_text: st.SearchStrategy[str] = st.one_of(
    st.text(max_size=30),
    st.text(st.characters(codec=None, categories=None), max_size=12),  # incl. surrogates
    st.sampled_from(["\ud800", "a\udfffb", "\x00", "nul\x00byte", "\u2028\u2029", "\ufeff", ""]),
)


def camel(name: str) -> str:
    if name in SNAKE_CASE_FIELDS:
        return name
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


FS_PATH_FIELDS = frozenset({"path", "source_path", "destination_path"})


@attrs.frozen
class FuzzContext:
    thread_ids: tuple[str, ...]
    cwd: str


def _field_strategy(name: str, tp: Any, ctx: FuzzContext) -> st.SearchStrategy[Any]:
    if name == "thread_id":
        return st.one_of(
            st.sampled_from(ctx.thread_ids),
            st.sampled_from(["0199a6a4-0000-7000-8000-000000000000", "not-a-uuid", ""]),
            wild_text,
        )
    if name == "turn_id":
        return st.one_of(st.uuids().map(str), wild_text)
    if name == "cwd":
        return st.sampled_from([ctx.cwd, "relative/dir", "/nonexistent/appserver-fuzz", ""])
    if name == "text":
        return st.one_of(st.sampled_from(SCRIPTS), wild_text)
    if name in FS_PATH_FIELDS:
        # fs/* act with the server's rights (as root in CI): only paths inside the fuzz
        # sandbox, or ones that are refused before any file is touched.
        inside = st.text(st.sampled_from("abc.-_/"), max_size=12).map(
            lambda tail: f"{ctx.cwd}/fuzz-fs/{tail}"
        )
        return st.one_of(inside, st.sampled_from(["relative/path", "", "nul\x00/x"]))
    if name == "command" and tp is str:
        # thread/shellCommand runs its shell command unsandboxed: only harmless ones.
        return st.sampled_from(["echo fuzz", "true", "", "exit 3", "/nonexistent-appserver-fuzz"])
    if name == "command":
        # command/exec runs what it is given: only harmless programs, or none.
        return st.sampled_from([["echo", "fuzz"], ["true"], [], ["/nonexistent-appserver-fuzz"]])
    if name == "roots":
        # fuzzyFileSearch walks what it is given: the fuzz sandbox, or roots that give nothing.
        return st.lists(st.sampled_from([ctx.cwd, "relative/dir", "", "nul\x00"]), max_size=2)
    return _type_strategy(tp, ctx)


def _type_strategy(tp: Any, ctx: FuzzContext) -> st.SearchStrategy[Any]:
    origin = get_origin(tp)
    if tp is Any:
        return json_values
    if tp is str:
        return wild_text
    if tp is bool:
        return st.booleans()
    if tp is int:
        return st.one_of(st.integers(-5, 200), st.integers(min_value=2**31, max_value=2**80))
    if origin is Literal:
        return st.sampled_from(get_args(tp))
    if origin in (Union, types.UnionType):
        return st.one_of(*(_type_strategy(a, ctx) for a in get_args(tp)))
    if origin is list:
        (arg,) = get_args(tp)
        return st.lists(_type_strategy(arg, ctx), min_size=0, max_size=3)
    if origin is dict:
        return st.dictionaries(st.text(max_size=6), json_values, max_size=3)
    if tp is type(None):
        return st.none()
    if attrs.has(tp):
        return params_strategy(tp, ctx)
    raise AssertionError(f"no strategy for {tp!r}")


def params_strategy(cls: type, ctx: FuzzContext) -> st.SearchStrategy[dict[str, Any]]:
    hints = typing.get_type_hints(cls)
    required: dict[str, st.SearchStrategy[Any]] = {}
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for field in attrs.fields(cls):
        strategy = _field_strategy(field.name, hints[field.name], ctx)
        if field.default is attrs.NOTHING:
            required[camel(field.name)] = strategy
        else:
            optional[camel(field.name)] = st.one_of(st.none(), strategy)
    return st.fixed_dictionaries(required, optional=optional)


def valid_request(ctx: FuzzContext) -> st.SearchStrategy[Message]:
    """A request built from METHODS (well-shaped, though its values may be refused)."""
    methods = sorted(m for m in METHODS if m != "initialize")

    @st.composite
    def build(draw: st.DrawFn) -> Message:
        method = draw(st.sampled_from(methods))
        params = draw(params_strategy(METHODS[method].params, ctx))
        msg: Message = {"id": draw(st.integers(0, 2**40) | st.text(max_size=8)), "method": method}
        if draw(st.booleans()):
            msg["jsonrpc"] = "2.0"
        keep_empty: bool = draw(st.booleans())
        if params or keep_empty:
            msg["params"] = params
        if method == "thread/start":
            params.setdefault("cwd", ctx.cwd)  # never default to the server's own cwd
        if method == "thread/delete" and params.get("threadId") == ctx.thread_ids[0]:
            params["threadId"] = ctx.thread_ids[-1]  # the probes read thread_ids[0]
        return msg

    return build()


def _wrong_types(msg: Message) -> st.SearchStrategy[Message]:
    @st.composite
    def build(draw: st.DrawFn) -> Message:
        out = dict(msg)
        target = draw(st.sampled_from(["params", "field", "id", "method", "jsonrpc", "extra"]))
        params = out.get("params")
        if target == "field" and isinstance(params, dict) and params:
            params = dict(params)
            key = draw(st.sampled_from(sorted(params)))
            params[key] = draw(json_values)
            out["params"] = params
        elif target == "extra":
            out[draw(st.text(max_size=6))] = draw(json_values)
        else:
            key = "params" if target == "field" else target
            out[key] = draw(json_values)
        return out

    return build()


def _encode(msg: Any, ascii_only: bool) -> bytes:
    return json.dumps(msg, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def deep_nesting(depth: int, kind: str) -> bytes:
    inner = "[" * depth + "]" * depth if kind == "list" else '{"a":' * depth + "1" + "}" * depth
    return (
        b'{"jsonrpc":"2.0","id":"deep","method":"thread/start","params":{"config":'
        + inner.encode()
        + b"}}"
    )


HUGE_NUMBERS = [
    b"1" + b"0" * 400,
    b"-" + b"9" * 5000,
    b"1e400",
    b"-1e400",
    b"1.7976931348623157e309",
    b"-0.0",
    b"18446744073709551616",
]


def _huge_number_frame(msg: Message) -> st.SearchStrategy[bytes]:
    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        number = draw(st.sampled_from(HUGE_NUMBERS))
        slot = draw(st.sampled_from(["id", "limit", "config", "text"]))
        text = _encode({**msg, "id": "__N__"} if slot == "id" else msg, True)
        if slot == "id":
            return text.replace(b'"__N__"', number)
        params = msg.get("params")
        base = dict(params) if isinstance(params, dict) else {}
        placeholder = {"limit": "limit", "config": "config", "text": "name"}[slot]
        base[placeholder] = "__N__"
        return _encode({**msg, "params": base}, True).replace(b'"__N__"', number)

    return build()


def _byte_mutation(data: bytes) -> st.SearchStrategy[bytes]:
    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        out = bytearray(data)
        for _ in range(draw(st.integers(1, 4))):
            op = draw(st.sampled_from(["flip", "insert", "delete", "bad-utf8", "nul"]))
            pos = draw(st.integers(0, len(out)))
            if op == "flip" and out:
                pos = min(pos, len(out) - 1)
                out[pos] = draw(st.integers(0, 255))
            elif op == "insert":
                out[pos:pos] = draw(st.binary(min_size=1, max_size=4))
            elif op == "delete" and out:
                del out[pos : pos + draw(st.integers(1, 4))]
            elif op == "bad-utf8":
                bad = [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf0\x28\x8c\x28", b"\xc0\xaf"]
                out[pos:pos] = draw(st.sampled_from(bad))
            else:
                out[pos:pos] = b"\x00"
        return bytes(out).replace(b"\n", b" ")

    return build()


def fuzz_frame(ctx: FuzzContext) -> st.SearchStrategy[bytes]:
    """One frame (no newline inside) of any of the kinds issue #7 lists."""

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        msg = draw(valid_request(ctx))
        kind = draw(
            st.sampled_from(
                [
                    "valid",
                    "notification",
                    "wrong-types",
                    "mutated",
                    "truncated",
                    "huge-number",
                    "deep",
                    "surrogate-raw",
                    "nul",
                    "not-an-object",
                    "batch",
                    "response",
                    "unknown-method",
                ]
            )
        )
        ascii_only = draw(st.booleans())
        if kind == "valid":
            return _encode(msg, ascii_only)
        if kind == "notification":
            return _encode({k: v for k, v in msg.items() if k != "id"}, ascii_only)
        if kind == "wrong-types":
            return _encode(draw(_wrong_types(msg)), ascii_only)
        if kind == "mutated":
            return draw(_byte_mutation(_encode(msg, ascii_only)))
        if kind == "truncated":
            data = _encode(msg, ascii_only)
            return data[: draw(st.integers(0, max(0, len(data) - 1)))]
        if kind == "huge-number":
            return draw(_huge_number_frame(msg))
        if kind == "deep":
            depth = draw(st.sampled_from([10, 500, 990, 1000, 5000, 100_000]))
            return deep_nesting(depth, draw(st.sampled_from(["list", "dict"])))
        if kind == "surrogate-raw":
            # Lone surrogates written raw (CESU bytes: invalid UTF-8) or escaped.
            return _encode(
                {
                    "jsonrpc": "2.0",
                    "id": 7,
                    "method": "thread/list",
                    "params": {"searchTerm": "\ud83d"},
                },
                ascii_only,
            )
        if kind == "nul":
            data = _encode(msg, ascii_only)
            pos = draw(st.integers(0, len(data)))
            return data[:pos] + draw(st.sampled_from([b"\x00", b"\\u0000"])) + data[pos:]
        if kind == "not-an-object":
            return _encode(draw(json_scalars | st.lists(json_scalars, max_size=2)), True)
        if kind == "batch":
            return _encode([msg, msg], ascii_only)
        if kind == "response":
            return _encode(
                {
                    "jsonrpc": "2.0",
                    "id": draw(st.integers(-5, 2**40) | st.text(max_size=5)),
                    **draw(
                        st.sampled_from(
                            [
                                {"result": {"decision": "accept"}},
                                {"error": {"code": -1, "message": "x"}},
                                {"result": None},
                            ]
                        )
                    ),
                },
                ascii_only,
            )
        return _encode({**msg, "method": draw(wild_text)}, ascii_only)

    return build()


def fuzz_batch(ctx: FuzzContext) -> st.SearchStrategy[list[bytes]]:
    return st.lists(fuzz_frame(ctx), min_size=1, max_size=4)


async def read_until(peer: RawPeer, predicate: Callable[[Message], bool]) -> Message:
    while True:
        msg = await peer.receive()
        if predicate(msg):
            return msg
