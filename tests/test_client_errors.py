"""Errors leave `open_server`, `Server.connect`, `connect_websocket` and `spawn_stdio` as
themselves (not wrapped in ExceptionGroups), as trio-websocket's `open_websocket` does;
real multi-error cases stay grouped; Ctrl-C is a short traceback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import pytest
import trio

from appserver.client import ConnectError, RpcError, connect_websocket, spawn_stdio
from appserver.client_errors import collapse, single_errors
from appserver.server import ServerConfig, open_server

TIMEOUT = 20


class Boom(Exception):
    pass


async def test_rpc_error_leaves_open_server_and_connect_alone() -> None:
    caught: RpcError | None = None
    try:
        async with open_server(ServerConfig()) as server, server.connect() as client:
            await client.initialize("errors")
            await client.request("thread/read", {"threadId": "no-such-thread"})
    except RpcError as exc:
        caught = exc
    assert caught is not None and type(caught) is RpcError
    assert caught.code in (-32600, -32602)


async def test_user_error_leaves_open_server_alone() -> None:
    with pytest.raises(Boom) as info:
        async with open_server(ServerConfig()):
            raise Boom("mine")
    assert type(info.value) is Boom and str(info.value) == "mine"
    assert not isinstance(info.value.__context__, BaseExceptionGroup)


async def test_rpc_error_leaves_connect_websocket_alone() -> None:
    async with open_server(ServerConfig()) as server, trio.open_nursery() as nursery:
        port = await nursery.start(server.serve_websocket, "127.0.0.1", 0)
        caught: RpcError | None = None
        try:
            async with connect_websocket(f"ws://127.0.0.1:{port}") as client:
                await client.request("thread/start")  # before initialize: refused
        except RpcError as exc:
            caught = exc
        assert caught is not None and type(caught) is RpcError
        nursery.cancel_scope.cancel()


async def test_connect_error_on_a_closed_port() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connection refused
        with trio.fail_after(TIMEOUT), pytest.raises(ConnectError) as info:
            async with connect_websocket(f"ws://127.0.0.1:{port}"):
                pass  # pragma: no cover
    assert type(info.value) is ConnectError and str(port) in str(info.value)


async def test_rpc_error_leaves_spawn_stdio_alone(tmp_path: os.PathLike[str]) -> None:
    caught: RpcError | None = None
    with trio.fail_after(TIMEOUT):
        try:
            async with spawn_stdio(
                ["--in-memory"], cwd=tmp_path, stderr=subprocess.DEVNULL
            ) as client:
                await client.initialize("errors")
                await client.request("no/such/method")
        except RpcError as exc:
            caught = exc
    assert caught is not None and caught.code == -32601


def test_keyboard_interrupt_leaves_alone() -> None:
    async def main() -> None:
        async with open_server(ServerConfig()) as server, server.connect() as client:
            await client.initialize("errors")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as info:
        trio.run(main)
    assert type(info.value) is KeyboardInterrupt


def test_ctrl_c_is_a_short_traceback() -> None:
    """A real SIGINT to an embedding program: one KeyboardInterrupt, no groups."""
    program = (
        "import sys, trio\n"
        "from appserver.server import ServerConfig, open_server\n"
        "async def main():\n"
        "    async with open_server(ServerConfig()) as server, server.connect() as client:\n"
        "        await client.initialize('ctrl-c')\n"
        "        print('ready', flush=True)\n"
        "        await trio.sleep_forever()\n"
        "trio.run(main)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", program],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=TIMEOUT)
    finally:
        proc.kill()
    assert proc.returncode != 0
    assert "ExceptionGroup" not in stderr
    assert stderr.strip().splitlines()[-1] == "KeyboardInterrupt"
    assert len(stderr.splitlines()) < 30, stderr


def test_collapse_policy() -> None:
    boom, other = Boom("a"), ValueError("b")
    nested = BaseExceptionGroup("outer", [BaseExceptionGroup("inner", [boom])])
    assert collapse(nested) is boom
    two = BaseExceptionGroup("two", [boom, other])
    assert collapse(two) is two  # a real multi-error case stays grouped
    kbi = KeyboardInterrupt()
    assert collapse(BaseExceptionGroup("g", [boom, BaseExceptionGroup("i", [kbi])])) is kbi


async def test_real_multi_errors_stay_grouped() -> None:
    async def fail(exc: Exception) -> None:
        raise exc

    with pytest.raises(BaseExceptionGroup) as info, single_errors():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(fail, Boom("a"))
            nursery.start_soon(fail, ValueError("b"))
    assert {type(e) for e in info.value.exceptions} == {Boom, ValueError}
