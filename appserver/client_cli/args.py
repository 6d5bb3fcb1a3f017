"""Command-line parsing and validation for `appserver-client`."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import NoReturn

from appserver._version import __version__
from appserver.client_cli.common import EXIT_CODES_HELP, PROG, CliError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise CliError(f"{message} (see {self.prog} --help)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


EXAMPLES = f"""examples:
  {PROG} send "/run ls"                  # a new thread in this directory, one turn
  echo "summarize README.md" | {PROG} send -   # message from a pipe; approvals on the terminal
  {PROG} send --thread ID "and now?"     # continue a thread
  {PROG} watch ID                        # follow a thread until Ctrl-C
  {PROG} threads --search bug            # list threads; --cursor C for the next page
  {PROG} read ID                         # a thread with its turns
  APPSERVER_URL=ws://127.0.0.1:8765 {PROG} threads   # a server elsewhere

environment:
  APPSERVER_URL   default for --url (not used with --data-dir or --in-memory)
  NO_COLOR        no colours

{EXIT_CODES_HELP}"""

URL_ENV = "APPSERVER_URL"


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    conn = common.add_argument_group("connection")
    conn.add_argument(
        "--url",
        metavar="URL",
        help="ws://HOST:PORT, wss://HOST:PORT or unix://PATH of a running appserver "
        f"(default: ${URL_ENV}, else the one running on the data dir, else a private one "
        "started on stdio)",
    )
    conn.add_argument(
        "--token-file", type=Path, metavar="PATH", help="bearer token for the server's ws:// URL"
    )
    conn.add_argument(
        "--connect-timeout",
        type=_positive_float,
        default=10.0,
        metavar="SECONDS",
        help="give up on a websocket handshake after this long (default: 10)",
    )
    store = conn.add_mutually_exclusive_group()
    store.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="data dir whose running server to use, or of the spawned stdio server",
    )
    store.add_argument(
        "--in-memory", action="store_true", help="the spawned stdio server keeps nothing"
    )
    output = common.add_argument_group("output")
    output.add_argument("--json", action="store_true", help="one JSON object per line")
    output.add_argument("--no-color", action="store_true", help="no ANSI colours")

    p = _Parser(
        prog=PROG,
        description="Talk to an appserver from a terminal.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    send = sub.add_parser(
        "send",
        parents=[common],
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="send a message as a turn and stream the answer",
    )
    send.add_argument("--thread", metavar="ID", help="continue this thread (default: a new one)")
    send.add_argument(
        "--cwd",
        metavar="DIR",
        help="working directory of a new thread (default: the current directory)",
    )
    approvals = send.add_mutually_exclusive_group()
    approvals.add_argument("-y", "--yes", action="store_true", help="accept every approval")
    approvals.add_argument(
        "--approve-from-stdin",
        action="store_true",
        help="read one answer line (y/n/a) per approval from stdin when it is not a terminal",
    )
    send.add_argument(
        "message", nargs="+", metavar="MESSAGE", help="words of the message; - = stdin"
    )

    watch = sub.add_parser(
        "watch",
        parents=[common],
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="print a thread's events until Ctrl-C",
    )
    watch.add_argument("thread_id", metavar="THREAD_ID")
    watch.add_argument(
        "--until-turn-completed", action="store_true", help="stop after the next turn ends"
    )

    threads = sub.add_parser(
        "threads",
        parents=[common],
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="list threads",
    )
    threads.add_argument("--archived", action="store_true", help="only archived threads")
    threads.add_argument("--limit", type=_positive_int, default=25, metavar="N")
    threads.add_argument("--search", metavar="TEXT", help="text in the name or preview")
    threads.add_argument(
        "--cursor", metavar="CURSOR", help="the page after this cursor (printed under a page)"
    )
    threads.add_argument("--all", action="store_true", help="every page, one after another")

    read = sub.add_parser(
        "read",
        parents=[common],
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="show a thread with its turns",
    )
    read.add_argument("thread_id", metavar="THREAD_ID")
    return p


def check_args(args: argparse.Namespace) -> None:
    source = "--url"
    if args.url is None and args.data_dir is None and not args.in_memory:
        from_env = os.environ.get(URL_ENV, "").strip()
        if from_env:
            args.url, source = from_env, f"${URL_ENV}"
    if args.url is not None:
        if not args.url.startswith(("ws://", "wss://", "unix://")):
            raise CliError(
                f"{source}: expected ws://HOST:PORT, wss://HOST:PORT or unix://PATH, "
                f"got {args.url!r}"
            )
        if args.data_dir is not None or args.in_memory:
            raise CliError("--data-dir and --in-memory choose a server; not with --url")
    elif args.token_file is not None and args.in_memory:
        raise CliError("--token-file is for a running server; not with --in-memory")
    if args.command == "send":
        if args.message == ["-"] and args.approve_from_stdin:
            raise CliError("the message cannot come from stdin with --approve-from-stdin")
        args.cwd = os.path.abspath(args.cwd) if args.cwd is not None else os.getcwd()
    if args.command == "threads" and args.all and args.cursor is not None:
        raise CliError("--all starts at the first page; not with --cursor")
