"""What a request handler sees of the connection it serves, and the one place exceptions
become JSON-RPC errors (ARCHITECTURE.md invariant 5). Split from connection.py, which
re-exports these names."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol

import attrs
import trio

from appserver import jsonrpc
from appserver.jsonrpc import ErrorResponse, Request, Response
from appserver.protocol import errors
from appserver.protocol.converter import structure_params, unstructure
from appserver.protocol.errors import InternalError, JsonRpcError
from appserver.protocol.experimental import check_experimental
from appserver.protocol.types import InitializeParams
from appserver.store.errors import StoreUnavailable

if TYPE_CHECKING:
    from appserver.connection import Connection

log = logging.getLogger("appserver.connection")


@attrs.define(eq=False)
class RequestContext:
    """One request being handled. A handler may `respond()` itself, to queue its response
    in the same synchronous step as other effects (e.g. a subscription, PROTOCOL.md
    §5.2) or before effects that must follow it (e.g. a broadcast)."""

    connection: Connection
    request_id: jsonrpc.RequestId
    responded: bool = False

    def respond(self, result: Any) -> None:
        if self.responded:
            raise RuntimeError(f"request {self.request_id!r} answered twice")
        self.responded = True
        self.connection.reply(jsonrpc.encode_response(self.request_id, unstructure(result)))


class RequestHandler(Protocol):
    def initialize(self, conn: Connection, params: InitializeParams) -> Any:
        """Synchronous: validate and answer initialize (the connection marks itself
        initialized in the same step, so no notification can precede the response)."""
        ...

    async def handle(self, ctx: RequestContext, method: str, params: Any) -> Any:
        """Run one initialized request with typed params; return the result (ignored
        when the handler answered with `ctx.respond`)."""
        ...

    def answers_now(self, method: str) -> bool:
        """Whether `method` is answered synchronously, from live state (`handle_now`)."""
        ...

    def handle_now(self, ctx: RequestContext, method: str, params: Any) -> Any:
        """Run one such request in the connection's inbound task: no task of its own, no
        wait, and not counted in flight."""
        ...

    def on_client_response(self, conn: Connection, message: Response | ErrorResponse) -> None:
        """An answer to a server→client request."""
        ...

    def on_disconnect(self, conn: Connection) -> None:
        """Synchronous cleanup when the connection ends (subscriptions, answer slots)."""
        ...


def error_from_exception(exc: BaseException, context: str) -> JsonRpcError:
    """The one exception-to-wire boundary (ARCHITECTURE.md invariant 5). Cancellation and
    process-level exceptions propagate; typed errors pass through; a store that could not
    do its part is -32603 `storeUnavailable` with its reason (§8.6); anything else is a
    bug: logged with its traceback and answered -32603."""
    if isinstance(exc, BaseExceptionGroup):
        cancelled, rest = exc.split((trio.Cancelled, KeyboardInterrupt, SystemExit))
        if cancelled is not None:
            raise exc
        assert rest is not None
        typed, _ = rest.split((JsonRpcError, StoreUnavailable))
        if typed is not None and len(typed.exceptions) == len(rest.exceptions) == 1:
            first = typed.exceptions[0]
            return error_from_exception(first, context)
    elif isinstance(exc, (trio.Cancelled, KeyboardInterrupt, SystemExit)):
        raise exc
    elif isinstance(exc, JsonRpcError):
        return exc
    elif isinstance(exc, StoreUnavailable):  # §8.6: not a bug; the store's reason is told
        log.warning("%s: the store failed: %s", context, exc.reason)
        return errors.store_unavailable(exc.reason)
    log.error("internal error in %s", context, exc_info=exc)
    return InternalError("Internal error", kind="internal")


async def answer(
    handler: RequestHandler, ctx: RequestContext, req: Request, params_type: type, opted_in: bool
) -> str | None:
    """Run one request; its encoded response or error, or None when the handler answered
    itself (`ctx.respond`). `opted_in`: the client's experimentalApi capability (§3)."""
    try:
        params = _typed_params(req, params_type, opted_in)
        return _result_text(ctx, req, await handler.handle(ctx, req.method, params))
    except BaseException as exc:
        return _error_text(ctx, req, exc)


def answer_now(
    handler: RequestHandler, ctx: RequestContext, req: Request, params_type: type, opted_in: bool
) -> str | None:
    """`answer` for a method the handler `answers_now`: synchronous, in the caller's task."""
    try:
        params = _typed_params(req, params_type, opted_in)
        return _result_text(ctx, req, handler.handle_now(ctx, req.method, params))
    except BaseException as exc:
        return _error_text(ctx, req, exc)


def _typed_params(req: Request, params_type: type, opted_in: bool) -> Any:
    params: Any = structure_params(req.params, params_type)
    check_experimental(req.method, req.params, opted_in=opted_in)
    return params


def _result_text(ctx: RequestContext, req: Request, result: Any) -> str | None:
    return None if ctx.responded else jsonrpc.encode_response(req.id, unstructure(result))


def _error_text(ctx: RequestContext, req: Request, exc: BaseException) -> str | None:
    """The error response (cancellation propagates), or None when already answered."""
    error = error_from_exception(exc, req.method)
    if ctx.responded:
        log.error("%s failed after answering: %r", req.method, error)
        return None
    return jsonrpc.encode_error(req.id, error)
