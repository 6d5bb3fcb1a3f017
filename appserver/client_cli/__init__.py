"""`appserver-client`: use an appserver from a terminal.

    appserver-client send "hello" "/run ls"        # new thread, one turn, streamed
    appserver-client send --thread ID "/run make"   # continue a thread
    appserver-client watch ID                       # print its events until Ctrl-C
    appserver-client threads --search bug           # table of threads
    appserver-client read ID                        # a thread with its turns and items

Connection: `--url ws://HOST:PORT` (with `--token-file PATH`) or `--url unix://PATH`;
by default the `appserver` already running on the data dir (`--data-dir DIR`, else the
server's default), found through the URL it records in `DIR/appserver.lock`; when none
runs, a private `appserver` started on stdio (`--data-dir DIR` / `--in-memory` are passed
to it). After `send`, "continue with:" prints the command that continues the thread.

Approvals (`send`): with `--yes` every request is accepted. Otherwise, when stdin is a
terminal, each is asked as `[y/N/a]` (y = accept, a = accept for the session, anything
else = decline). When stdin is not a terminal, requests are declined with a message on
stderr, unless `--approve-from-stdin` is given: then one line is read from stdin per
request, answered as at the terminal (end of input = decline).

Output: human-readable, coloured when stdout is a terminal (not with NO_COLOR or
`--no-color`), with a spinner on stderr while a turn runs silently. `--json` prints every
message received from the server (notifications, server requests, results) as one JSON
object per line; `threads --json` and `read --json` print the one result.

Exit status: 0 success (turn completed); 1 turn failed or interrupted; 2 bad usage, no
connection, or an error from the server (its message is printed).
"""

from __future__ import annotations

from collections.abc import Sequence

import trio

from appserver.client import ClientError, ConnectionClosedError, RpcError
from appserver.client_cli.args import build_parser, check_args
from appserver.client_cli.commands import COMMANDS
from appserver.client_cli.common import EXIT_ERROR, EXIT_OK, CliError
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
        elif isinstance(found, ConnectionClosedError):
            error(f"connection lost: {found}")
        else:
            error(str(found))
        return EXIT_ERROR
