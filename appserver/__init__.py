"""appserver: a trio JSON-RPC server hosting AI-agent conversations for many clients.

    from appserver import ServerConfig, open_server

The server API is imported lazily, so `appserver.protocol` and `appserver.jsonrpc` stay
free of trio (the sans-IO layers) when imported on their own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from appserver._version import __version__

if TYPE_CHECKING:
    from appserver.server import Server, ServerConfig, open_server

__all__ = ["Server", "ServerConfig", "__version__", "open_server"]


def __getattr__(name: str) -> Any:
    if name in ("Server", "ServerConfig", "open_server"):
        from appserver import server

        return getattr(server, name)
    raise AttributeError(f"module 'appserver' has no attribute {name!r}")
