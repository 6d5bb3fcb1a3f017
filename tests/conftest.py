from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
import trio

from appserver.client import Client, connect_websocket, spawn_stdio
from appserver.server import Server, ServerConfig, open_server

from support import (
    SCHEMA_CHECKER,
    SchemaChecker,
    schema_checker,  # noqa: F401  (fixture)
    schemas_available,
)

pytest_plugins = ["pg_support"]  # pg_cluster, pg_url: a real PostgreSQL, started lazily

ConnectFactory = Callable[[], AbstractAsyncContextManager[Client]]

NO_SCHEMA_CHECK = "no_schema_check"


def _share_bytecode_with_child_processes() -> None:
    """The Python processes the tests start (servers, CLI clients, the docs' pytest runs:
    hundreds per session) and xdist's workers keep their compiled bytecode, and pytest's
    assertion-rewritten plugin modules (all of hypothesis, about 1 s per pytest process),
    in one cache outside the work tree, when PYTHONDONTWRITEBYTECODE is set (without a
    cache each of them compiled appserver, and rewrote hypothesis, again). Without that
    variable the usual __pycache__ directories do the same."""
    if os.environ.pop("PYTHONDONTWRITEBYTECODE", None) is not None:
        os.environ.setdefault(
            "PYTHONPYCACHEPREFIX",
            os.path.join(tempfile.gettempdir(), f"appserver-tests-pycache-{os.getuid()}"),
        )


def pytest_configure(config: pytest.Config) -> None:
    _share_bytecode_with_child_processes()
    config.addinivalue_line(
        "markers",
        f"{NO_SCHEMA_CHECK}(reason): clients of this test do not validate what they receive "
        "against the Codex 0.171 schemas (only for tests that deliberately receive "
        "non-conforming data; give the reason)",
    )


@pytest.fixture(autouse=True)
def _validate_every_message(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Every `appserver.client.Client` made during a test starts with the schema check
    as its observer, so every message every test receives is validated against
    ../shared/codex-schema-0.171 and round-tripped through appserver.protocol. A test
    that installs its own observer takes over (the Recorders chain the check; the
    200000-delta flow tests sample it)."""
    marker = request.node.get_closest_marker(NO_SCHEMA_CHECK)
    if marker is not None:
        assert marker.args or marker.kwargs.get("reason"), f"{NO_SCHEMA_CHECK} needs a reason"
    if marker is not None or not schemas_available():
        yield
        return
    original = Client.__init__

    def init(self: Client, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.observer = SCHEMA_CHECKER.check

    monkeypatch.setattr(Client, "__init__", init)
    yield


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if SCHEMA_CHECKER.checked:
        terminalreporter.write_line(
            f"{SCHEMA_CHECKER.checked} server messages validated against {SCHEMA_CHECKER.root.name}"
        )
    if SCHEMA_CHECKER.undescribed:
        terminalreporter.write_line(
            "messages validated against 0.171 but not described in appserver.protocol: "
            + ", ".join(sorted(SCHEMA_CHECKER.undescribed))
        )


@pytest.fixture
def server_config() -> ServerConfig:
    return ServerConfig(data_dir=None)


@pytest.fixture
async def server(server_config: ServerConfig) -> AsyncIterator[Server]:
    async with open_server(server_config) as srv:
        yield srv


@pytest.fixture
async def ws_url(server: Server, nursery: trio.Nursery) -> str:
    port = await nursery.start(server.serve_websocket, "127.0.0.1", 0)
    return f"ws://127.0.0.1:{port}"


def _factory(
    kind: str, server: Server, checker: SchemaChecker, ws_url: str | None
) -> ConnectFactory:
    @asynccontextmanager
    async def connect() -> AsyncIterator[Client]:
        cm: AbstractAsyncContextManager[Client]
        if kind == "memory":
            cm = server.connect()
        elif kind == "websocket":
            assert ws_url is not None
            cm = connect_websocket(ws_url)
        else:
            cm = spawn_stdio(["--in-memory", "--log-level", "warning"])
        async with cm as client:
            client.observer = checker.check
            yield client

    return connect


@pytest.fixture(params=["memory", "stdio", "websocket"])
async def connect(
    request: pytest.FixtureRequest,
    server: Server,
    schema_checker: SchemaChecker,  # noqa: F811
    nursery: trio.Nursery,
) -> ConnectFactory:
    """A factory of clients over each transport. stdio spawns a real server process per
    client (one stdio client per server); memory and websocket share `server`."""
    url = None
    if request.param == "websocket":
        port = await nursery.start(server.serve_websocket, "127.0.0.1", 0)
        url = f"ws://127.0.0.1:{port}"
    return _factory(request.param, server, schema_checker, url)


@pytest.fixture(params=["memory", "websocket"])
async def connect_shared(
    request: pytest.FixtureRequest,
    server: Server,
    schema_checker: SchemaChecker,  # noqa: F811
    nursery: trio.Nursery,
) -> ConnectFactory:
    """Like `connect`, for transports where many clients share one server."""
    url = None
    if request.param == "websocket":
        port = await nursery.start(server.serve_websocket, "127.0.0.1", 0)
        url = f"ws://127.0.0.1:{port}"
    return _factory(request.param, server, schema_checker, url)
