"""`/run CMD`: a commandExecution item running `/bin/sh -c` on the command (PROTOCOL.md §10).

One shell runs the whole command, with a gate before each top-level `&&` part (chain.py)
that the server answers on the shell's stdin (gates.py): per §7.3 after asking, or at once
when no approval is needed, so the command runs the same with or without approvals.

Each process runs in its own process group. When the turn is cancelled the whole group is
killed with SIGKILL (trio's `deliver_cancel`); when the shell exits normally, whatever it
left running in its group is killed too, so a command never outlives its item and the
output pipe always reaches EOF. A refused part kills the group at its gate.
"""

from __future__ import annotations

import codecs
import contextlib
import fcntl
import logging
import os
import signal
import socket
import struct
import subprocess
import termios
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

import trio

from .approvals import Verdict
from .base import TurnCancelled, TurnContext, TurnFailed
from .chain import plan
from .gates import Gatekeeper, command_actions

log = logging.getLogger("appserver.commands")

SHELL = "/bin/sh"
READ_SIZE = 65536


@dataclass
class CommandItem:
    """The commandExecution item being built; `wire()` gives a fresh wire-form dict."""

    id: str
    command: str
    cwd: str
    status: str = "inProgress"
    process_id: int | None = None
    output: list[str] | None = None  # None until a process has been started
    exit_code: int | None = None
    duration_ms: int | None = None
    source: str = "agent"  # "userShell" for thread/shellCommand (user_shell.py)

    def wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "commandExecution",
            "command": self.command,
            "cwd": self.cwd,
            # As the reference: a user shell command's item shows no process id.
            "processId": None
            if self.process_id is None or self.source == "userShell"
            else str(self.process_id),
            "source": self.source,
            "pluginId": None,
            "scriptPath": None,
            "status": self.status,
            "commandActions": command_actions(self.command),
            "aggregatedOutput": None if self.output is None else "".join(self.output),
            "exitCode": self.exit_code,
            "durationMs": self.duration_ms,
        }


class Output:
    """The command's output: read from the pipe, decoded incrementally, emitted as
    `outputDelta`s and kept in the item. `caught_up` lets a gate wait until what the shell
    wrote before reaching it has been emitted, so a part's output precedes the request
    for the next part."""

    def __init__(self, ctx: TurnContext, item: CommandItem) -> None:
        self._ctx = ctx
        self._item_id = item.id
        self._chunks = item.output = [] if item.output is None else item.output
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._received = 0  # bytes read from the pipe
        self._emitted = 0  # bytes read and emitted
        self._fd: int | None = None  # the pipe while it is open
        self._progress = trio.Event()

    async def emit(self, text: str) -> None:
        if text:
            self._chunks.append(text)
            await self._ctx.command_output_delta(self._item_id, text)

    async def pump(self, stdout: trio.abc.ReceiveStream) -> None:
        """Emit everything read from `stdout` until end of file, then close it."""
        fileno = getattr(stdout, "fileno", None)
        async with stdout:
            self._fd = fileno() if callable(fileno) else None
            try:
                while chunk := await stdout.receive_some(READ_SIZE):
                    self._received += len(chunk)
                    await self.emit(self._decoder.decode(chunk))
                    self._emitted = self._received
                    self._wake()
            finally:
                self._fd = None  # before the close: no FIONREAD on a reused number
                self._wake()
        await self.emit(self._decoder.decode(b"", final=True))

    async def caught_up(self) -> None:
        if self._fd is None:
            return
        target = self._received + _pending_bytes(self._fd)
        while self._fd is not None and self._emitted < target:
            await self._progress.wait()

    def _wake(self) -> None:
        self._progress.set()
        self._progress = trio.Event()


def _pending_bytes(fd: int) -> int:
    """Bytes waiting in the pipe, not read yet."""
    try:
        answer = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
    except OSError:
        return 0
    count: int = struct.unpack("i", answer)[0]
    return count


def refusal(command: str) -> str | None:
    """Why `command` cannot be given to a shell at all, or None. Checked before the item
    starts, so nothing is asked for a command that could never run (§10)."""
    if not command.strip():
        return "/run expects a command: /run CMD"
    if "\0" in command:
        return "/run: the command contains a NUL character (\\0), which no shell command can hold"
    try:
        os.fsencode(command)
    except UnicodeEncodeError as exc:
        return f"/run: the command is not valid text at position {exc.start}"
    return None


async def run_command(ctx: TurnContext, command: str) -> None:
    """The whole `/run` directive: item, approvals, execution, completion.

    One `/bin/sh -c` runs the whole command (chain.py): a gate before each top-level `&&`
    part asks for that part when the shell reaches it, with or without approvals (without,
    the gate is opened at once), so the command behaves the same either way."""
    problem = refusal(command)
    if problem is not None:
        raise TurnFailed(problem)
    item = CommandItem(id=ctx.new_item_id(), command=command, cwd=ctx.cwd)
    await ctx.item_started(item.wire())

    chain = await trio.to_thread.run_sync(plan, command)
    gates = Gatekeeper(ctx, item.id, item.cwd, chain.parts)
    await execute(ctx, item, chain.program, gates)

    verdict = gates.verdict
    if gates.opened:  # something of it ran
        _log_run(ctx, item, "run", f"{gates.opened}/{len(chain.parts)} part(s)")
    if verdict is Verdict.PROCEED:
        item.status = "completed" if item.exit_code == 0 else "failed"
    else:
        item.status = verdict.item_status
        item.exit_code = None  # stopped at a gate, not finished
        if gates.opened == 0:  # nothing of the command ran
            item.process_id = item.output = item.duration_ms = None
    await ctx.item_completed(item.wire())
    if verdict is Verdict.CANCELLED:
        raise TurnCancelled()


