from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest
import trio

from appserver.client import Client, connect_websocket, spawn_stdio
from appserver.server import Server, ServerConfig, open_server

from support import SchemaChecker, schema_checker  # noqa: F401  (fixture)

ConnectFactory = Callable[[], AbstractAsyncContextManager[Client]]


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
