"""Helpers of benchmarks/cluster.py: a throwaway PostgreSQL (tests/pg_support.py's plain
starter functions), appserver node processes on it, and the subscriber worker process
(clients in their own processes: `python benchmarks/cluster.py --worker`)."""

from __future__ import annotations

import contextlib
import functools
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import trio
from _common import REPO, Rpc, ServerProcess, appserver_argv, connect

sys.path.insert(0, str(REPO / "tests"))
import pg_support  # tests/ is on the path: reuse its cluster starter

END = '"turn/completed"'


@contextlib.contextmanager
def postgres(url: str | None) -> Iterator[Any]:
    """A database factory: `--pg-url` (each call gives that URL) or a throwaway cluster
    started with pg_support's functions (each call a fresh database), stopped at the end."""
    if url is not None:
        yield lambda: url
        return
    bin_dir = pg_support.find_pg_bin()
    if bin_dir is None:
        raise SystemExit("PostgreSQL is not installed: pass --pg-url")
    root = Path(tempfile.mkdtemp(prefix="appserver-bench-pg-"))
    try:
        cluster = pg_support._start(bin_dir, root)
        try:
            yield cluster.create_database
        finally:
            pg_support._stop(cluster)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def node_argv(
    url: str, name: str, data: Path, lease: float, extra: Sequence[str] = ()
) -> list[str]:
    return appserver_argv(
        "--store",
        url,
        "--node-id",
        name,
        "--lease-seconds",
        str(lease),
        "--data-dir",
        str(data / name),
        "--idle-unload-seconds",
        "0",
        # Throughput, not the slow-consumer rule: clients share the 2 cores with the
        # nodes and PostgreSQL and may fall behind for a while; they are never dropped.
        "--outbound-queue",
        "1000000",
        *extra,
    )


@contextlib.contextmanager
def nodes(url: str, names: Sequence[str], lease: float = 5.0) -> Iterator[list[ServerProcess]]:
    """Node processes `names` on database `url`, started one after the other."""
    data = Path(tempfile.mkdtemp(prefix="appserver-bench-nodes-"))
    started: list[ServerProcess] = []
    try:
        for name in names:
            started.append(ServerProcess(name, node_argv(url, name, data, lease)))
        yield started
    finally:
        for server in started:
            server.stop()
        shutil.rmtree(data, ignore_errors=True)


@contextlib.contextmanager
def sqlite_node() -> Iterator[ServerProcess]:
    data = Path(tempfile.mkdtemp(prefix="appserver-bench-sqlite-"))
    server = ServerProcess("sqlite", appserver_argv("--data-dir", str(data)))
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)


def turn_text(thread_id: str, text: str, request_id: int) -> str:
    params = {"threadId": thread_id, "input": [{"type": "text", "text": text}]}
    return json.dumps(
        {"jsonrpc": "2.0", "id": request_id, "method": "turn/start", "params": params}
    )


async def count_until_end(rpc: Rpc, counts: list[int], index: int) -> None:
    n = 0
    while True:
        text = await rpc.ws.get_message()
        n += 1
        if END in text:
            counts[index] = n
            return


# --- the subscriber worker process ------------------------------------------------------------


async def worker_main() -> None:
    """Reads one JSON line `{"subscribers": [[url, thread_id], ...]}` from stdin, opens and
    subscribes one websocket per entry, prints `READY`, then counts every frame each one
    gets up to its `turn/completed` and prints `{"frames": N, "end": unix time}`."""
    line = await trio.to_thread.run_sync(sys.stdin.readline)
    if not line:
        raise SystemExit("worker: no job")
    job = json.loads(line)
    async with trio.open_nursery() as nursery:
        clients = []
        for url, thread_id in job["subscribers"]:
            rpc = Rpc(await connect(nursery, url))
            await rpc.initialize("bench-worker")
            await rpc.call("thread/resume", {"threadId": thread_id})
            clients.append(rpc)
        print("READY", flush=True)
        counts = [0] * len(clients)
        async with trio.open_nursery() as readers:
            for i, rpc in enumerate(clients):
                readers.start_soon(count_until_end, rpc, counts, i)
        end = time.time()
        print(json.dumps({"frames": sum(counts), "end": end}), flush=True)
        nursery.cancel_scope.cancel()


class Worker:
    """A subscriber worker process (see worker_main) driven over its pipes."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self._buffer = b""

    async def line(self) -> str:
        assert self.process.stdout is not None
        while b"\n" not in self._buffer:
            chunk = await self.process.stdout.receive_some(65536)
            if not chunk:
                raise RuntimeError("a benchmark worker exited early")
            self._buffer += chunk
        first, self._buffer = self._buffer.split(b"\n", 1)
        return first.decode()

    async def send_job(self, subscribers: list[tuple[str, str]]) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send_all(
            (json.dumps({"subscribers": subscribers}) + "\n").encode()
        )


async def start_worker(nursery: trio.Nursery) -> Worker:
    argv = [sys.executable, str(Path(__file__).with_name("cluster.py")), "--worker"]
    run = functools.partial(
        trio.run_process, argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, check=True
    )
    process: trio.Process = await nursery.start(run)
    return Worker(process)
