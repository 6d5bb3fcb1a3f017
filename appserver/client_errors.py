"""What the Python client (client.py) raises, and the server requests it hands out."""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["ClientError", "ConnectError", "ConnectionClosedError", "RpcError", "ServerRequest"]


class ClientError(Exception):
    """Root of client-side errors."""


class ConnectionClosedError(ClientError):
    """The connection ended before the awaited answer or message arrived."""


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
