"""appserver: a trio JSON-RPC server hosting AI-agent conversations for many clients."""

from appserver._version import __version__

__all__ = ["__version__"]
