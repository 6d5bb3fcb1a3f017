"""Shared helpers of the benchmark suite: server processes, raw websocket JSON-RPC, stats.

Every benchmark script is the *client* process; the servers it measures (appserver and
the bare baselines in `baseline_servers.py`) run as separate processes started here.
Clients speak raw trio-websocket so the client-side cost is identical for every server.
Results are printed as lines `BENCH {json}` that `run.py` collects into its table.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import re
import shlex
import signal
import statistics
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import trio
import trio_websocket

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
_LISTENING = re.compile(r"listening on (ws://\S+)")

# Ample room for thread/resume snapshots of big threads and for 200 idle peers.
MAX_MESSAGE = 64 * 1024 * 1024


class ServerProcess:
    """One server subprocess; `url` once it printed `... listening on ws://HOST:PORT`."""

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None) -> None:
        self.name = name
        self.argv = list(argv)
        self.url = ""
        self._ready = threading.Event()
        self._tail: list[str] = []
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=env,
        )
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        if not self._ready.wait(60) or not self.url:
            self.stop()
            raise RuntimeError(f"{name} did not start: {''.join(self._tail[-20:])}")

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:  # drain for the whole life: a full pipe would block
            self._tail = [*self._tail[-50:], line]
            if not self.url and (match := _LISTENING.search(line)):
                self.url = match.group(1)
                self._ready.set()
        self._ready.set()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            # SIGINT: appserver shuts down cleanly (§8.8) and a profiler in front of it
            # (BENCH_SERVER_PREFIX) writes its output.
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def appserver_argv(*extra: str) -> list[str]:
    """`python -m appserver`, optionally under a profiler: BENCH_SERVER_PREFIX is a shell
    word list put in front (e.g. `py-spy record -f raw -o out.txt --`)."""
    prefix = shlex.split(os.environ.get("BENCH_SERVER_PREFIX", ""))
    base = [sys.executable, "-m", "appserver", "--listen", "ws://127.0.0.1:0"]
    return [*prefix, *base, "--log-level", "warning", *extra]


def baseline_argv(kind: str, mode: str) -> list[str]:
    return [sys.executable, str(HERE / "baseline_servers.py"), "--kind", kind, "--mode", mode]


@contextlib.contextmanager
def running(name: str, argv: Sequence[str]) -> Iterator[ServerProcess]:
    server = ServerProcess(name, argv)
    try:
        yield server
    finally:
        server.stop()


# --- raw JSON-RPC over trio-websocket ----------------------------------------------------


async def connect(nursery: trio.Nursery, url: str) -> trio_websocket.WebSocketConnection:
    return await trio_websocket.connect_websocket_url(
        nursery, url, message_queue_size=1, max_message_size=MAX_MESSAGE
    )


def request_text(request_id: int, method: str, params: Any = None) -> str:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        msg["params"] = params
    return json.dumps(msg, separators=(",", ":"))


def is_response(text: str, request_id: int) -> bool:
    """Cheap check without parsing: appserver writes `{"jsonrpc":"2.0","id":N,...`; Codex
    writes `{"id":N,"result":...}` and `{"error":{...},"id":N}`."""
    return f'"id":{request_id},' in text[:48] or text.endswith(f'"id":{request_id}}}')


class Rpc:
    """Sequential requests on one raw websocket; notifications read meanwhile are dropped."""

    def __init__(self, ws: trio_websocket.WebSocketConnection) -> None:
        self.ws = ws
        self.next_id = 1

    async def call_raw(self, method: str, params: Any = None) -> str:
        request_id = self.next_id
        self.next_id += 1
        await self.ws.send_message(request_text(request_id, method, params))
        while True:
            text = await self.ws.get_message()
            if is_response(text, request_id):
                return text

    async def call(self, method: str, params: Any = None) -> Any:
        msg = json.loads(await self.call_raw(method, params))
        if "error" in msg:
            raise RuntimeError(f"{method} failed: {msg['error']}")
        return msg["result"]

    async def initialize(self, name: str = "bench") -> None:
        await self.call("initialize", {"clientInfo": {"name": name, "version": "0"}})
        await self.ws.send_message('{"jsonrpc":"2.0","method":"initialized"}')

    async def wait_for(self, needle: str) -> str:
        while True:
            text = await self.ws.get_message()
            if needle in text:
                return text


async def open_clients(
    nursery: trio.Nursery, url: str, count: int, *, initialize: bool = True
) -> list[Rpc]:
    clients = []
    for _ in range(count):
        rpc = Rpc(await connect(nursery, url))
        if initialize:
            await rpc.initialize()
        clients.append(rpc)
    return clients


async def close_all(clients: Sequence[Rpc]) -> None:
    async with trio.open_nursery() as nursery:
        for rpc in clients:
            nursery.start_soon(rpc.ws.aclose)


# --- statistics and reporting --------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def rotate(sides: Sequence[str], round_no: int) -> list[str]:
    """A/B order alternates between rounds so neither side always goes first."""
    shift = round_no % len(sides)
    return [*sides[shift:], *sides[:shift]]


def report(
    bench: str,
    metric: str,
    value: float,
    unit: str,
    *,
    baseline: float | None = None,
    baseline_name: str | None = None,
    ratio: float | None = None,
    target: str = "",
    ok: bool | None = None,
    **extra: Any,
) -> None:
    """Print one result line for humans and one `BENCH {json}` line for run.py."""
    row = {
        "bench": bench,
        "metric": metric,
        "value": value,
        "unit": unit,
        "baseline": baseline,
        "baseline_name": baseline_name,
        "ratio": ratio,
        "target": target,
        "ok": ok,
        **extra,
    }
    print("BENCH " + json.dumps(row), flush=True)
