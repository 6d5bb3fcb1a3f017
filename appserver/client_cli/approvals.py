"""Answering approval requests: --yes, the terminal, or --approve-from-stdin."""

from __future__ import annotations

import sys
from typing import TextIO

import attrs
import trio

from appserver.client import Client
from appserver.client_cli.common import PROG, Message
from appserver.client_cli.render import Output, Renderer


@attrs.frozen
class _Terminal:
    input: TextIO
    output: TextIO


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
    tty: _Terminal | None = None
    no_tty: bool = False

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
        tty = None if interactive or self.from_stdin else self._terminal()
        if not interactive and not self.from_stdin and tty is None:
            self.notes.end_line()
            sys.stderr.write(
                f"{PROG}: approval needed to {what}; declined: no terminal to ask on "
                "(use --yes or --approve-from-stdin)\n"
            )
            sys.stderr.flush()
            return "decline"
        async with self.lock:
            with self.notes.spinner.pause():
                self.notes.end_line()
                line = await self._ask(f"? {what} — allow? [y/N/a] ", tty, interactive)
        answer = (line or "").strip().lower()
        if answer in ("y", "yes"):
            return "accept"
        if answer in ("a", "always"):
            return "acceptForSession"
        return "decline"

    async def _ask(self, prompt: str, tty: _Terminal | None, interactive: bool) -> str | None:
        """The prompt, then one line: from the controlling terminal when stdin is a pipe
        (`tty`), else from stdin."""
        if tty is not None:
            tty.output.write(prompt)
            tty.output.flush()
            typed = await trio.to_thread.run_sync(tty.input.readline, abandon_on_cancel=True)
            if not typed:
                tty.output.write("\n")
                tty.output.flush()
            return typed or None
        sys.stderr.write(prompt)
        sys.stderr.flush()
        line = None if self.stdin_done else await _read_stdin_line()
        if line is None:
            self.stdin_done = True
            sys.stderr.write("(end of input)\n" if not interactive else "\n")
        elif not interactive:
            sys.stderr.write(line.strip() + "\n")
        sys.stderr.flush()
        return line

    def _terminal(self) -> _Terminal | None:
        """The controlling terminal (/dev/tty), opened once and kept open (a read
        abandoned when another client answers must not race a close); None without one."""
        if self.tty is None and not self.no_tty:
            try:
                # Not "r+": a terminal is not seekable, which text mode r+ requires.
                self.tty = _Terminal(
                    open("/dev/tty", encoding="utf-8", errors="replace"),  # noqa: SIM115
                    open("/dev/tty", "w", encoding="utf-8"),  # noqa: SIM115
                )
            except OSError:
                self.no_tty = True
        return self.tty


async def _read_stdin_line() -> str | None:
    line = await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
    return line or None
