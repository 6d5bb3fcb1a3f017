"""Names shared by the `appserver-client` modules: program name, exit codes, CliError."""

from __future__ import annotations

from typing import Any

PROG = "appserver-client"
EXIT_OK = 0
EXIT_TURN_FAILED = 1  # the turn failed or was interrupted
EXIT_USAGE = 2  # bad usage: arguments, --token-file, an id or cursor of the wrong form
EXIT_CONNECT = 3  # no connection to a server, or it was lost
EXIT_NOT_FOUND = 4  # the thread does not exist
EXIT_SERVER = 5  # any other error answer from the server (its message is printed)
EXIT_ERROR = EXIT_USAGE

EXIT_CODES_HELP = f"""exit status:
  {EXIT_OK}  success (for send: the turn completed)
  {EXIT_TURN_FAILED}  the turn failed or was interrupted
  {EXIT_USAGE}  bad usage (arguments, --token-file, a malformed id or cursor)
  {EXIT_CONNECT}  cannot connect to the server, or the connection was lost
  {EXIT_NOT_FOUND}  thread not found
  {EXIT_SERVER}  another error from the server (its message is printed)"""

Message = dict[str, Any]


class CliError(Exception):
    """Bad usage: one line on stderr, exit 2."""

    exit_code = EXIT_USAGE


class Unreachable(CliError):
    """No usable connection to a server: one line on stderr, exit 3."""

    exit_code = EXIT_CONNECT