async def execute(
    ctx: TurnContext, item: CommandItem, program: str, gates: Gatekeeper | None
) -> None:
    """Run `sh -c program` (chain.py) in the item's cwd, streaming its output into the item
    while `gates` answers the program's gates on the shell's stdin (without gates, the
    program is the user's command itself and its stdin is /dev/null). Sets `exit_code`
    (None if it could not be started), `process_id`, `output` and `duration_ms`.
    Cancellation kills the process group and propagates."""
    output = Output(ctx, item)
    started_at = time.monotonic()
    # The gates' socket pair: the shell's stdin is `theirs`.
    ours, theirs = socket.socketpair() if gates is not None else (None, None)
    proc: trio.Process | None = None
    try:
        async with trio.open_nursery() as nursery:
            try:
                proc = await nursery.start(
                    partial(
                        trio.run_process,
                        [SHELL, "-c", program],
                        cwd=item.cwd,
                        stdin=subprocess.DEVNULL if theirs is None else theirs.fileno(),
                        stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                        check=False,
                        deliver_cancel=_kill_group,
                    )
                )
            except OSError as exc:
                await output.emit(f"failed to start {SHELL}: {exc}\n")
            else:
                item.process_id = proc.pid
                if gates is not None and ours is not None and theirs is not None:
                    theirs.close()  # the shell's now
                    stream = trio.SocketStream(trio.socket.from_stdlib_socket(ours))
                    kill = partial(_signal_group, proc.pid)
                    nursery.start_soon(gates.serve, stream, output, proc.pid, kill)
                nursery.start_soon(_reap_group, proc, gates)
                assert proc.stdout is not None
                await output.pump(proc.stdout)
    finally:
        for end in (ours, theirs):  # (the stream's close does this too; twice is harmless)
            if end is not None:
                end.close()

    item.exit_code = None if proc is None else _exit_code(proc)
    item.duration_ms = round((time.monotonic() - started_at) * 1000)


def _exit_code(proc: trio.Process) -> int:
    """A signal death is reported the way shells do: 128 + signal number."""
    code = proc.returncode
    assert code is not None
    return 128 - code if code < 0 else code


def _signal_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


async def _kill_group(proc: trio.Process) -> None:
    """`deliver_cancel` for run_process: the shell is its group's leader (new session), so
    its pid is the group id; SIGKILL reaches every process it started."""
    _signal_group(proc.pid)


async def _reap_group(proc: trio.Process, gates: Gatekeeper | None) -> None:
    """Once the shell has exited, kill what it left running (background jobs holding the
    output pipe), so the item ends when its command does; stop waiting for gates."""
    await proc.wait()
    if gates is not None:
        gates.shell_exited()
    _signal_group(proc.pid)


# --- thread/shellCommand: the user's own command (threads/special.py) ------------------

TIMED_OUT = "command timed out after {ms} ms"
ABORTED = "command aborted by user"


async def run_user_shell(
    ctx: TurnContext, command: str, timeout_ms: int, *, item_id: str | None = None
) -> None:
    """A commandExecution item (`source: "userShell"`) running `/bin/sh -c command` in the
    turn's cwd, asking no approval (the user is the one asking) and confining nothing.
    Output streams as for `/run`; exit 0 ends it `completed`, anything else `failed`.
    Past `timeout_ms` (0: at once) the process group is killed and the item ends `failed`
    with exit code -1 and `command timed out after N ms` after the output; an interrupt
    (cancellation) ends it the same way with `command aborted by user`, then propagates.
    `item_id`: the item's id (default: a new one)."""
    item_id = item_id or ctx.new_item_id()
    item = CommandItem(id=item_id, command=command, cwd=ctx.cwd, source="userShell")
    await ctx.item_started(item.wire())
    started_at = time.monotonic()
    ended = False
    try:
        with trio.move_on_after(timeout_ms / 1000) as timer:
            await execute(ctx, item, command, None)
        ended = True
    finally:
        if not ended:  # cancelled (an interrupt, the thread closing), possibly in a group
            _stopped(item, ABORTED, started_at)
            _log_run(ctx, item, "userShell", "aborted")
            with trio.CancelScope(shield=True):
                await ctx.item_completed(item.wire())
    if timer.cancelled_caught:
        _stopped(item, TIMED_OUT.format(ms=timeout_ms), started_at)
    else:
        item.status = "completed" if item.exit_code == 0 else "failed"
    _log_run(ctx, item, "userShell", "timed out" if timer.cancelled_caught else "")
    await ctx.item_completed(item.wire())


def _stopped(item: CommandItem, why: str, started_at: float) -> None:
    """A command killed before it ended (timeout, interrupt), as the reference reports it."""
    output = "".join(item.output or ())
    if output and not output.endswith("\n"):
        output += "\n"
    item.output = [output + why]
    item.status = "failed"
    item.exit_code = -1
    item.duration_ms = round((time.monotonic() - started_at) * 1000)


def _log_run(ctx: TurnContext, item: CommandItem, source: str, note: str) -> None:
    """One line per command actually run (the operator's audit, docs/operations.md)."""
    log.info(
        "command run (%s%s) in %s: %r exited %s",
        source,
        f", {note}" if note else "",
        item.cwd,
        item.command,
        item.exit_code,
        extra={
            "event": "command.run",
            "source": source,
            "thread_id": ctx.thread_id,
            "turn_id": ctx.turn_id,
            "item_id": item.id,
            "command": item.command,
            "cwd": item.cwd,
            "exit_code": item.exit_code,
            "duration_ms": item.duration_ms,
            "note": note,
        },
    )
