"""Command-line parsing and validation for `appserver-client`."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import NoReturn

from appserver._version import __version__
from appserver.client_cli.common import PROG, CliError


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


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    conn = common.add_argument_group("connection")
    conn.add_argument(
        "--url",
        metavar="URL",
        help="ws://HOST:PORT or unix://PATH of a running appserver (default: the one "
        "running on the data dir, else a private one started on stdio)",
    )
    conn.add_argument(
        "--token-file", type=Path, metavar="PATH", help="bearer token for the server's ws:// URL"
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

    p = _Parser(prog=PROG, description="Talk to an appserver from a terminal.")
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    send = sub.add_parser(
        "send", parents=[common], help="send a message as a turn and stream the answer"
    )
    send.add_argument("--thread", metavar="ID", help="continue this thread (default: a new one)")
    send.add_argument("--cwd", metavar="DIR", help="working directory of a new thread")
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

    watch = sub.add_parser("watch", parents=[common], help="print a thread's events until Ctrl-C")
    watch.add_argument("thread_id", metavar="THREAD_ID")
    watch.add_argument(
        "--until-turn-completed", action="store_true", help="stop after the next turn ends"
    )

    threads = sub.add_parser("threads", parents=[common], help="list threads")
    threads.add_argument("--archived", action="store_true", help="only archived threads")
    threads.add_argument("--limit", type=_positive_int, default=25, metavar="N")
    threads.add_argument("--search", metavar="TEXT", help="text in the name or preview")

    read = sub.add_parser("read", parents=[common], help="show a thread with its turns")
    read.add_argument("thread_id", metavar="THREAD_ID")
    return p


def check_args(args: argparse.Namespace) -> None:
    if args.url is not None:
        if not args.url.startswith(("ws://", "wss://", "unix://")):
            raise CliError(f"--url: expected ws://HOST:PORT or unix://PATH, got {args.url!r}")
        if args.data_dir is not None or args.in_memory:
            raise CliError("--data-dir and --in-memory choose a server; not with --url")
    elif args.token_file is not None and args.in_memory:
        raise CliError("--token-file is for a running server; not with --in-memory")
    if args.command == "send":
        if args.message == ["-"] and args.approve_from_stdin:
            raise CliError("the message cannot come from stdin with --approve-from-stdin")
        if args.cwd is not None:
            args.cwd = os.path.abspath(args.cwd)
