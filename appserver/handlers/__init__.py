"""The method handlers, one module per area (threads, turns, ...). Each area module
defines small functions `(services, ctx, params) -> result` and a `METHODS` table;
`Handlers` is the connection's RequestHandler that dispatches to them."""

from __future__ import annotations

import platform
import sys
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import attrs

from appserver._version import __version__
from appserver.connection import Connection
from appserver.jsonrpc import ErrorResponse, Response
from appserver.protocol import errors, results
from appserver.protocol import types as t
from appserver.protocol.errors import InvalidParams
from appserver.requests import RequestContext

from . import (
    account,
    commands,
    config,
    fs,
    lifecycle,
    models,
    paging,
    search,
    special_turns,
    threads,
    turns,
)
from .common import Handler, Immediate, Services

AREAS = (
    threads,
    turns,
    paging,
    lifecycle,
    special_turns,
    account,
    config,
    models,
    fs,
    commands,
    search,
)

# The Codex release whose protocol appserver implements, then appserver's own version
# (PROTOCOL.md §3): SDKs gate features on the first word.
CODEX_PROTOCOL_VERSION = "0.171.0"
SERVER_VERSION = f"{CODEX_PROTOCOL_VERSION} (appserver {__version__})"


def _validate_client_name(name: str) -> None:
    if not 1 <= len(name) <= 128 or not name.isprintable():
        raise InvalidParams.field("clientInfo.name", "must be 1 to 128 printable characters")


class ClusterRouting(Protocol):
    """A cluster node's routing (appserver/cluster/routing.py): methods in `routed`, for
    a thread another node runs, go there; answers and disconnects of followers."""

    routed: frozenset[str]

    async def route(
        self,
        ctx: RequestContext,
        method: str,
        params: Any,
        local: Callable[[], Awaitable[Any]],
    ) -> Any: ...

    def on_client_response(self, conn: Connection, message: Response | ErrorResponse) -> bool: ...

    def on_disconnect(self, conn: Connection) -> None: ...


@attrs.define(eq=False)
class Handlers:
    services: Services
    methods: dict[str, Handler] = attrs.field(init=False)
    immediate: dict[str, Immediate] = attrs.field(init=False)
    cluster: ClusterRouting | None = None  # None: a single server

    def __attrs_post_init__(self) -> None:
        self.methods, self.immediate = {}, {}
        for area in AREAS:
            self.methods.update(area.METHODS)
            self.immediate.update(getattr(area, "IMMEDIATE", {}))

    def initialize(
        self, conn: Connection, params: t.InitializeParams
    ) -> results.InitializeResponse:
        info = params.client_info
        _validate_client_name(info.name)
        return results.InitializeResponse(
            user_agent=f"appserver/{__version__} ({info.name}/{info.version})",
            codex_home=self.services.codex_home,
            platform_family="windows" if sys.platform == "win32" else "unix",
            platform_os=platform.system().lower() or sys.platform,
            server_info=results.ServerInfo(name="appserver", version=SERVER_VERSION),
        )

    def answers_now(self, method: str) -> bool:
        return method in self.immediate

    def handle_now(self, ctx: RequestContext, method: str, params: Any) -> Any:
        return self.immediate[method](self.services, ctx, params)

    async def handle(self, ctx: RequestContext, method: str, params: Any) -> Any:
        if method in self.immediate:
            return self.handle_now(ctx, method, params)
        handler = self.methods.get(method)
        if handler is None:
            raise errors.MethodNotFound(f"Method not found: {method}")
        cluster = self.cluster
        if cluster is not None and method in cluster.routed:
            return await cluster.route(
                ctx, method, params, lambda: handler(self.services, ctx, params)
            )
        return await handler(self.services, ctx, params)

    async def handle_here(self, ctx: RequestContext, method: str, params: Any) -> Any:
        """A request forwarded by another node: run here, never routed again."""
        if method in self.immediate:
            return self.handle_now(ctx, method, params)
        handler = self.methods.get(method)
        if handler is None:
            raise errors.MethodNotFound(f"Method not found: {method}")
        return await handler(self.services, ctx, params)

    def on_client_response(self, conn: Connection, message: Response | ErrorResponse) -> None:
        if self.cluster is not None and self.cluster.on_client_response(conn, message):
            return
        self.services.registry.on_client_response(conn, message)

    def on_disconnect(self, conn: Connection) -> None:
        self.services.registry.on_disconnect(conn)
        if self.cluster is not None:
            self.cluster.on_disconnect(conn)


__all__ = ["ClusterRouting", "Handler", "Handlers", "Immediate", "Services"]
