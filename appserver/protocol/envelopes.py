"""The JSON-RPC 2.0 envelopes (PROTOCOL.md §1) as the Codex schemas describe them."""

from __future__ import annotations

from typing import Any

import attrs

from appserver.protocol.wire import RequestId, any_json


@attrs.frozen(kw_only=True)
class JSONRPCRequest:
    """A request that expects a response."""

    id: RequestId
    method: str
    params: Any = attrs.field(default=None, metadata=any_json())


@attrs.frozen(kw_only=True)
class JSONRPCNotification:
    """A notification which does not expect a response."""

    method: str
    params: Any = attrs.field(default=None, metadata=any_json())


@attrs.frozen(kw_only=True)
class JSONRPCResponse:
    """A successful (non-error) response to a request."""

    id: RequestId
    result: Any = attrs.field(default=None, metadata=any_json(required=True))


@attrs.frozen(kw_only=True)
class JSONRPCErrorError:
    code: int
    message: str
    data: Any = attrs.field(default=None, metadata=any_json())


@attrs.frozen(kw_only=True)
class JSONRPCError:
    """A response to a request that indicates an error occurred."""

    id: RequestId
    error: JSONRPCErrorError


JSONRPCMessage = JSONRPCRequest | JSONRPCNotification | JSONRPCResponse | JSONRPCError
