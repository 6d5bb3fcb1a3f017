"""Connection setup: over --url, to the server running on the data dir, or to a spawned
stdio appserver.

Without --url (and without --in-memory) the client first reads the data dir's lock file
(appserver/datadir.py): when a server holds the data dir and records a listener URL
(`ws://` or `unix://`), the client talks to it; a URL that refuses connections is a stale
record (its server was killed) and is skipped, and so is a server whose `codexHome` is
another directory. Only when no running server is reachable does the client start its
own `appserver` on stdio, as before; if another server does hold the data dir, that one
exits 2 with `data dir DIR is in use by pid N`, which is shown.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shlex
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio
import trio_websocket

from appserver._version import __version__
from appserver.client import (
    Client,
    ConnectError,
    ConnectionClosedError,
    connect_websocket,
    spawn_stdio,
)
from appserver.client_cli.common import PROG, CliError, Unreachable
from appserver.datadir import Owner, default_data_dir, read_owner
from appserver.transports.websocket import WebSocketTransport

HANDSHAKE_SECONDS = 10.0
REASONS = {401: "unauthorized (check --token-file)", 403: "forbidden"}


class _Nobody(Exception):
    """Nothing accepts connections at a recorded URL (a stale record)."""


def _read_token(path: Path) -> str:
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise CliError(f"--token-file: cannot read {path}: {exc.strerror}") from None
    if not token:
        raise CliError(f"--token-file: {path} is empty")
    return token


def data_dir_of(args: argparse.Namespace) -> Path:
    """The data dir the client uses without --url, as the server would resolve it."""
    return Path(args.data_dir or default_data_dir()).expanduser().absolute()


def server_args(args: argparse.Namespace) -> list[str]:
    out = ["--log-level", "warning"]
    if args.in_memory:
        out.append("--in-memory")
    elif args.data_dir is not None:
        out += ["--data-dir", str(args.data_dir)]
    return out


def continue_command(args: argparse.Namespace, thread_id: str) -> str | None:
    """The `send` command line that continues `thread_id` the way this one connected
    (None with --in-memory: the thread is gone with the spawned server)."""
    if args.in_memory:
        return None
    words = [PROG, "send"]
    if args.url is not None:
        words += ["--url", args.url]
    elif args.data_dir is not None:
        words += ["--data-dir", str(data_dir_of(args))]
    if args.token_file is not None:
        words += ["--token-file", os.path.abspath(args.token_file)]
    words += ["--thread", thread_id]
    return f"{shlex.join(words)} MESSAGE"


@asynccontextmanager
async def connect(args: argparse.Namespace, *, event_seq: bool = False) -> AsyncIterator[Client]:
    """An initialized client: over --url, to the data dir's running server, or to a
    spawned stdio server. `event_seq`: with numbered events (PROTOCOL.md §13)."""
    token = _read_token(args.token_file) if args.token_file is not None else None
    async with contextlib.AsyncExitStack() as stack:
        if args.url is not None:
            try:
                client = await stack.enter_async_context(
                    open_url(args.url, token, args.connect_timeout)
                )
            except _Nobody as exc:
                raise Unreachable(str(exc)) from None
            await _initialize(client, event_seq)
        else:
            found = (
                None
                if args.in_memory
                else await _running(
                    stack, data_dir_of(args), token, args.connect_timeout, event_seq
                )
            )
            if found is None:
                found = await stack.enter_async_context(spawn_stdio(server_args(args)))
                await _initialize(found, event_seq)
            client = found
        yield client


async def _running(
    stack: contextlib.AsyncExitStack,
    data_dir: Path,
    token: str | None,
    handshake_seconds: float,
    event_seq: bool = False,
) -> Client | None:
    """A client of the server that holds `data_dir`, over a URL it recorded; None when
    there is none to reach."""
    owner, home = _record(data_dir)
    if owner is None:
        return None
    for url in owner.urls:
        attempt = contextlib.AsyncExitStack()
        try:
            client = await attempt.enter_async_context(open_url(url, token, handshake_seconds))
        except _Nobody:
            continue
        except CliError as exc:
            raise type(exc)(f"the appserver on {data_dir} (pid {owner.pid}): {exc}") from None
        try:
            result = await _initialize(client, event_seq)
        except BaseException:
            await attempt.aclose()
            raise
        if not isinstance(result, dict) or result.get("codexHome") != home:
            await attempt.aclose()  # another server now has that port
            continue
        await stack.enter_async_context(attempt)
        return client
    return None


def _record(data_dir: Path) -> tuple[Owner | None, str]:
    """What the lock file records, and the `codexHome` its server reports (local files:
    quick)."""
    return read_owner(data_dir), str(data_dir.resolve())


@asynccontextmanager
async def open_url(
    url: str, token: str | None, handshake_seconds: float = HANDSHAKE_SECONDS
) -> AsyncIterator[Client]:
    """A client over `ws://…`, `wss://…` (TLS, verified against the system's CAs) or
    `unix://PATH`; _Nobody when nothing listens there, Unreachable when the server refuses
    or the handshake does not finish within `handshake_seconds`."""
    if url.startswith("unix://"):
        async with _connect_unix(url.removeprefix("unix://")) as client:
            yield client
        return
    # A handshake that never ends (wss:// to a plain listener waits for a TLS answer that
    # never comes) is bounded; the deadline is lifted once connected.
    handshake = trio.CancelScope(deadline=trio.current_time() + handshake_seconds)
    with handshake:
        async with _open_websocket(url, token) as client:
            handshake.deadline = math.inf
            yield client
            return
    hint = " (is it serving TLS?)" if url.startswith("wss://") else ""
    raise Unreachable(f"cannot connect to {url}: no handshake within {handshake_seconds:g} s{hint}")


@asynccontextmanager
async def _open_websocket(url: str, token: str | None) -> AsyncIterator[Client]:
    try:
        cm = connect_websocket(url, token=token)
        client = await cm.__aenter__()
    except ConnectError as exc:
        status = exc.status_code
        if status is None:
            raise _Nobody(str(exc)) from None
        reason = REASONS.get(status, "")
        raise Unreachable(f"cannot connect to {url}: HTTP {status} {reason}".strip()) from None
    except (OSError, trio_websocket.HandshakeError) as exc:
        raise Unreachable(f"cannot connect to {url}: {_describe_connect(exc)}") from None
    try:
        yield client
    except BaseException as exc:
        if not await cm.__aexit__(type(exc), exc, exc.__traceback__):
            raise
    else:
        await cm.__aexit__(None, None, None)


@asynccontextmanager
async def _connect_unix(path: str) -> AsyncIterator[Client]:
    """The websocket protocol over a Unix socket (`appserver --listen unix://PATH`)."""
    try:
        stream = await trio.open_unix_socket(path)
    except OSError as exc:
        raise _Nobody(f"cannot connect to unix://{path}: {exc.strerror or exc}") from None
    async with trio.open_nursery() as nursery:
        try:
            ws = await trio_websocket.wrap_client_stream(nursery, stream, "localhost", "/")
        except trio_websocket.HandshakeError as exc:
            await stream.aclose()
            reason = _describe_connect(exc)
            raise Unreachable(f"cannot connect to unix://{path}: {reason}") from None
        try:
            async with Client.open(WebSocketTransport(ws, ping_interval=3600)) as client:
                yield client
        finally:
            with trio.CancelScope(shield=True):
                await ws.aclose()


def _describe_connect(exc: BaseException) -> str:
    if isinstance(exc, trio_websocket.ConnectionRejected):
        status = exc.status_code
        return f"HTTP {status} {REASONS.get(status, '')}".strip()
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    cause = exc.__cause__ or exc.__context__
    if cause is not None and cause is not exc:
        return _describe_connect(cause)
    return str(exc) or type(exc).__name__


async def _initialize(client: Client, event_seq: bool = False) -> Any:
    capabilities = {"appserverEventSeq": True} if event_seq else None
    try:
        return await client.initialize(PROG, __version__, capabilities=capabilities)
    except ConnectionClosedError:
        process = client.process
        if process is not None:
            with trio.move_on_after(5):
                await process.wait()
            raise Unreachable(f"the appserver exited (status {process.returncode})") from None
        raise Unreachable(f"the connection closed: {client.close_reason}") from None
