"""The server's side of the gates in a `/run` shell program (chain.py, PROTOCOL.md §7, §10).

The shell's stdin is one end of a socket pair; the server keeps the other as a
`trio.SocketStream` (a high-level trio stream: no raw file descriptors to wrap, and its
reads are cancellable, so `turn/interrupt` reaches a shell waiting at a gate). A socket
pair rather than two pipes because a POSIX sh can only name descriptors 0-9 and the
only one the server can place at a fixed number without `preexec_fn` is stdin.

When gate N writes `N\\n`, the shell has finished everything before part N and waits.
The gatekeeper first lets the command's earlier output reach the clients, then asks for
part N per §7.3 (or opens the gate at once when no approval is needed) and answers `go`.
Any other verdict ends it there: `stop`, and the process group is killed, so nothing after
that part runs whatever the shell does with the answer.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import trio

from .approvals import Verdict, command_needs_approval, command_session_key, seek_approval
from .base import TurnContext
from .chain import GO, STOP

MAX_REQUEST_BYTES = 32


def command_actions(command: str) -> list[dict[str, Any]]:
    return [{"type": "unknown", "command": command}]


class Output(Protocol):
    async def caught_up(self) -> None:
        """Return once everything written to the command's output so far is emitted."""


class Gatekeeper:
    """Answers the gates of one command item, in order. `verdict` is PROCEED unless a part
    was refused; `opened` counts the gates opened (parts allowed to run)."""

    def __init__(self, ctx: TurnContext, item_id: str, cwd: str, parts: Sequence[str]) -> None:
        self._ctx = ctx
        self._item_id = item_id
        self._cwd = cwd
        self._parts = tuple(parts)
        self._asking = command_needs_approval(ctx)
        self._exited = False
        self._reading: trio.CancelScope | None = None
        self.verdict = Verdict.PROCEED
        self.opened = 0

    def shell_exited(self) -> None:
        """The shell is gone: no gate will be reached any more (a part exited non-zero,
        the command ended, or it was killed)."""
        self._exited = True
        if self._reading is not None:
            self._reading.cancel()

    async def serve(
        self, stream: trio.SocketStream, output: Output, pid: int, kill: Callable[[], None]
    ) -> None:
        async with stream:
            requests = _Lines(stream)
            for index, part in enumerate(self._parts, 1):
                request: str | None = None
                with trio.CancelScope() as self._reading:
                    if not self._exited:
                        request = await requests.next()
                self._reading = None
                if request is None or self._exited:
                    return
                if request != str(index):  # not the gate program's own request
                    await self._stop(stream, Verdict.FAILED, kill)
                    return
                await output.caught_up()
                verdict = await self._decide(part, pid)
                if verdict is not Verdict.PROCEED:
                    await self._stop(stream, verdict, kill)
                    return
                self.opened += 1
                await _send(stream, GO)

    async def _decide(self, part: str, pid: int) -> Verdict:
        if not self._asking:
            return Verdict.PROCEED
        params: dict[str, Any] = {
            "itemId": self._item_id,
            "command": part,
            "cwd": shell_cwd(pid, self._cwd),
            "commandActions": command_actions(part),
        }
        if len(self._parts) > 1:
            params["approvalId"] = str(uuid.uuid4())
        key = command_session_key(part)
        return await seek_approval(self._ctx, "commandExecution", params, key)

    async def _stop(
        self, stream: trio.SocketStream, verdict: Verdict, kill: Callable[[], None]
    ) -> None:
        self.verdict = verdict
        kill()
        await _send(stream, STOP)


def shell_cwd(pid: int, cwd: str) -> str:
    """The directory the waiting shell is in (after a `cd` in an earlier part), where the
    system shows it (`/proc`); `cwd` itself while the shell has not left it."""
    try:
        current = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return cwd
    return cwd if current == os.path.realpath(cwd) else current


async def _send(stream: trio.SocketStream, data: bytes) -> None:
    # If the shell is gone, its item ends as its exit says.
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        await stream.send_all(data)


class _Lines:
    """`\\n`-terminated requests from the gate; None at end of file."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self._stream = stream
        self._buffer = bytearray()

    async def next(self) -> str | None:
        while b"\n" not in self._buffer:
            if len(self._buffer) > MAX_REQUEST_BYTES:
                return ""  # no request of the gate is this long
            try:
                chunk = await self._stream.receive_some(MAX_REQUEST_BYTES)
            except trio.BrokenResourceError:
                return None
            if not chunk:
                return None
            self._buffer += chunk
        line, _, rest = self._buffer.partition(b"\n")
        self._buffer = bytearray(rest)
        return line.decode("ascii", "replace")
