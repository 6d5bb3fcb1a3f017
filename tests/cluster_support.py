"""A cluster of real `appserver` node processes on one real PostgreSQL (issue 16 step 3).

Everything drives the nodes from the outside: each node is the real CLI
(`appserver --store <pg_url> --node-id <name> --lease-seconds <s> --listen
ws://127.0.0.1:0`) started by tests/support.py's `run_ws_server`, clients are real
websockets (`appserver.client.connect_websocket`) whose every message is checked against
the Codex 0.171 schemas; the database side (who is connected, cutting a node's
connections) is in cluster_db.py. Nothing here knows how the cluster is built.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import trio

from appserver.client import Client, connect_websocket

from support import SUBSCRIBER_METHODS, SchemaChecker, ServerProcess, run_ws_server

Message = dict[str, Any]

# Lease timeout of the failover scenarios: short, so a failover takes about a second.
TEST_LEASE_SECONDS = 1.0
# Lease timeout of the scenarios that involve no failover: the default, so a node starved
# of CPU for a moment on this 2-core machine (three nodes, PostgreSQL and the clients) does
# not fence itself in the middle of a scenario about something else.
STEADY_LEASE_SECONDS = 5.0
# The application_name a node's database connections carry (issue 16).
APP_PREFIX = "appserver:"


_T0 = time.monotonic()


def step(what: str) -> None:
    """Print a progress line (pytest shows it with a failure: where a scenario stopped)."""
    print(f"[{time.monotonic() - _T0:8.2f}s] {what}", flush=True)


def application_name(node: str) -> str:
    return f"{APP_PREFIX}{node}"


def node_argv(
    pg_url: str,
    name: str,
    data_dir: Path,
    *,
    lease_seconds: float | None = TEST_LEASE_SECONDS,
    extra: Sequence[str] = (),
) -> list[str]:
    """The CLI arguments of one node (`--listen` is added by run_ws_server)."""
    args = ["--store", pg_url, "--node-id", name, "--data-dir", str(data_dir)]
    if lease_seconds is not None:
        args += ["--lease-seconds", str(lease_seconds)]
    return [*args, *extra]


@attrs.define(eq=False)
class Node:
    """One running node process."""

    name: str
    data_dir: Path
    server: ServerProcess

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def pid(self) -> int:
        return int(self.server.process.pid)

    @property
    def application_name(self) -> str:
        return application_name(self.name)

    @property
    def alive(self) -> bool:
        return self.server.process.returncode is None

    def stderr(self) -> str:
        return "\n".join(self.server.stderr_lines)

    async def kill(self) -> None:
        """SIGKILL the node (no shutdown path runs) and wait until it is gone."""
        self.server.process.send_signal(signal.SIGKILL)
        await self.server.process.wait()
        assert self.server.process.returncode == -signal.SIGKILL


@asynccontextmanager
async def open_node(
    pg_url: str,
    root: Path,
    name: str,
    *,
    lease_seconds: float | None = TEST_LEASE_SECONDS,
    extra: Sequence[str] = (),
) -> AsyncIterator[Node]:
    """One node on `pg_url` with its own data dir under `root` (the data dir holds the
    node's lock file); SIGTERM and wait on leaving (run_ws_server)."""
    data_dir = root / f"node-{name}"
    argv = node_argv(pg_url, name, data_dir, lease_seconds=lease_seconds, extra=extra)
    async with run_ws_server(*argv, banner_timeout=40) as server:
        yield Node(name, data_dir, server)


@asynccontextmanager
async def open_cluster(
    pg_url: str,
    root: Path,
    names: Sequence[str] = ("a", "b", "c"),
    *,
    lease_seconds: float | None = TEST_LEASE_SECONDS,
    extra: Sequence[str] = (),
) -> AsyncIterator[dict[str, Node]]:
    """Nodes `names` on one database, started one after the other (the first one
    migrates the schema), by name."""
    async with AsyncExitStack() as stack:
        nodes: dict[str, Node] = {}
        for name in names:
            nodes[name] = await stack.enter_async_context(
                open_node(pg_url, root, name, lease_seconds=lease_seconds, extra=extra)
            )
        try:
            yield nodes
        except BaseException:
            for node in nodes.values():  # shown by pytest with the failure
                print(f"--- node {node.name} stderr (last 40 lines):")
                print("\n".join(node.server.stderr_lines[-40:]))
            raise


# Deltas arrive by the thousand and a full schema validation costs about a millisecond:
# as in multiclient_support, the first FULLY_CHECKED of each kind per client are validated
# in full, the rest against the exact shape of those (same keys, a string delta).
BULK_METHODS = frozenset(
    {
        "item/agentMessage/delta",
        "item/commandExecution/outputDelta",
        "item/reasoning/summaryTextDelta",
        "item/fileChange/outputDelta",
    }
)
FULLY_CHECKED = 20


class Recorder:
    """Every message a client receives, in arrival order, each validated against the
    Codex 0.171 schemas first (`checker`; deltas sampled, see BULK_METHODS)."""

    def __init__(self, client: Client, checker: SchemaChecker) -> None:
        self.messages: list[Message] = []
        self._changed = trio.Event()
        seen: dict[str, int] = {}
        shapes: dict[str, tuple[set[str], set[str]]] = {}

        def check(message: Message, method: str | None) -> None:
            kind = message.get("method")
            if not isinstance(kind, str) or kind not in BULK_METHODS or "id" in message:
                checker.check(message, method)
                return
            seen[kind] = seen.get(kind, 0) + 1
            params = message.get("params") or {}
            if seen[kind] <= FULLY_CHECKED:
                checker.check(message, method)
                shapes[kind] = (set(message), set(params))
                return
            keys, param_keys = shapes[kind]
            assert message.get("jsonrpc") == "2.0", message
            assert set(message) == keys and set(params) == param_keys, message
            assert isinstance(params["delta"], str), message
            assert "seq" not in message or isinstance(message["seq"], int), message

        def observe(message: Message, method: str | None) -> None:
            check(message, method)
            self.messages.append(message)
            self._changed.set()
            self._changed = trio.Event()

        client.observer = observe

    async def wait_for(self, predicate: Callable[[Message], bool], after: int = 0) -> int:
        """Index of the first recorded message at or after `after` that matches (waits
        for it to arrive; bound the wait with trio.fail_after)."""
        i = after
        while True:
            while i < len(self.messages):
                if predicate(self.messages[i]):
                    return i
                i += 1
            await self._changed.wait()

    def notifications(self, method: str | None = None) -> list[Message]:
        return [
            m
            for m in self.messages
            if "method" in m and "id" not in m and (method is None or m["method"] == method)
        ]

    def server_requests(self) -> list[Message]:
        return [m for m in self.messages if "method" in m and "id" in m]

    def answers(self) -> list[Message]:
        return [m for m in self.messages if "method" not in m]


@attrs.define(eq=False)
class NodeClient:
    """A connected, initialized client of one node and everything it received."""

    node: Node
    client: Client
    log: Recorder
    name: str

    async def request(self, method: str, params: Any = None) -> Any:
        return await self.client.request(method, params)

    async def wait_for(self, predicate: Callable[[Message], bool], after: int = 0) -> Message:
        """The first message received (at or after index `after`) that matches; fails at
        once if the connection closes first."""
        found: list[int] = []
        async with trio.open_nursery() as nursery:

            async def look() -> None:
                found.append(await self.log.wait_for(predicate, after))
                nursery.cancel_scope.cancel()

            nursery.start_soon(look)
            await self.client.wait_closed()
            nursery.cancel_scope.cancel()
        if not found:  # closed: what arrived before the close still counts
            found = [
                i for i in range(after, len(self.log.messages)) if predicate(self.log.messages[i])
            ][:1]
        if not found:
            raise AssertionError(
                f"{self.name}: connection closed ({self.client.close_code} "
                f"{self.client.close_reason}) before the message waited for"
            )
        return self.log.messages[found[0]]

    async def turn_completed(self, thread_id: str, turn_id: str) -> Message:
        """The `turn` of this turn's `turn/completed` (waits for it)."""
        message = await self.wait_for(is_turn_completed(thread_id, turn_id))
        turn: Message = message["params"]["turn"]
        return turn

    async def status_change(
        self, thread_id: str, predicate: Callable[[Message], bool], after: int = 0
    ) -> Message:
        """The `status` of the first matching `thread/status/changed` of the thread."""
        message = await self.wait_for(
            lambda m: (
                m.get("method") == "thread/status/changed"
                and m["params"]["threadId"] == thread_id
                and predicate(m["params"]["status"])
            ),
            after,
        )
        status: Message = message["params"]["status"]
        return status


@asynccontextmanager
async def open_client(
    node: Node, checker: SchemaChecker, name: str | None = None, *, seq: bool = False
) -> AsyncIterator[NodeClient]:
    """A websocket client of `node`, every message schema-checked (`checker`) and
    recorded; initialized with `{"appserverEventSeq": true}` when `seq`."""
    label = name or f"client-of-{node.name}"
    async with connect_websocket(node.url) as client:
        log = Recorder(client, checker)
        caps = {"appserverEventSeq": True} if seq else None
        await client.initialize(label, capabilities=caps)
        try:
            yield NodeClient(node, client, log, label)
        except BaseException:
            print(f"--- {label}: {len(log.messages)} messages, the last ones:")
            for m in log.messages[-4:]:
                print("   ", json.dumps(m)[:300])
            raise


def is_turn_completed(thread_id: str, turn_id: str) -> Callable[[Message], bool]:
    return lambda m: (
        m.get("method") == "turn/completed"
        and "id" not in m
        and m["params"]["threadId"] == thread_id
        and m["params"]["turn"]["id"] == turn_id
    )


def is_notification(method: str, **params: Any) -> Callable[[Message], bool]:
    return lambda m: (
        m.get("method") == method
        and "id" not in m
        and all((m.get("params") or {}).get(k) == v for k, v in params.items())
    )


def text_input(text: str) -> list[Message]:
    return [{"type": "text", "text": text, "text_elements": []}]


async def start_turn(peer: NodeClient, thread_id: str, text: str) -> str:
    result = await peer.request("turn/start", {"threadId": thread_id, "input": text_input(text)})
    assert result["turn"]["status"] == "inProgress", result
    turn_id: str = result["turn"]["id"]
    return turn_id


async def read_thread(peer: NodeClient, thread_id: str) -> Message:
    result = await peer.request("thread/read", {"threadId": thread_id, "includeTurns": True})
    thread: Message = result["thread"]
    return thread


# --- what clients received -------------------------------------------------------------------


def thread_stream(messages: Sequence[Message], thread_id: str) -> list[Message]:
    """The subscriber traffic of one thread (§6 "to: subscribers" and §7 requests), in
    arrival order: the stream that carries `seq`."""
    out = []
    for m in messages:
        method = m.get("method")
        params = m.get("params") or {}
        if params.get("threadId") != thread_id:
            continue
        if method in SUBSCRIBER_METHODS or ("id" in m and method is not None):
            out.append(m)
    return out


def agent_texts(stream: Sequence[Message]) -> dict[str, str]:
    """Concatenated agent message deltas by item id."""
    texts: dict[str, str] = {}
    for m in stream:
        if m.get("method") == "item/agentMessage/delta":
            params = m["params"]
            texts[params["itemId"]] = texts.get(params["itemId"], "") + params["delta"]
    return texts


def completed_agent_messages(stream: Sequence[Message]) -> list[Message]:
    return [
        m["params"]["item"]
        for m in stream
        if m.get("method") == "item/completed" and m["params"]["item"]["type"] == "agentMessage"
    ]


def assert_contiguous(seqs: Sequence[int]) -> None:
    """Strictly consecutive: no gap, no duplicate, no reordering."""
    assert seqs, "no numbered events"
    expected = list(range(seqs[0], seqs[0] + len(seqs)))
    if list(seqs) != expected:
        bad = next(i for i, (a, b) in enumerate(zip(seqs, expected, strict=True)) if a != b)
        raise AssertionError(
            f"seq not contiguous at position {bad}: ...{list(seqs[max(0, bad - 3) : bad + 3])}"
        )
