"""The error model of PROTOCOL.md §1.1: one root, one class per JSON-RPC error code.

Every error the server sends carries `data.kind`. Raise these anywhere below the request
boundary; the connection turns them into error responses (ARCHITECTURE.md invariant 5).
"""

from __future__ import annotations

from typing import Any, ClassVar

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
OVERLOADED = -32001

#: `data.retryAfterMs` of every -32001 (PROTOCOL.md §1.1, §2.4): a connection over
#: --max-inflight frees a slot as soon as one of its requests is answered, which for most
#: methods takes milliseconds; a quarter second lets a retrying SDK back off without
#: stalling a user.
RETRY_AFTER_MS = 250


class AppServerError(Exception):
    """Root of every appserver error."""


class JsonRpcError(AppServerError):
    """An error that becomes a JSON-RPC error response."""

    code: ClassVar[int] = INTERNAL_ERROR
    default_kind: ClassVar[str] = "internal"

    def __init__(self, message: str, *, kind: str | None = None, **data: Any) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind or self.default_kind
        self.extra = data

    @property
    def data(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.extra}

    def to_wire(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "data": self.data}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, kind={self.kind!r})"


class ParseError(JsonRpcError):
    code = PARSE_ERROR
    default_kind = "parseError"


class InvalidRequest(JsonRpcError):
    code = INVALID_REQUEST
    default_kind = "invalidRequest"


class MethodNotFound(JsonRpcError):
    code = METHOD_NOT_FOUND
    default_kind = "methodNotFound"


class InvalidParams(JsonRpcError):
    """Params that do not match the method's shape; `errors` lists `{path, message}`."""

    code = INVALID_PARAMS
    default_kind = "invalidParams"

    def __init__(
        self,
        message: str,
        *,
        errors: list[dict[str, str]] | None = None,
        kind: str | None = None,
        **data: Any,
    ) -> None:
        super().__init__(message, kind=kind, errors=errors or [], **data)

    @classmethod
    def field(cls, path: str, message: str) -> InvalidParams:
        return cls(
            f"Invalid params: {path}: {message}", errors=[{"path": path, "message": message}]
        )


class InternalError(JsonRpcError):
    code = INTERNAL_ERROR
    default_kind = "internal"


class Overloaded(JsonRpcError):
    code = OVERLOADED
    default_kind = "overloaded"


# Semantic -32600 errors (PROTOCOL.md §1.1).
def not_initialized() -> InvalidRequest:
    return InvalidRequest("Not initialized", kind="notInitialized")


def already_initialized() -> InvalidRequest:
    return InvalidRequest("Already initialized", kind="alreadyInitialized")


def message_too_large(size: int, limit: int) -> InvalidRequest:
    return InvalidRequest(
        f"message too large: {size} bytes exceeds the limit of {limit} bytes",
        kind="messageTooLarge",
    )


def thread_not_found(thread_id: str) -> InvalidRequest:
    return InvalidRequest(f"thread not found: {thread_id}", kind="threadNotFound")


def thread_not_loaded(thread_id: str) -> InvalidRequest:
    return InvalidRequest(
        f"thread not loaded: {thread_id} (resume it first)", kind="threadNotLoaded"
    )


def thread_archived(thread_id: str) -> InvalidRequest:
    return InvalidRequest(f"thread is archived: {thread_id}", kind="threadArchived")


def thread_closing(thread_id: str) -> InvalidRequest:
    return InvalidRequest(f"thread is closing: {thread_id}", kind="threadClosing")


def turn_already_active(thread_id: str, turn_id: str) -> InvalidRequest:
    return InvalidRequest(
        f"a turn is already running on thread {thread_id}: {turn_id}", kind="turnAlreadyActive"
    )


def turn_not_active(turn_id: str) -> InvalidRequest:
    return InvalidRequest(f"turn is not running: {turn_id}", kind="turnNotActive")


def invalid_cursor(cursor: str) -> InvalidRequest:
    return InvalidRequest(f"invalid cursor: {cursor!r}", kind="invalidCursor")


def invalid_thread_id(thread_id: str) -> InvalidRequest:
    return InvalidRequest(f"invalid thread id (not a UUID): {thread_id!r}", kind="invalidThreadId")


def path_outside_workspace(path: str) -> InvalidRequest:
    return InvalidRequest(f"path outside workspace: {path}", kind="pathOutsideWorkspace")


def overloaded(retry_after_ms: int = RETRY_AFTER_MS) -> Overloaded:
    return Overloaded("Server overloaded; retry later.", retryAfterMs=retry_after_ms)


def store_unavailable(reason: str) -> InternalError:
    """-32603 `storeUnavailable` (§8.6): a write this request needed failed; `reason` is
    the store's."""
    return InternalError(reason, kind="storeUnavailable")
