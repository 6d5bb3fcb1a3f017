"""The process table of `command/exec`: standalone processes outside any thread.

A process belongs to the connection that started it and lives inside that request's
task, which runs in the connection's nursery: when the connection ends, the task is
cancelled and the process group is killed (no cleanup hook is needed). The table maps
(connection, client-supplied processId) to the running process so that
`command/exec/write`, `/terminate` and `/resize` on the same connection can reach it.

Each process is the leader of its own session (so terminate and timeout kill the whole
group). With `tty` it gets a PTY (`os.openpty`) as its controlling terminal and
stdin/stdout/stderr; its master is read and written through `trio.lowlevel.FdStream`:
trio has no high-level way to wrap an arbitrary fd, and a worker thread blocked in
`os.read` could not be cancelled.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import logging
import os
import signal
import struct
import subprocess
import termios
import weakref
from collections.abc import Callable
from functools import partial
from typing import Any

import attrs
import trio

from appserver.connection import Connection
from appserver.protocol.command_types import (
    CommandExecOutputDeltaNotification,
    CommandExecResponse,
    OutputStream,
    TerminalSize,
)
from appserver.protocol.converter import unstructure
from appserver.protocol.errors import InvalidRequest

log = logging.getLogger("appserver.commands")

DEFAULT_TIMEOUT_MS = 10_000  # as Codex's command/exec
DEFAULT_OUTPUT_CAP = 1024 * 1024  # bytes per stream, as Codex
TIMEOUT_EXIT_CODE = 124  # as Codex (and timeout(1))
DEFAULT_SIZE = TerminalSize(rows=24, cols=80)
READ_SIZE = 65536
OUTPUT_DELTA = "command/exec/outputDelta"


@attrs.define(eq=False)
class Exec:
    """One running command/exec process."""

    process_id: str | None
    stream_stdin: bool
    pty_master: int | None = None  # the PTY's master fd (tty mode)
    stdin: trio.abc.SendStream | None = None  # pipe or PTY master
    stdin_closed: bool = False
    process: trio.Process | None = None
    started: trio.Event = attrs.Factory(trio.Event)
    write_lock: trio.Lock = attrs.Factory(trio.Lock)

    def kill(self) -> None:
        """SIGKILL the process group (the process leads its own session)."""
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)


_TABLE: weakref.WeakKeyDictionary[Connection, dict[str, Exec]] = weakref.WeakKeyDictionary()


def no_process(process_id: str) -> InvalidRequest:
    return InvalidRequest(
        f"no active command/exec for process id {json.dumps(process_id)}",
        kind="processNotFound",
    )


def lookup(conn: Connection, process_id: str) -> Exec:
    entry = _TABLE.get(conn, {}).get(process_id)
    if entry is None:
        raise no_process(process_id)
    return entry


def reserve(conn: Connection, process_id: str | None, stream_stdin: bool) -> Exec:
    entry = Exec(process_id=process_id, stream_stdin=stream_stdin)
    if process_id is not None:
        table = _TABLE.setdefault(conn, {})
        if process_id in table:
            raise InvalidRequest(
                f"duplicate active command/exec process id: {json.dumps(process_id)}",
                kind="duplicateProcessId",
            )
        table[process_id] = entry
    return entry


def release(conn: Connection, entry: Exec) -> None:
    table = _TABLE.get(conn, {})
    if entry.process_id is not None and table.get(entry.process_id) is entry:
        del table[entry.process_id]


def set_size(fd: int, size: TerminalSize) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", size.rows, size.cols, 0, 0))


def _controlling_tty() -> None:  # in the child, after setsid: its stdin is the PTY slave
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


async def _kill_group(process: trio.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def decode(data: bytes) -> str:
    # Codex guesses the encoding (chardetng); appserver reads UTF-8, replacing bad bytes.
    return data.decode("utf-8", errors="replace")


def exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


@attrs.define(eq=False)
class _Output:
    """One output stream: buffered up to the cap, or streamed as outputDelta."""

    conn: Connection
    entry: Exec
    stream: OutputStream
    streamed: bool
    cap: int | None
    buffer: bytearray = attrs.Factory(bytearray)
    taken: int = 0
    cap_reported: bool = False

    async def take(self, data: bytes) -> None:
        room = len(data) if self.cap is None else max(self.cap - self.taken, 0)
        chunk, truncated = data[:room], len(data) > room
        self.taken += len(chunk)
        if not self.streamed:
            self.buffer += chunk
        elif (chunk or truncated) and not self.cap_reported:
            self.cap_reported = truncated
            await self._notify(chunk, truncated)

    async def _notify(self, chunk: bytes, cap_reached: bool) -> None:
        assert self.entry.process_id is not None
        note = CommandExecOutputDeltaNotification(
            process_id=self.entry.process_id,
            stream=self.stream,
            delta_base64=base64.b64encode(chunk).decode("ascii"),
            cap_reached=cap_reached,
        )
        self.conn.notify(OUTPUT_DELTA, unstructure(note))
        # Only this connection reads the output: waiting for it delays nobody (§2.3).
        if self.conn.needs_wait(alone=True):
            await self.conn.wait_writable(alone=True)

    async def pump(self, source: trio.abc.ReceiveStream) -> None:
        while True:
            try:
                data = await source.receive_some(READ_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return  # a PTY master reads EIO once the slave side is gone
            if not data:
                return
            await self.take(bytes(data))

    def text(self) -> str:
        return decode(bytes(self.buffer))


@attrs.frozen(kw_only=True)
class Spawn:
    argv: list[str]
    cwd: str
    env: dict[str, str]
    tty: bool
    size: TerminalSize | None
    streamed: bool
    cap: int | None
    timeout: float | None  # seconds


async def run(conn: Connection, entry: Exec, spec: Spawn) -> CommandExecResponse:
    """Run the process to its end (exit, terminate, timeout or cancellation: the group is
    killed) and return its result; streamed output went out as notifications first."""
    out = _Output(conn, entry, "stdout", spec.streamed, spec.cap)
    err = _Output(conn, entry, "stderr", spec.streamed, spec.cap)
    master: int | None = None
    slave = -1
    popen: dict[str, Any] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    if spec.tty:
        master, slave = os.openpty()
        set_size(slave, spec.size or DEFAULT_SIZE)
        popen = {"stdin": slave, "stdout": slave, "stderr": slave}
        popen["preexec_fn"] = _controlling_tty
    elif entry.stream_stdin:
        popen["stdin"] = subprocess.PIPE
    else:
        popen["stdin"] = subprocess.DEVNULL
    start: Callable[..., Any] = partial(
        trio.run_process,
        spec.argv,
        check=False,
        cwd=spec.cwd,
        env=spec.env,
        start_new_session=True,
        deliver_cancel=_kill_group,
        **popen,
    )
    try:
        async with trio.open_nursery() as nursery:
            try:
                process: trio.Process = await nursery.start(start)
            except OSError as exc:
                # The client's command cannot run (no such program, not executable): bad
                # input, not a server bug, so -32600 rather than the reference's -32603.
                raise InvalidRequest(
                    f"failed to spawn command: {exc.strerror} (os error {exc.errno})",
                    kind="invalidRequest",
                ) from None
            finally:
                if spec.tty:
                    os.close(slave)
            entry.process = process
            timed_out = False
            deadline = float("inf") if spec.timeout is None else spec.timeout
            with trio.move_on_after(deadline) as timer:
                async with trio.open_nursery() as readers:
                    if master is not None:
                        pty = trio.lowlevel.FdStream(master)
                        master_fd, master = master, None  # the stream owns it now
                        entry.pty_master, entry.stdin = master_fd, pty
                        entry.started.set()
                        readers.start_soon(out.pump, pty)
                    else:
                        entry.stdin = process.stdin
                        entry.started.set()
                        assert process.stdout is not None and process.stderr is not None
                        readers.start_soon(out.pump, process.stdout)
                        readers.start_soon(err.pump, process.stderr)
                await process.wait()
            if timer.cancelled_caught:
                timed_out = True
                entry.kill()
                await process.wait()
        assert process.returncode is not None
        code = TIMEOUT_EXIT_CODE if timed_out else exit_code(process.returncode)
        log.info(
            "command/exec run for connection %d in %s: %r exited %d%s",
            conn.id,
            spec.cwd,
            spec.argv,
            code,
            " (timed out)" if timed_out else "",
            extra={
                "event": "command.run",
                "source": "command/exec",
                "connection_id": conn.id,
                "argv": spec.argv,
                "cwd": spec.cwd,
                "exit_code": code,
                "timed_out": timed_out,
                "tty": spec.tty,
            },
        )
        return CommandExecResponse(exit_code=code, stdout=out.text(), stderr=err.text())
    finally:
        entry.started.set()
        entry.pty_master = None
        if entry.stdin is not None:
            with trio.CancelScope(shield=True):
                await entry.stdin.aclose()
        if master is not None:
            os.close(master)


async def write(entry: Exec, data: bytes, close: bool) -> None:
    await entry.started.wait()
    if not entry.stream_stdin:
        raise InvalidRequest("stdin streaming is not enabled for this command/exec")
    if entry.stdin_closed or entry.stdin is None:
        raise InvalidRequest("stdin is already closed")
    async with entry.write_lock:
        try:
            if data:
                await entry.stdin.send_all(data)
            if close:
                entry.stdin_closed = True
                if entry.pty_master is not None:
                    await entry.stdin.send_all(b"\x04")  # a terminal's end of input: ^D
                else:
                    await entry.stdin.aclose()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise InvalidRequest("stdin is already closed") from None


def resize(entry: Exec, size: TerminalSize) -> None:
    if entry.pty_master is None:
        raise InvalidRequest("failed to resize PTY: process is not attached to a PTY")
    set_size(entry.pty_master, size)
