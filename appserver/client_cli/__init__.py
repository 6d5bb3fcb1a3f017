"""`appserver-client`: use an appserver from a terminal (docs/client-cli.md).

    appserver-client send "hello" "/run ls"        # new thread (cwd: here), one turn, streamed
    appserver-client send --thread ID "/run make"   # continue a thread
    appserver-client watch ID                       # print its events until Ctrl-C
    appserver-client threads --search bug           # table of threads (--cursor for more)
    appserver-client read ID                        # a thread with its turns and items

Connection: `--url ws://HOST:PORT` / `wss://HOST:PORT` (with `--token-file PATH`) or
`--url unix://PATH`, else `$APPSERVER_URL`; by default the `appserver` already running on
the data dir (`--data-dir DIR`, else the server's default), found through the URL it records
in `DIR/appserver.lock`; when none runs, a private `appserver` started on stdio
(`--data-dir DIR` / `--in-memory` are passed to it, and win over `$APPSERVER_URL`). After
`send`, "continue with:" prints the command that continues the thread.

Approvals (`send`): with `--yes` every request is accepted. Otherwise each is asked as
`[y/N/a]` (y = accept, a = accept for the session, anything else = decline) on the
terminal: stdin when it is one, else the controlling terminal (`/dev/tty`), so a piped
message can still be approved. With no terminal at all, requests are declined with a
message on stderr, unless `--approve-from-stdin` is given: then one line is read from stdin
per request, answered as at the terminal (end of input = decline). The spinner is stopped
while a question is asked.

Output: human-readable, coloured when stdout is a terminal (not with NO_COLOR or
`--no-color`), with a spinner on stderr while a turn runs silently. `--json` prints every
message received from the server (notifications, server requests, results) as one JSON
object per line; `threads --json` and `read --json` print the one result.

Exit status: 0 success (turn completed); 1 turn failed or interrupted; 2 bad usage;
3 no connection (or it was lost); 4 thread not found; 5 another error from the server.
"""

from __future__ import annotations

from collections.abc import Sequence

import trio

from appserver.client import ClientError, ConnectionClosedError, RpcError
from appserver.client_cli.args import build_parser, check_args
from appserver.client_cli.commands import COMMANDS
from appserver.client_cli.common import (
    EXIT_CONNECT,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_SERVER,
    EXIT_USAGE,
    CliError,
)
from appserver.client_cli.render import error

__all__ = ["CliError", "build_parser", "main"]


def _find(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> BaseException | None:
    if isinstance(exc, kinds):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for sub in exc.exceptions:
            found = _find(sub, kinds)
            if found is not None:
                return found
    return None


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        check_args(args)
        code: int = trio.run(COMMANDS[args.command], args)
        return code
    except BaseException as exc:
        found = _find(exc, (CliError, RpcError, ClientError, KeyboardInterrupt, BrokenPipeError))
        if found is None:
            raise
        if isinstance(found, KeyboardInterrupt):
            return 130
        if isinstance(found, BrokenPipeError):  # e.g. `| head`
            return EXIT_OK
        if isinstance(found, RpcError):
            error(found.message)
            return _rpc_exit_code(found)
        if isinstance(found, CliError):
            error(str(found))
            return found.exit_code
        if isinstance(found, ConnectionClosedError):
            error(f"connection lost: {found}")
        else:
            error(str(found))
        return EXIT_CONNECT


_USAGE_KINDS = {"invalidThreadId", "invalidCursor", "invalidParams"}


def _rpc_exit_code(exc: RpcError) -> int:
    if exc.kind == "threadNotFound" or (
        exc.kind is None and exc.message.startswith("thread not found")
    ):
        return EXIT_NOT_FOUND
    if exc.kind in _USAGE_KINDS:
        return EXIT_USAGE
    return EXIT_SERVER
