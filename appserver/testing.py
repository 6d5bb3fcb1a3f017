"""pytest plugin: a real appserver in your tests (see docs/testing.md).

Installed with appserver and registered through the ``pytest11`` entry point, so in any
project where appserver is installed these fixtures exist without a ``conftest.py``:

- ``appserver_config``: the `ServerConfig` used by ``appserver_server``. By default a
  SQLite store in ``tmp_path / "appserver"``; override the fixture to change it.
- ``appserver_server``: a running in-process `Server` (async; needs pytest-trio).
- ``appserver_client``: an initialized in-process `Client` of that server (async).
- ``appserver_ws_url``: ``ws://127.0.0.1:PORT`` of that server serving websocket (async;
  uses pytest-trio's ``nursery`` fixture).

The async fixtures run under pytest-trio: set ``trio_mode = true`` in your pytest
configuration, or mark each test ``@pytest.mark.trio``. Nothing here imports pytest-trio
(or, until a fixture runs, the server), so projects without pytest-trio are unaffected.

Five lines::

    async def test_say(appserver_client):
        thread = (await appserver_client.request("thread/start"))["thread"]
        turn = await run_turn(appserver_client, thread["id"], "/say hi there")
        assert turn.status == "completed"
        assert turn.text == "hi there"

`run_turn` is the one helper: it starts a turn, answers approval requests and collects
the turn's notifications until ``turn/completed``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import attrs
import pytest

if TYPE_CHECKING:
    import trio

    from appserver.client import Client
    from appserver.server import Server, ServerConfig

__all__ = [
    "TurnResult",
    "appserver_client",
    "appserver_config",
    "appserver_server",
    "appserver_ws_url",
    "run_turn",
    "text_input",
]

Decision = Literal["accept", "acceptForSession", "decline", "cancel"]
APPROVAL_METHODS = ("item/commandExecution/requestApproval", "item/fileChange/requestApproval")


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture
def appserver_config(tmp_path: Path) -> ServerConfig:
    """The server's configuration: a SQLite store in a fresh temporary directory.
    Override this fixture (same name, in your conftest.py or module) to change it."""
    from appserver.server import ServerConfig

    return ServerConfig(data_dir=tmp_path / "appserver")


@pytest.fixture
async def appserver_server(appserver_config: ServerConfig) -> AsyncIterator[Server]:
    """A running in-process server; shut down (PROTOCOL.md §8.8) after the test."""
    from appserver.server import open_server

    async with open_server(appserver_config) as server:
        yield server


@pytest.fixture
async def appserver_client(appserver_server: Server) -> AsyncIterator[Client]:
    """An in-process client of ``appserver_server``, already initialized."""
    async with appserver_server.connect() as client:
        await client.initialize("pytest", pytest.__version__)
        yield client


@pytest.fixture
async def appserver_ws_url(appserver_server: Server, nursery: trio.Nursery) -> str:
    """Serve ``appserver_server`` on a free loopback port for the test; its URL."""
    port: int = await nursery.start(appserver_server.serve_websocket, "127.0.0.1", 0)
    return f"ws://127.0.0.1:{port}"


# --- helpers ------------------------------------------------------------------------------


def text_input(text: str) -> list[dict[str, Any]]:
    """``turn/start`` input holding one text element."""
    return [{"type": "text", "text": text}]


@attrs.frozen
class TurnResult:
    """What one turn sent to a subscriber, from ``turn/started`` to ``turn/completed``."""

    turn: dict[str, Any]
    """The ``turn`` of ``turn/completed``: ``{id, items: [], status, error}``."""
    notifications: list[dict[str, Any]]
    """Every notification of the thread received while the turn ran, in order."""
    approvals: list[dict[str, Any]]
    """The params of each approval request the turn made, in order."""

    @property
    def status(self) -> str:
        status: str = self.turn["status"]
        return status

    @property
    def items(self) -> list[dict[str, Any]]:
        """The items of every ``item/completed``, in order."""
        return [n["params"]["item"] for n in self.notifications if n["method"] == "item/completed"]

    @property
    def text(self) -> str:
        """The text of the turn's agent messages, joined by newlines."""
        return "\n".join(i["text"] for i in self.items if i["type"] == "agentMessage")


async def run_turn(
    client: Client,
    thread_id: str,
    text: str,
    *,
    decision: Decision | None = "accept",
) -> TurnResult:
    """Start a turn of `text` on a thread `client` is subscribed to and wait for its end.

    Each approval request of the turn is answered with ``{"decision": decision}`` and
    its params are kept in `TurnResult.approvals`. While the turn runs, the helper takes
    every server request the client receives (`Client.next_server_request` cannot
    filter by thread), so use one client per concurrently running turn. With
    ``decision=None`` server requests are left alone for the caller to answer from
    another task, and `TurnResult.approvals` stays empty. Put a timeout around the call
    (``trio.fail_after``) if the turn might not end.
    """
    import trio

    started = await client.request("turn/start", {"threadId": thread_id, "input": text_input(text)})
    turn_id = started["turn"]["id"]
    approvals: list[dict[str, Any]] = []

    async def answer_approvals(decision: Decision) -> None:
        while True:
            request = await client.next_server_request()
            if request.method in APPROVAL_METHODS and request.params.get("turnId") == turn_id:
                approvals.append(request.params)
                await client.respond(request.id, {"decision": decision})

    notifications: list[dict[str, Any]] = []
    async with trio.open_nursery() as nursery:
        if decision is not None:
            nursery.start_soon(answer_approvals, decision)
        while True:
            note = await client.next_notification(where=lambda p: p.get("threadId") == thread_id)
            notifications.append(note)
            params = note["params"]
            if note["method"] == "turn/completed" and params["turn"]["id"] == turn_id:
                break
        nursery.cancel_scope.cancel()
    return TurnResult(turn=params["turn"], notifications=notifications, approvals=approvals)
