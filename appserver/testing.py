"""pytest plugin: a real appserver in your tests (see docs/testing.md).

Installed with appserver and registered through the ``pytest11`` entry point, so in any
project where appserver is installed these fixtures exist without a ``conftest.py``:

- ``appserver_config``: the `ServerConfig` used by ``appserver_server``. By default a
  SQLite store in ``tmp_path / "appserver"``; override the fixture to change it.
- ``appserver_server``: a running in-process `Server` (async; needs pytest-trio).
- ``appserver_client``: an initialized in-process `Client` of that server (async).
- ``appserver_ws_url``: ``ws://127.0.0.1:PORT`` of that server serving websocket (async;
  uses pytest-trio's ``nursery`` fixture).
- ``appserver_factory``: a `ServerFactory` to start more servers, stop or restart them
  (async).

Leaving a test stops its servers at once: turns still running are interrupted (no
shutdown grace), so a test that leaves a turn running does not slow the suite.

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
the turn's notifications until ``turn/completed`` (or raises `TurnTimeout`).

The helpers (`run_turn`, `TurnResult`, `TurnTimeout`, `text_input`, `ServerFactory`) import
without pytest; the fixtures exist only where pytest is installed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import attrs

try:
    import pytest
except ImportError:  # the helpers work without pytest; the fixtures need it
    HAVE_PYTEST = False
else:
    HAVE_PYTEST = True

if TYPE_CHECKING:
    import trio

    from appserver.client import Client
    from appserver.server import Server, ServerConfig

__all__ = [
    "DEFAULT_TURN_TIMEOUT",
    "ServerFactory",
    "TurnResult",
    "TurnTimeout",
    "run_turn",
    "text_input",
]

DEFAULT_TURN_TIMEOUT = 30.0
ASYNC_FIXTURES = frozenset(
    {"appserver_server", "appserver_client", "appserver_ws_url", "appserver_factory"}
)
NEEDS_TRIO = (
    "{test} uses {names}: async appserver fixtures, run only by pytest-trio. Set "
    "`trio_mode = true` in your pytest configuration ([tool.pytest.ini_options] or "
    "pytest.ini) or mark the test @pytest.mark.trio (pip install 'appserver[pytest]' "
    "installs pytest-trio)"
)

Decision = Literal["accept", "acceptForSession", "decline", "cancel"]
APPROVAL_METHODS = ("item/commandExecution/requestApproval", "item/fileChange/requestApproval")


# --- fixtures -----------------------------------------------------------------------------


class ServerFactory:
    """Servers for one test, each run in its own task of the fixture's nursery (so they
    can be started and stopped from the test): `start` one (by default with the
    ``appserver_config`` of the test), `stop` it, `restart` it on the same configuration
    (the same data dir: what it stored is there again). Every server still running
    when the test ends is stopped at once."""

    def __init__(self, nursery: trio.Nursery, config: ServerConfig) -> None:
        self._nursery = nursery
        self._config = config
        self._running: dict[int, tuple[trio.Event, trio.Event]] = {}

    async def start(self, config: ServerConfig | None = None) -> Server:
        server: Server = await self._nursery.start(self._run, config or self._config)
        return server

    async def stop(self, server: Server) -> None:
        """Stop `server` at once (running turns are interrupted) and wait until it is
        closed (its data dir unlocked). Stopping a stopped server does nothing."""
        if id(server) not in self._running:
            return
        stop, done = self._running[id(server)]
        stop.set()
        await done.wait()

    async def restart(self, server: Server) -> Server:
        await self.stop(server)
        return await self.start(server.config)

    async def stop_all(self) -> None:
        for stop, _ in self._running.values():
            stop.set()
        for _, done in list(self._running.values()):
            await done.wait()

    async def _run(self, config: ServerConfig, *, task_status: trio.TaskStatus[Server]) -> None:
        import trio

        from appserver.server import open_server

        stop, done = trio.Event(), trio.Event()
        key: int | None = None
        try:
            async with open_server(config) as server:
                key = id(server)
                self._running[key] = (stop, done)
                task_status.started(server)
                try:
                    await stop.wait()
                finally:
                    with trio.CancelScope(shield=True):
                        await server.shutdown(graceful=False)
        finally:
            if key is not None:
                del self._running[key]
            done.set()


if HAVE_PYTEST:

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(item: pytest.Item) -> None:
        """A clear error (not a hang or a warning about a never-awaited coroutine) when
        a test uses the async fixtures without pytest-trio running it."""
        names = sorted(ASYNC_FIXTURES & set(getattr(item, "fixturenames", ())))
        if not names or item.get_closest_marker("trio") is not None:
            return
        pytest.fail(NEEDS_TRIO.format(test=item.nodeid, names=", ".join(names)), pytrace=False)

    @pytest.fixture
    def appserver_config(tmp_path: Path) -> ServerConfig:
        """The server's configuration: a SQLite store in a fresh temporary directory.
        Override this fixture (same name, in your conftest.py or module) to change it."""
        from appserver.server import ServerConfig

        return ServerConfig(data_dir=tmp_path / "appserver")

    @pytest.fixture
    async def appserver_factory(appserver_config: ServerConfig) -> AsyncIterator[ServerFactory]:
        """Start, stop and restart servers during the test (`ServerFactory`)."""
        import trio

        async with trio.open_nursery() as nursery:
            factory = ServerFactory(nursery, appserver_config)
            try:
                yield factory
            finally:
                with trio.CancelScope(shield=True):
                    await factory.stop_all()

    @pytest.fixture
    async def appserver_server(appserver_config: ServerConfig) -> AsyncIterator[Server]:
        """A running in-process server; stopped at once after the test (turns still
        running are interrupted and stored so, PROTOCOL.md §8.8)."""
        import trio

        from appserver.server import open_server

        async with open_server(appserver_config) as server:
            try:
                yield server
            finally:
                with trio.CancelScope(shield=True):
                    await server.shutdown(graceful=False)

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


class TurnTimeout(TimeoutError):
    """`run_turn`'s turn did not complete within its timeout."""


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
    timeout: float = DEFAULT_TURN_TIMEOUT,  # noqa: ASYNC109 (the issue asks for it: never a hang)
) -> TurnResult:
    """Start a turn of `text` on a thread `client` is subscribed to and wait for its end.

    Each approval request of the turn is answered with ``{"decision": decision}`` and
    its params are kept in `TurnResult.approvals`. While the turn runs, the helper takes
    every server request the client receives (`Client.next_server_request` cannot
    filter by thread), so use one client per concurrently running turn. With
    ``decision=None`` server requests are left alone for the caller to answer from
    another task, and `TurnResult.approvals` stays empty.

    The whole call (starting included) is bounded by `timeout` seconds (default 30):
    past it, `TurnTimeout` is raised (the turn is left running; the fixtures' server
    interrupts it when the test ends).
    """
    import trio

    notifications: list[dict[str, Any]] = []
    with trio.move_on_after(timeout) as scope:
        return await _run_turn(client, thread_id, text, decision, notifications)
    assert scope.cancelled_caught
    seen = ", ".join(n["method"] for n in notifications[-5:]) or "none"
    raise TurnTimeout(
        f"the turn {text!r} on thread {thread_id} did not complete within {timeout:g} s "
        f"({len(notifications)} notification(s) of the thread, the last: {seen})"
    )


async def _run_turn(
    client: Client,
    thread_id: str,
    text: str,
    decision: Decision | None,
    notifications: list[dict[str, Any]],
) -> TurnResult:
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
