"""What the Python client (client.py) raises, and the server requests it hands out."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import attrs
import trio

__all__ = [
    "ClientError",
    "ClientOverflow",
    "ConnectError",
    "ConnectionClosedError",
    "RpcError",
    "ServerRequest",
    "single_errors",
]


class ClientError(Exception):
    """Root of client-side errors."""


class ConnectionClosedError(ClientError):
    """The connection ended before the awaited answer or message arrived."""


class ClientOverflow(ConnectionClosedError):
    """The client's buffer of unread notifications and server requests passed its bound
    (`BufferLimits`), so the client closed the connection (code 1008, as the server drops a
    slow consumer): raised from the stream, every waiting `next_*`, every pending request
    and every later send. `limit` is "messages" or "bytes"; `messages` / `bytes` are what
    was buffered, unread, when the message that did not fit arrived."""

    def __init__(self, limit: str, bound: int, messages: int, size: int) -> None:
        super().__init__(
            f"client buffer overflow: {messages} unread messages ({size} bytes) buffered, "
            f"the next would pass BufferLimits.{limit}={bound}; the client closed the "
            "connection. Take messages as they come (`async for message in client`, "
            "`drain_notifications()`) or raise the bound (`buffer_limits=`)"
        )
        self.limit = limit
        self.bound = bound
        self.messages = messages
        self.bytes = size


class ConnectError(ClientError):
    """The server could not be reached or refused the connection (e.g. HTTP 401/403)."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class RpcError(ClientError):
    """The server answered a request with a JSON-RPC error."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.data = data

    @property
    def kind(self) -> str | None:
        return self.data.get("kind") if isinstance(self.data, dict) else None


@attrs.frozen
class ServerRequest:
    id: int | str
    method: str
    params: Any


# --- one exception out of nursery groups -----------------------------------------------


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out


def collapse(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """What to raise for a nursery's group (the policy of trio-websocket's
    `open_websocket`): a KeyboardInterrupt anywhere in it wins; else, with trio.Cancelled
    set aside, a single exception is raised alone; only Cancelled -> the first of them;
    two or more real errors stay grouped (the group itself)."""
    leaves = _leaves(group)
    for exc in leaves:
        if isinstance(exc, KeyboardInterrupt):
            return exc
    real = [exc for exc in leaves if not isinstance(exc, trio.Cancelled)]
    if len(real) == 1:
        return real[0]
    if not real and leaves:
        return leaves[0]
    return group


def _raise(exc: BaseException) -> NoReturn:
    """Raise `exc` keeping its own __context__ (not the group being handled)."""
    __tracebackhide__ = True
    context, suppress = exc.__context__, exc.__suppress_context__
    try:
        raise exc
    finally:
        exc.__context__, exc.__suppress_context__ = context, suppress
        del exc, context


@contextmanager
def single_errors() -> Iterator[None]:
    """Let one error leave a block of nurseries as itself, not in ExceptionGroups (see
    `collapse`); used by `connect_websocket`, `spawn_stdio`, `open_server` and
    `Server.connect`."""
    try:
        yield
    except BaseExceptionGroup as group:
        single = collapse(group)
        if single is group:
            raise
        if isinstance(single, KeyboardInterrupt):
            single.__suppress_context__ = True  # Ctrl-C: a short traceback
            single.__traceback__ = None
        _raise(single)
