"""Connection setup: over --url (websocket) or to a spawned stdio appserver."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

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
from appserver.client_cli.common import PROG, CliError


def _read_token(path: Path) -> str:
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise CliError(f"--token-file: cannot read {path}: {exc.strerror}") from None
    if not token:
        raise CliError(f"--token-file: {path} is empty")
    return token


def server_args(args: argparse.Namespace) -> list[str]:
    out = ["--log-level", "warning"]
    if args.in_memory:
        out.append("--in-memory")
    elif args.data_dir is not None:
        out += ["--data-dir", str(args.data_dir)]
    return out


@asynccontextmanager
async def connect(args: argparse.Namespace) -> AsyncIterator[Client]:
    """An initialized client: over --url, or to a spawned stdio server."""
    if args.url is not None:
        token = _read_token(args.token_file) if args.token_file is not None else None
        try:
            cm = connect_websocket(args.url, token=token)
            client = await cm.__aenter__()
        except ConnectError as exc:
            status = exc.status_code
            if status is None:
                raise CliError(str(exc)) from None
            reason = {401: "unauthorized (check --token-file)", 403: "forbidden"}.get(status, "")
            raise CliError(
                f"cannot connect to {args.url}: HTTP {status} {reason}".strip()
            ) from None
        except (OSError, trio_websocket.HandshakeError) as exc:
            raise CliError(f"cannot connect to {args.url}: {_describe_connect(exc)}") from None
        try:
            await _initialize(client)
            yield client
        except BaseException as exc:
            if not await cm.__aexit__(type(exc), exc, exc.__traceback__):
                raise
        else:
            await cm.__aexit__(None, None, None)
    else:
        async with spawn_stdio(server_args(args)) as client:
            await _initialize(client)
            yield client


def _describe_connect(exc: BaseException) -> str:
    if isinstance(exc, trio_websocket.ConnectionRejected):
        status = exc.status_code
        reason = {401: "unauthorized (check --token-file)", 403: "forbidden"}.get(status, "")
        return f"HTTP {status} {reason}".strip()
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    cause = exc.__cause__ or exc.__context__
    if cause is not None and cause is not exc:
        return _describe_connect(cause)
    return str(exc) or type(exc).__name__


async def _initialize(client: Client) -> None:
    try:
        await client.initialize(PROG, __version__)
    except ConnectionClosedError:
        process = client.process
        if process is not None:
            with trio.move_on_after(5):
                await process.wait()
            raise CliError(f"the appserver exited (status {process.returncode})") from None
        raise CliError(f"the connection closed: {client.close_reason}") from None
