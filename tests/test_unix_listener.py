"""`--listen unix://PATH`: websocket over a Unix socket (mode 0600, removed on exit), as the
Codex app-server 0.171 serves it (an HTTP upgrade, then one JSON-RPC message per frame)."""

from __future__ import annotations

import os
import signal
import socket
import stat
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
import trio_websocket

from appserver.cli import config_from_args
from appserver.client import Client
from appserver.server import ServerConfig, open_server
from appserver.transports.unix import open_unix_listener
from appserver.transports.websocket import WebSocketTransport

from support import SchemaChecker, run_ws_server

TIMEOUT = 20


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a short path (a socket path has at most 107 bytes)."""
    with tempfile.TemporaryDirectory(prefix="as-", dir="/tmp") as name:
        yield Path(name)


@asynccontextmanager
async def connect_unix(path: Path) -> AsyncIterator[Client]:
    """A client over the Unix socket: websocket handshake, then JSON-RPC frames."""
    stream = await trio.open_unix_socket(os.fspath(path))
    async with trio.open_nursery() as nursery:
        ws = await trio_websocket.wrap_client_stream(nursery, stream, "localhost", "/")
        try:
            async with Client.open(WebSocketTransport(ws, ping_interval=3600)) as client:
                yield client
        finally:
            await ws.aclose()


async def test_unix_socket_serves_clients_with_mode_0600_and_is_removed_on_sigterm(
    short_dir: Path, schema_checker: SchemaChecker
) -> None:
    path = short_dir / "sub" / "app.sock"
    with trio.fail_after(TIMEOUT):
        # run_ws_server's own --listen comes first; the last --listen wins.
        async with run_ws_server("--in-memory", "--listen", f"unix://{path}") as server:
            assert server.url == f"unix://{path}"
            info = path.lstat()
            assert stat.S_ISSOCK(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600
            assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700  # created private
            async with connect_unix(path) as one, connect_unix(path) as two:
                one.observer = two.observer = schema_checker.check
                assert (await one.initialize("one"))["userAgent"].endswith("(one/0)")
                await two.initialize("two")
                started = await one.request("thread/start", {})
                notice = await two.next_notification("thread/started")
                assert notice["params"]["thread"]["id"] == started["thread"]["id"]
                server.process.send_signal(signal.SIGTERM)
                await one.wait_closed()
                assert one.close_code == 1001
            assert await server.process.wait() == 0
        assert not path.exists()
        assert f"appserver listening on unix://{path}" in server.stderr_lines


async def test_stale_socket_is_replaced_and_a_live_one_refused(short_dir: Path) -> None:
    path = short_dir / "s.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(os.fspath(path))  # bound, never listening: nobody accepts there
    stale.close()
    with trio.fail_after(TIMEOUT):
        async with open_server(ServerConfig()) as server, trio.open_nursery() as nursery:
            got = await nursery.start(server.serve_unix, path)
            assert got == path and stat.S_IMODE(path.lstat().st_mode) == 0o600
            with pytest.raises(OSError, match="in use"):
                await open_unix_listener(path)
            async with connect_unix(path) as client:
                await client.initialize("in-process")
            nursery.cancel_scope.cancel()
        assert not path.exists()
        path.write_text("not a socket")
        with pytest.raises(OSError, match="not a socket"):
            await open_unix_listener(path)
        with pytest.raises(OSError, match="longer than"):
            await open_unix_listener(short_dir / ("x" * 120))


def test_bare_unix_url_means_the_default_socket_under_the_data_dir(tmp_path: Path) -> None:
    config = config_from_args(["--data-dir", str(tmp_path), "--listen", "unix://"])
    assert config.listen == f"unix://{tmp_path}/app-server-control/app-server-control.sock"
    relative = config_from_args(["--in-memory", "--listen", "unix://rel.sock"])
    assert relative.listen == f"unix://{Path.cwd() / 'rel.sock'}"
