"""`/run CMD`: a commandExecution item running `/bin/sh -c CMD` (PROTOCOL.md §10).

Each process runs in its own process group. When the turn is cancelled the whole group is
killed with SIGKILL (trio's `deliver_cancel`); when the shell exits normally, whatever it
left running in its group is killed too, so a command never outlives its item and the
output pipe always reaches EOF.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from functools import partial
from typing import Any

import trio

from .approvals import Verdict, command_needs_approval, command_session_key, seek_approval
from .base import TurnCancelled, TurnContext, TurnFailed

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

    def wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "commandExecution",
            "command": self.command,
            "cwd": self.cwd,
            "processId": None if self.process_id is None else str(self.process_id),
            "source": "agent",
            "pluginId": None,
            "scriptPath": None,
            "status": self.status,
            "commandActions": command_actions(self.command),
            "aggregatedOutput": None if self.output is None else "".join(self.output),
            "exitCode": self.exit_code,
            "durationMs": self.duration_ms,
        }


def command_actions(command: str) -> list[dict[str, Any]]:
    return [{"type": "unknown", "command": command}]


def split_parts(command: str) -> list[str]:
    """`A && B && …` → `["A", "B", …]` (stripped, empty parts dropped). A plain textual
    split: `&&` inside quotes is split too."""
    return [part for part in (p.strip() for p in command.split("&&")) if part]


async def run_command(ctx: TurnContext, command: str) -> None:
    """The whole `/run` directive: item, approvals, execution, completion."""
    if not command.strip():
        raise TurnFailed("/run expects a command: /run CMD")
    item = CommandItem(id=ctx.new_item_id(), command=command, cwd=ctx.cwd)
    await ctx.item_started(item.wire())

    # Without approvals the command runs as one shell; with them, each `&&` part is asked
    # for (with its own approvalId) just before it runs.
    asking = command_needs_approval(ctx)
    parts = split_parts(command)
    steps = parts if asking and len(parts) > 1 else [command]
    verdict = Verdict.PROCEED
    for step in steps:
        if asking:
            params: dict[str, Any] = {
                "itemId": item.id,
                "command": step,
                "cwd": item.cwd,
                "commandActions": command_actions(step),
            }
            if len(steps) > 1:
                params["approvalId"] = str(uuid.uuid4())
            key = command_session_key(step)
            verdict = await seek_approval(ctx, "commandExecution", params, key)
            if verdict is not Verdict.PROCEED:
                break
        await execute(ctx, item, step)
        if item.exit_code != 0:
            break

    if verdict is Verdict.PROCEED:
        item.status = "completed" if item.exit_code == 0 else "failed"
    else:
        item.status = verdict.item_status
    await ctx.item_completed(item.wire())
    if verdict is Verdict.CANCELLED:
        raise TurnCancelled()


async def execute(ctx: TurnContext, item: CommandItem, command: str) -> None:
    """Run `sh -c command` in the item's cwd, streaming its output into the item. Sets
    `exit_code` (None if it could not be started), `process_id`, and adds to `output` and
    `duration_ms`. Cancellation kills the process group and propagates."""
    output = item.output = [] if item.output is None else item.output
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    started_at = time.monotonic()
    item.exit_code = None

    async def emit(text: str) -> None:
        if text:
            output.append(text)
            await ctx.command_output_delta(item.id, text)

    proc: trio.Process | None = None
    async with trio.open_nursery() as nursery:
        try:
            proc = await nursery.start(
                partial(
                    trio.run_process,
                    [SHELL, "-c", command],
                    cwd=item.cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    check=False,
                    deliver_cancel=_kill_group,
                )
            )
        except OSError as exc:
            await emit(f"failed to start {SHELL}: {exc}\n")
        else:
            item.process_id = proc.pid
            nursery.start_soon(_reap_group, proc)
            assert proc.stdout is not None
            async with proc.stdout as stdout:
                while chunk := await stdout.receive_some(READ_SIZE):
                    await emit(decoder.decode(chunk))
            await emit(decoder.decode(b"", final=True))

    if proc is not None:
        item.exit_code = _exit_code(proc)
    elapsed_ms = round((time.monotonic() - started_at) * 1000)
    item.duration_ms = (item.duration_ms or 0) + elapsed_ms


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


async def _reap_group(proc: trio.Process) -> None:
    """Once the shell has exited, kill what it left running (background jobs holding the
    output pipe), so the item ends when its command does."""
    await proc.wait()
    _signal_group(proc.pid)
