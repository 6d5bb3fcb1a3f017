"""`appserver-client`: use an appserver from a terminal.

    appserver-client send "hello" "/run ls"        # new thread, one turn, streamed
    appserver-client send --thread ID "/run make"   # continue a thread
    appserver-client watch ID                       # print its events until Ctrl-C
    appserver-client threads --search bug           # table of threads
    appserver-client read ID                        # a thread with its turns and items

Connection: `--url ws://HOST:PORT` (with `--token-file PATH`) or, by default, a private
`appserver` started on stdio (`--data-dir DIR` / `--in-memory` are passed to it).

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

import argparse
import contextlib
import itertools
import json
import math
import os
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, NoReturn, TextIO

import attrs
import trio
import trio_websocket

from appserver._version import __version__
from appserver.client import (
    Client,
    ClientError,
    ConnectError,
    ConnectionClosedError,
    RpcError,
    connect_websocket,
    spawn_stdio,
)

PROG = "appserver-client"
EXIT_OK = 0
EXIT_TURN_FAILED = 1
EXIT_ERROR = 2

Message = dict[str, Any]


class CliError(Exception):
    """Bad usage or an unusable connection: one line on stderr, exit 2."""


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
    conn.add_argument("--url", metavar="URL", help="ws://HOST:PORT of a running appserver")
    conn.add_argument("--token-file", type=Path, metavar="PATH", help="bearer token for --url")
    store = conn.add_mutually_exclusive_group()
    store.add_argument(
        "--data-dir", type=Path, metavar="DIR", help="data dir of the spawned stdio server"
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
        if not args.url.startswith(("ws://", "wss://")):
            raise CliError(f"--url: expected ws://HOST:PORT, got {args.url!r}")
        if args.data_dir is not None or args.in_memory:
            raise CliError("--data-dir and --in-memory configure a spawned server; not with --url")
    elif args.token_file is not None:
        raise CliError("--token-file needs --url")
    if args.command == "send":
        if args.message == ["-"] and args.approve_from_stdin:
            raise CliError("the message cannot come from stdin with --approve-from-stdin")
        if args.cwd is not None:
            args.cwd = os.path.abspath(args.cwd)


# --- output ----------------------------------------------------------------------------

_COLORS = {
    "bold": "1",
    "dim": "2",
    "red": "31",
    "green": "32",
    "yellow": "33",
    "blue": "34",
    "magenta": "35",
    "cyan": "36",
}


def color_enabled(stream: TextIO, no_color_flag: bool) -> bool:
    return not no_color_flag and not os.environ.get("NO_COLOR") and stream.isatty()


@attrs.define
class Spinner:
    """A spinner on stderr while a turn runs and nothing is printed (terminals only)."""

    enabled: bool
    stream: TextIO = sys.stderr
    running: bool = False
    shown: bool = False
    last_output: float = 0.0

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False

    def touch(self) -> None:
        self.clear()
        self.last_output = time.monotonic()

    async def run(self, can_show: Callable[[], bool]) -> None:
        if not self.enabled:
            return
        for frame in itertools.cycle("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"):
            await trio.sleep(0.1)
            idle = time.monotonic() - self.last_output > 0.4
            if self.running and idle and can_show():
                self.stream.write(f"\r{frame} working…")
                self.stream.flush()
                self.shown = True


@attrs.define
class Output:
    """Writes human-readable text to stdout, tracking whether a line is open."""

    color: bool
    stream: TextIO = sys.stdout
    spinner: Spinner = attrs.Factory(lambda: Spinner(False))
    at_line_start: bool = True

    def paint(self, text: str, *styles: str) -> str:
        if not self.color or not styles or not text:
            return text
        codes = ";".join(_COLORS[s] for s in styles)
        return f"\x1b[{codes}m{text}\x1b[0m"

    def write(self, text: str, *styles: str) -> None:
        if not text:
            return
        self.spinner.touch()
        self.stream.write(self.paint(text, *styles))
        self.stream.flush()
        self.at_line_start = text.endswith("\n")

    def end_line(self) -> None:
        if not self.at_line_start:
            self.write("\n")

    def line(self, text: str = "", *styles: str) -> None:
        self.end_line()
        self.write(text + "\n", *styles)


def print_json(message: Any) -> None:
    sys.stdout.write(json.dumps(message, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def error(text: str) -> None:
    print(f"{PROG}: error: {text}", file=sys.stderr, flush=True)


def human_time(ts: int, now: float | None = None) -> str:
    delta = (time.time() if now is None else now) - ts
    if delta < 60:
        return "just now"
    if delta < 3600:
        return f"{int(delta // 60)}m ago"
    if delta < 86400:
        return f"{int(delta // 3600)}h ago"
    if delta < 7 * 86400:
        return f"{int(delta // 86400)}d ago"
    return time.strftime("%Y-%m-%d", time.localtime(ts))


def truncate(text: str, width: int) -> str:
    text = " ".join(text.split())
    if len(text) <= width:
        return text
    return text[: max(0, width - 1)] + "…"


def status_text(status: Message) -> str:
    kind = str(status.get("type", "?"))
    flags = status.get("activeFlags") or []
    return f"{kind} ({', '.join(flags)})" if flags else kind


def _input_text(content: list[Message]) -> str:
    parts = []
    for entry in content:
        if entry.get("type") == "text":
            parts.append(str(entry.get("text", "")))
        elif entry.get("type") == "image":
            parts.append(f"[image {entry.get('url')}]")
        elif entry.get("type") == "localImage":
            parts.append(f"[image {entry.get('path')}]")
    return "\n".join(parts)


@attrs.define
class Renderer:
    """Prints turn and item events readably. Streamed text is printed as it arrives; an
    item whose deltas were not seen (a snapshot, a late join) is printed whole."""

    out: Output
    echo_user: bool = True
    streamed: dict[str, bool] = attrs.Factory(dict)
    items: dict[str, Message] = attrs.Factory(dict)

    def turn_started(self, turn: Message) -> None:
        self.out.line(f"── turn {turn.get('id')}", "dim")

    def turn_completed(self, turn: Message) -> None:
        status = turn.get("status")
        if status == "completed":
            self.out.line("── turn completed", "green")
        elif status == "failed":
            message = (turn.get("error") or {}).get("message", "")
            self.out.line(f"── turn failed: {message}", "red", "bold")
        else:
            self.out.line(f"── turn {status}", "yellow")

    def item_started(self, item: Message) -> None:
        item_id = str(item.get("id"))
        self.items[item_id] = item
        self.streamed[item_id] = False
        kind = item.get("type")
        if kind == "userMessage" and self.echo_user:
            text = _input_text(item.get("content") or [])
            self.out.line("> " + text.replace("\n", "\n> "), "bold")
        elif kind == "commandExecution":
            self.out.line(f"$ {item.get('command')}", "cyan", "bold")
        elif kind == "fileChange":
            for change in item.get("changes") or []:
                kind_name = (change.get("kind") or {}).get("type", "?")
                self.out.line(f"✎ {kind_name} {change.get('path')}", "yellow", "bold")
                self.diff(str(change.get("diff") or ""))

    def diff(self, diff: str) -> None:
        for line in diff.splitlines():
            if line.startswith(("+++", "---")):
                self.out.line(line, "bold")
            elif line.startswith("+"):
                self.out.line(line, "green")
            elif line.startswith("-"):
                self.out.line(line, "red")
            elif line.startswith("@@"):
                self.out.line(line, "cyan")
            else:
                self.out.line(line)

    def delta(self, method: str, params: Message) -> None:
        item_id = str(params.get("itemId"))
        text = str(params.get("delta", ""))
        first = not self.streamed.get(item_id, False)
        self.streamed[item_id] = True
        if method == "item/agentMessage/delta":
            if first:
                self.out.end_line()
            self.out.write(text)
        elif method == "item/reasoning/summaryTextDelta":
            if first:
                self.out.end_line()
                self.out.write("thinking: ", "magenta", "dim")
            self.out.write(text, "dim")
        elif method == "item/commandExecution/outputDelta":
            self.out.write(text)
        elif method == "item/fileChange/outputDelta":
            self.out.write(text, "dim")

    def item_completed(self, item: Message) -> None:
        item_id = str(item.get("id"))
        streamed = self.streamed.pop(item_id, False)
        self.items.pop(item_id, None)
        kind = item.get("type")
        if kind == "agentMessage":
            if not streamed:
                self.out.line(str(item.get("text", "")))
            self.out.end_line()
        elif kind == "reasoning":
            if not streamed:
                summary = " ".join(item.get("summary") or [])
                self.out.end_line()
                self.out.write("thinking: ", "magenta", "dim")
                self.out.write(summary + "\n", "dim")
            self.out.end_line()
        elif kind == "commandExecution":
            if not streamed and item.get("aggregatedOutput"):
                self.out.write(str(item["aggregatedOutput"]))
            self.out.end_line()
            status, code = item.get("status"), item.get("exitCode")
            took = item.get("durationMs")
            took_text = f" in {took} ms" if took is not None else ""
            if status == "completed":
                self.out.line(f"✓ exit {code}{took_text}", "green", "dim")
            elif status == "failed":
                self.out.line(f"✗ failed (exit {code}){took_text}", "red")
            else:
                self.out.line(f"✗ {status}", "yellow")
        elif kind == "fileChange":
            self.out.end_line()
            status = item.get("status")
            style = (
                "green" if status == "completed" else "yellow" if status == "declined" else "red"
            )
            self.out.line(f"{'✓' if status == 'completed' else '✗'} file change {status}", style)

    def item(self, item: Message) -> None:
        """A complete item from a snapshot."""
        self.item_started(item)
        self.item_completed(item)

    def approval_summary(self, method: str, params: Message) -> str:
        if method == "item/commandExecution/requestApproval":
            return f"run `{params.get('command')}` in {params.get('cwd')}"
        item = self.items.get(str(params.get("itemId")), {})
        paths = [str(c.get("path")) for c in item.get("changes") or []]
        return f"change {', '.join(paths) or 'files'}"


# --- connection ------------------------------------------------------------------------


def _read_token(path: Path) -> str:
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise CliError(f"--token-file: cannot read {path}: {exc.strerror}") from None
    if not token:
        raise CliError(f"--token-file: {path} is empty")
    return token


def server_args(args: argparse.Namespace) -> list[str]:
    out = ["--log-level", "warning"]
    if args.in_memory:
        out.append("--in-memory")
    elif args.data_dir is not None:
        out += ["--data-dir", str(args.data_dir)]
    return out


@asynccontextmanager
async def connect(args: argparse.Namespace) -> AsyncIterator[Client]:
    """An initialized client: over --url, or to a spawned stdio server."""
    if args.url is not None:
        token = _read_token(args.token_file) if args.token_file is not None else None
        try:
            cm = connect_websocket(args.url, token=token)
            client = await cm.__aenter__()
        except ConnectError as exc:
            status = exc.status_code
            if status is None:
                raise CliError(str(exc)) from None
            reason = {401: "unauthorized (check --token-file)", 403: "forbidden"}.get(status, "")
            raise CliError(
                f"cannot connect to {args.url}: HTTP {status} {reason}".strip()
            ) from None
        except (OSError, trio_websocket.HandshakeError) as exc:
            raise CliError(f"cannot connect to {args.url}: {_describe_connect(exc)}") from None
        try:
            await _initialize(client)
            yield client
        except BaseException as exc:
            if not await cm.__aexit__(type(exc), exc, exc.__traceback__):
                raise
        else:
            await cm.__aexit__(None, None, None)
    else:
        async with spawn_stdio(server_args(args)) as client:
            await _initialize(client)
            yield client


def _describe_connect(exc: BaseException) -> str:
    if isinstance(exc, trio_websocket.ConnectionRejected):
        status = exc.status_code
        reason = {401: "unauthorized (check --token-file)", 403: "forbidden"}.get(status, "")
        return f"HTTP {status} {reason}".strip()
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    cause = exc.__cause__ or exc.__context__
    if cause is not None and cause is not exc:
        return _describe_connect(cause)
    return str(exc) or type(exc).__name__


async def _initialize(client: Client) -> None:
    try:
        await client.initialize(PROG, __version__)
    except ConnectionClosedError:
        process = client.process
        if process is not None:
            with trio.move_on_after(5):
                await process.wait()
            raise CliError(f"the appserver exited (status {process.returncode})") from None
        raise CliError(f"the connection closed: {client.close_reason}") from None


# --- event pump ------------------------------------------------------------------------


@attrs.define(eq=False)
class Events:
    """Every message the client receives, in arrival order, as one stream.

    `Client` buffers notifications and server requests apart; its `observer` sees both in
    order, so it feeds this channel (and prints raw JSON lines with --json)."""

    client: Client
    json_out: bool
    send: trio.MemorySendChannel[Message]
    receive: trio.MemoryReceiveChannel[Message]
    arrived: trio.Event = attrs.Factory(trio.Event)

    @classmethod
    def attach(cls, client: Client, *, json_out: bool) -> Events:
        send, receive = trio.open_memory_channel[Message](math.inf)
        events = cls(client, json_out, send, receive)
        client.observer = events._observe
        return events

    def _observe(self, message: Message, method: str | None) -> None:
        if self.json_out and method != "initialize":
            print_json(message)
        if "method" in message:
            self.send.send_nowait(message)
            self.arrived.set()
            self.arrived = trio.Event()

    async def next(self) -> Message:
        """The next notification or server request; ConnectionClosedError once the
        connection has closed and every message received before has been taken."""
        while True:
            try:
                message = self.receive.receive_nowait()
            except trio.WouldBlock:
                if self.client.closed:
                    raise ConnectionClosedError(
                        self.client.close_reason or "the server closed the connection"
                    ) from None
                await self._wait()
                continue
            # The client keeps its own copies; drop them so long runs do not grow memory.
            if "id" in message:
                await self.client.next_server_request()
            else:
                self.client.drain_notifications()
            return message

    async def _wait(self) -> None:
        """Until a message is queued or the connection closes."""
        async with trio.open_nursery() as nursery:

            async def queued() -> None:
                await self.receive_peek()
                nursery.cancel_scope.cancel()

            async def closed() -> None:
                await self.client.wait_closed()
                nursery.cancel_scope.cancel()

            nursery.start_soon(queued)
            nursery.start_soon(closed)

    async def receive_peek(self) -> None:
        while self.receive.statistics().current_buffer_used == 0:
            await self.arrived.wait()


def thread_of(params: Message) -> str | None:
    thread = params.get("threadId")
    if thread is None and isinstance(params.get("thread"), dict):
        thread = params["thread"].get("id")
    return thread if isinstance(thread, str) else None


@attrs.define(eq=False)
class Approver:
    """Answers approval requests per --yes / terminal / --approve-from-stdin."""

    client: Client
    renderer: Renderer
    notes: Output  # where decisions are reported: stdout, or stderr with --json
    auto_yes: bool
    from_stdin: bool
    lock: trio.Lock = attrs.Factory(trio.Lock)
    scopes: dict[int | str, trio.CancelScope] = attrs.Factory(dict)
    stdin_done: bool = False

    def resolved(self, request_id: int | str) -> None:
        """Another client answered (or the turn ended): stop asking."""
        scope = self.scopes.pop(request_id, None)
        if scope is not None:
            scope.cancel()

    async def handle(self, message: Message) -> None:
        request_id = message["id"]
        method = str(message.get("method"))
        params = message.get("params") or {}
        if not method.endswith("/requestApproval"):
            await self.client.respond_error(request_id, -32601, f"unsupported: {method}")
            return
        what = self.renderer.approval_summary(method, params)
        with trio.CancelScope() as scope:
            self.scopes[request_id] = scope
            decision = await self._decide(what)
            self.scopes.pop(request_id, None)
            await self.client.respond(request_id, {"decision": decision})
            if not self.auto_yes:
                style = "green" if decision.startswith("accept") else "yellow"
                self.notes.line(f"approval: {decision}", style, "dim")
        if scope.cancelled_caught:
            sys.stderr.write("\n(answered elsewhere)\n")

    async def _decide(self, what: str) -> str:
        if self.auto_yes:
            self.notes.line(f"? {what} — accepted (--yes)", "yellow")
            return "accept"
        interactive = sys.stdin.isatty()
        if not interactive and not self.from_stdin:
            self.notes.end_line()
            sys.stderr.write(
                f"{PROG}: approval needed to {what}; declined: stdin is not a terminal "
                "(use --yes or --approve-from-stdin)\n"
            )
            sys.stderr.flush()
            return "decline"
        async with self.lock:
            self.notes.end_line()
            self.notes.spinner.clear()
            sys.stderr.write(f"? {what} — allow? [y/N/a] ")
            sys.stderr.flush()
            line = None if self.stdin_done else await _read_stdin_line()
            if line is None:
                self.stdin_done = True
                sys.stderr.write("(end of input)\n" if not interactive else "\n")
            elif not interactive:
                sys.stderr.write(line.strip() + "\n")
            sys.stderr.flush()
        answer = (line or "").strip().lower()
        if answer in ("y", "yes"):
            return "accept"
        if answer in ("a", "always"):
            return "acceptForSession"
        return "decline"


async def _read_stdin_line() -> str | None:
    line = await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
    return line or None


# --- commands --------------------------------------------------------------------------


async def cmd_send(args: argparse.Namespace) -> int:
    words: list[str] = args.message
    if words == ["-"]:
        text = await trio.to_thread.run_sync(sys.stdin.read, abandon_on_cancel=True)
    else:
        text = " ".join(words)
    color = color_enabled(sys.stdout, args.no_color) and not args.json
    spinner = Spinner(enabled=not args.json and sys.stderr.isatty())
    out = Output(color, spinner=spinner)
    renderer = Renderer(out, echo_user=False)
    async with connect(args) as client:
        events = Events.attach(client, json_out=args.json)
        notes = Output(color_enabled(sys.stderr, args.no_color), sys.stderr) if args.json else out
        approver = Approver(client, renderer, notes, args.yes, args.approve_from_stdin)
        if args.thread is not None:
            result = await client.request("thread/resume", {"threadId": args.thread})
        else:
            start = {"cwd": args.cwd} if args.cwd else {}
            result = await client.request("thread/start", start)
        thread_id = str(result["thread"]["id"])
        if not args.json:
            how = "resumed" if args.thread is not None else "new"
            out.line(f"thread {thread_id} ({how})", "dim")
        started = await client.request(
            "turn/start", {"threadId": thread_id, "input": [{"type": "text", "text": text}]}
        )
        turn_id = str(started["turn"]["id"])
        spinner.running = True
        status = "failed"
        async with trio.open_nursery() as nursery:
            nursery.start_soon(spinner.run, lambda: out.at_line_start)
            nursery.start_soon(_interrupt_on_sigint, client, thread_id, turn_id)
            while True:
                message = await events.next()
                if "id" in message:
                    if thread_of(message.get("params") or {}) == thread_id:
                        nursery.start_soon(approver.handle, message)
                    continue
                method = str(message["method"])
                params: Message = message.get("params") or {}
                if thread_of(params) != thread_id:
                    continue
                if method == "item/started":
                    renderer.items[str(params["item"].get("id"))] = params["item"]
                if method == "serverRequest/resolved":
                    approver.resolved(params["requestId"])
                elif method == "turn/completed" and params["turn"].get("id") == turn_id:
                    status = str(params["turn"].get("status"))
                    if not args.json:
                        renderer.turn_completed(params["turn"])
                    break
                if not args.json:
                    render_event(renderer, method, params, verbose=False)
            spinner.running = False
            spinner.clear()
            nursery.cancel_scope.cancel()
    if not args.json:
        print(
            f"continue with: {PROG} send --thread {thread_id} MESSAGE", file=sys.stderr, flush=True
        )
    return EXIT_OK if status == "completed" else EXIT_TURN_FAILED


async def _interrupt_on_sigint(client: Client, thread_id: str, turn_id: str) -> None:
    with trio.open_signal_receiver(signal.SIGINT) as signals:
        async for _ in signals:
            sys.stderr.write("\ninterrupting the turn… (Ctrl-C again to quit)\n")
            sys.stderr.flush()
            break
        async with trio.open_nursery() as nursery:

            async def interrupt() -> None:
                with contextlib.suppress(RpcError):  # it may have ended already
                    await client.request(
                        "turn/interrupt", {"threadId": thread_id, "turnId": turn_id}
                    )

            nursery.start_soon(interrupt)
            async for _ in signals:
                raise KeyboardInterrupt


def render_event(renderer: Renderer, method: str, params: Message, *, verbose: bool) -> None:
    """One notification, readably; `verbose` adds thread-level events (for watch)."""
    out = renderer.out
    if method == "turn/started":
        renderer.turn_started(params["turn"])
    elif method == "turn/completed":
        renderer.turn_completed(params["turn"])
    elif method == "item/started":
        renderer.item_started(params["item"])
    elif method == "item/completed":
        renderer.item_completed(params["item"])
    elif method.startswith("item/") and (method.endswith("Delta") or method.endswith("/delta")):
        renderer.delta(method, params)
    elif method == "error":
        out.line(f"error: {(params.get('error') or {}).get('message', '')}", "red")
    elif not verbose:
        return
    elif method == "thread/status/changed":
        out.line(f"· status {status_text(params.get('status') or {})}", "dim")
    elif method == "thread/name/updated":
        out.line(f"· renamed to {params.get('threadName')!r}", "dim")
    elif method in ("thread/archived", "thread/unarchived", "thread/closed"):
        out.line(f"· {method.removeprefix('thread/')}", "dim")
    elif method == "serverRequest/resolved":
        out.line(f"· approval {params.get('requestId')} resolved", "dim")


async def cmd_watch(args: argparse.Namespace) -> int:
    color = color_enabled(sys.stdout, args.no_color) and not args.json
    out = Output(color)
    renderer = Renderer(out)
    async with connect(args) as client:
        events = Events.attach(client, json_out=args.json)
        with trio.open_signal_receiver(signal.SIGINT) as signals:
            async with trio.open_nursery() as nursery:

                async def stop_on_signal() -> None:
                    async for _ in signals:
                        nursery.cancel_scope.cancel()
                        return

                nursery.start_soon(stop_on_signal)
                result = await client.request("thread/resume", {"threadId": args.thread_id})
                thread = result["thread"]
                if not args.json:
                    turns = thread.get("turns") or []
                    out.line(
                        f"watching thread {thread['id']} ({status_text(thread['status'])}, "
                        f"{len(turns)} turns) — Ctrl-C to stop",
                        "dim",
                    )
                    running = [turn for turn in turns if turn.get("status") == "inProgress"]
                    for turn in running:  # a turn in progress: what happened so far
                        renderer.turn_started(turn)
                        for item in turn.get("items") or []:
                            renderer.item(item)
                while True:
                    message = await events.next()
                    params = message.get("params") or {}
                    if thread_of(params) != args.thread_id:
                        continue
                    method = str(message.get("method"))
                    if "id" in message:
                        if not args.json:
                            what = renderer.approval_summary(method, params)
                            out.line(f"? approval requested: {what} (not answered here)", "yellow")
                        continue
                    if not args.json:
                        render_event(renderer, method, params, verbose=True)
                    if method == "turn/completed" and args.until_turn_completed:
                        break
                    if method in ("thread/archived", "thread/closed"):
                        break
                nursery.cancel_scope.cancel()
    return EXIT_OK


async def cmd_threads(args: argparse.Namespace) -> int:
    params: Message = {"limit": args.limit, "sortKey": "updated_at", "archived": args.archived}
    if args.search:
        params["searchTerm"] = args.search
    async with connect(args) as client:
        result = await client.request("thread/list", params)
    if args.json:
        print_json(result)
        return EXIT_OK
    out = Output(color_enabled(sys.stdout, args.no_color))
    threads: list[Message] = result.get("data") or []
    if not threads:
        out.line("no threads", "dim")
        return EXIT_OK
    width = shutil.get_terminal_size((120, 24)).columns
    rows = [
        (
            str(th["id"]),
            status_text(th.get("status") or {}),
            human_time(int(th.get("updatedAt") or 0)),
            th.get("name"),
            str(th.get("preview") or ""),
        )
        for th in threads
    ]
    status_w = max(6, *(len(r[1]) for r in rows))
    time_w = max(7, *(len(r[2]) for r in rows))
    id_w = max(2, *(len(r[0]) for r in rows))
    rest = max(20, width - id_w - status_w - time_w - 6)
    header = f"{'ID':<{id_w}}  {'STATUS':<{status_w}}  {'UPDATED':<{time_w}}  NAME / PREVIEW"
    out.line(header, "bold")
    for thread_id, status, updated, name, preview in rows:
        label = out.paint(truncate(name, rest), "bold") if name else truncate(preview, rest)
        status_cell = out.paint(f"{status:<{status_w}}", _status_style(status))
        out.line(f"{thread_id:<{id_w}}  {status_cell}  {updated:<{time_w}}  {label}".rstrip())
    if result.get("nextCursor"):
        out.line("(more: raise --limit, at most 100)", "dim")
    return EXIT_OK


def _status_style(status: str) -> str:
    if status.startswith("active"):
        return "green"
    if status == "systemError":
        return "red"
    return "dim" if status == "notLoaded" else "blue"


async def cmd_read(args: argparse.Namespace) -> int:
    async with connect(args) as client:
        result = await client.request(
            "thread/read", {"threadId": args.thread_id, "includeTurns": True}
        )
    if args.json:
        print_json(result)
        return EXIT_OK
    out = Output(color_enabled(sys.stdout, args.no_color))
    thread = result["thread"]
    out.line(f"thread {thread['id']}", "bold")
    if thread.get("name"):
        out.line(f"name:    {thread['name']}")
    out.line(f"status:  {status_text(thread.get('status') or {})}")
    out.line(f"cwd:     {thread.get('cwd')}")
    created, updated = int(thread.get("createdAt") or 0), int(thread.get("updatedAt") or 0)
    out.line(f"created: {_timestamp(created)} ({human_time(created)})")
    out.line(f"updated: {_timestamp(updated)} ({human_time(updated)})")
    renderer = Renderer(out)
    turns = thread.get("turns") or []
    if not turns:
        out.line("(no turns)", "dim")
    for turn in turns:
        out.line()
        renderer.turn_started(turn)
        for item in turn.get("items") or []:
            renderer.item(item)
        if turn.get("status") != "inProgress":
            renderer.turn_completed(turn)
    return EXIT_OK


def _timestamp(ts: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


COMMANDS = {"send": cmd_send, "watch": cmd_watch, "threads": cmd_threads, "read": cmd_read}


# --- entry point -----------------------------------------------------------------------


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


if __name__ == "__main__":
    raise SystemExit(main())
