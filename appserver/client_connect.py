"""The client's connectors (client.py re-exports them): `connect_websocket` and
`spawn_stdio`, each yielding a `Client`; errors leave them as themselves
(client_errors.single_errors)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import trio
import trio_websocket
from wsproto.utilities import LocalProtocolError

from appserver.client import CLIENT_MAX_MESSAGE_BYTES, Client
from appserver.client_errors import ConnectError, single_errors
from appserver.client_limits import BufferLimits
from appserver.transports.lines import LineTransport
from appserver.transports.websocket import WebSocketTransport

__all__ = ["connect_websocket", "spawn_stdio"]


async def _exit_websocket(opening: Any, exc: BaseException | None) -> bool:
    """Leave trio-websocket's context. A ping that arrives while the client is closing
    makes trio-websocket 0.12 try to answer with a Pong in the LOCAL_CLOSING state, which
    raises LocalProtocolError from its reader task; at that point the connection is over
    anyway, so that one error is dropped."""
    try:
        if exc is None:
            return bool(await opening.__aexit__(None, None, None))
        return bool(await opening.__aexit__(type(exc), exc, exc.__traceback__))
    except BaseExceptionGroup as group:
        _, rest = group.split(LocalProtocolError)
        if rest is not None:
            raise rest from None
        return exc is None
    except LocalProtocolError:
        return exc is None


def _connect_failure(exc: BaseException) -> BaseException | None:
    """The handshake or socket error inside what trio-websocket raised, if that is all."""
    if isinstance(exc, BaseExceptionGroup):
        if len(exc.exceptions) != 1:
            return None
        return _connect_failure(exc.exceptions[0])
    if isinstance(exc, trio_websocket.HandshakeError | OSError):
        return exc
    return None


@asynccontextmanager
async def connect_websocket(
    url: str,
    *,
    token: str | None = None,
    origin: str | None = None,
    max_message_bytes: int = CLIENT_MAX_MESSAGE_BYTES,
    buffer_limits: BufferLimits | None = None,
) -> AsyncIterator[Client]:
    """A client over a websocket; `token` is sent as `Authorization: Bearer <token>`;
    `buffer_limits` bounds what it holds unread (default `BufferLimits()`)."""
    headers: list[tuple[bytes, bytes]] = []
    if token is not None:
        headers.append((b"Authorization", f"Bearer {token}".encode()))
    if origin is not None:
        headers.append((b"Origin", origin.encode()))
    opening = trio_websocket.open_websocket_url(
        url, extra_headers=headers, max_message_size=max_message_bytes
    )
    with single_errors():
        async with _websocket_client(url, opening, buffer_limits) as client:
            yield client


@asynccontextmanager
async def _websocket_client(
    url: str, opening: Any, limits: BufferLimits | None
) -> AsyncIterator[Client]:
    try:
        ws = await opening.__aenter__()
    except (trio_websocket.HandshakeError, OSError, BaseExceptionGroup) as exc:
        cause = _connect_failure(exc)
        if cause is None:
            raise
        if isinstance(cause, trio_websocket.ConnectionRejected):
            raise ConnectError(
                f"{url} refused the connection: HTTP {cause.status_code}", cause.status_code
            ) from None
        raise ConnectError(f"cannot connect to {url}: {cause.__cause__ or cause}") from None
    try:
        async with Client.open(WebSocketTransport(ws, ping_interval=3600), limits) as client:
            yield client
    except BaseException as exc:
        if not await _exit_websocket(opening, exc):
            raise
    else:
        await _exit_websocket(opening, None)


@asynccontextmanager
async def spawn_stdio(
    args: Sequence[str] = (),
    *,
    command: Sequence[str] | None = None,
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    stderr: int | None = None,
    max_message_bytes: int = CLIENT_MAX_MESSAGE_BYTES,
    buffer_limits: BufferLimits | None = None,
) -> AsyncIterator[Client]:
    """Start `appserver <args>` (or `command + args`) as a subprocess speaking stdio and
    yield a client wired to its stdin/stdout. Leaving closes stdin and waits for exit.
    `env` (the whole environment; None inherits), `cwd` and `stderr` (None inherits,
    `subprocess.DEVNULL`, a file descriptor...) are the process's options;
    `buffer_limits` bounds what the client holds unread (default `BufferLimits()`)."""
    argv = [*(command or [sys.executable, "-m", "appserver"]), *args]
    options: dict[str, Any] = {"env": env, "cwd": cwd, "stderr": stderr}
    with single_errors():
        async with _stdio_client(argv, options, max_message_bytes, buffer_limits) as client:
            yield client


@asynccontextmanager
async def _stdio_client(
    argv: list[str],
    options: dict[str, Any],
    max_message_bytes: int,
    limits: BufferLimits | None,
) -> AsyncIterator[Client]:
    async with trio.open_nursery() as nursery:
        proc: trio.Process = await nursery.start(
            partial(
                trio.run_process,
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                check=False,
                **options,
            )
        )
        assert proc.stdin is not None and proc.stdout is not None
        transport = LineTransport(proc.stdout, proc.stdin, max_message_bytes)
        try:
            async with Client.open(transport, limits) as client:
                client.process = proc
                yield client
        finally:
            with trio.move_on_after(10) as scope:
                await proc.wait()
            if scope.cancelled_caught:
                proc.kill()
