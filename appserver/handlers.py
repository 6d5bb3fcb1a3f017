"""One function per method: validates what the types cannot, then calls threads/ and
store/. `Handlers` is the connection's RequestHandler."""

from __future__ import annotations

import logging
import platform
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import attrs

from appserver._version import __version__
from appserver.connection import Connection
from appserver.jsonrpc import ErrorResponse, Response
from appserver.protocol import errors
from appserver.protocol.errors import InvalidParams
from appserver.protocol.types import InitializeParams, InitializeResult

log = logging.getLogger("appserver.handlers")

Handler = Callable[[Connection, Any], Awaitable[Any]]


def _validate_client_name(name: str) -> None:
    if not 1 <= len(name) <= 128 or not name.isprintable():
        raise InvalidParams.field("clientInfo.name", "must be 1 to 128 printable characters")


@attrs.define(eq=False)
class Handlers:
    codex_home: str
    methods: dict[str, Handler] = attrs.Factory(dict)

    def initialize(self, conn: Connection, params: InitializeParams) -> InitializeResult:
        info = params.client_info
        _validate_client_name(info.name)
        return InitializeResult(
            user_agent=f"appserver/{__version__} ({info.name}/{info.version})",
            codex_home=self.codex_home,
            platform_family="windows" if sys.platform == "win32" else "unix",
            platform_os=platform.system().lower() or sys.platform,
        )

    async def handle(self, conn: Connection, method: str, params: Any) -> Any:
        handler = self.methods.get(method)
        if handler is None:
            raise errors.MethodNotFound(f"Method not implemented yet: {method}")
        return await handler(conn, params)

    def on_client_response(self, conn: Connection, message: Response | ErrorResponse) -> None:
        log.info(
            "ignoring a response to unknown request %r from connection %d", message.id, conn.id
        )

    def on_disconnect(self, conn: Connection) -> None:
        pass
