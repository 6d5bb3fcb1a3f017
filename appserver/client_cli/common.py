"""Names shared by the `appserver-client` modules: program name, exit codes, CliError."""

from __future__ import annotations

from typing import Any

PROG = "appserver-client"
EXIT_OK = 0
EXIT_TURN_FAILED = 1
EXIT_ERROR = 2

Message = dict[str, Any]


class CliError(Exception):
    """Bad usage or an unusable connection: one line on stderr, exit 2."""
