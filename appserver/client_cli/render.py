"""Human-readable and JSON output: colours, spinner, event rendering."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, TextIO

import attrs
import trio
from rich.console import Console
from rich.table import Table

from appserver.client_cli.common import PROG, Message

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
    paused: int = 0  # > 0 while a question is on the terminal: never draw over it

    @contextlib.contextmanager
    def pause(self) -> Iterator[None]:
        """Stop drawing (and erase the spinner) while a prompt is shown."""
        self.clear()
        self.paused += 1
        try:
            yield
        finally:
            self.paused -= 1
            self.last_output = time.monotonic()

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
            if self.running and not self.paused and idle and can_show():
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

    def table(self, table: Table) -> None:
        """A rich table, coloured as this output is, as wide as the terminal (or 120)."""
        self.end_line()
        width = shutil.get_terminal_size((120, 24)).columns
        console = Console(
            file=self.stream,
            width=width,
            no_color=not self.color,
            color_system="standard" if self.color else None,
            force_terminal=self.color,
            highlight=False,
        )
        console.print(table)
        self.stream.flush()

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
        out.line("· approval resolved", "dim")
