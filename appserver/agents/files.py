"""`/write PATH TEXT`: a fileChange item writing `TEXT\\n` to PATH (PROTOCOL.md §7.3, §10).

PATH is taken relative to the thread's cwd and resolved (`..` and every symlink, including
the last component) before anything is decided; the item's `changes[0].path` and the file
actually opened are that resolved absolute path. Filesystem work runs in a worker thread.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from typing import Any

import trio

from .approvals import Verdict, file_session_key, seek_approval, write_needs_approval
from .base import TurnCancelled, TurnContext, TurnFailed

NO_NEWLINE = "\\ No newline at end of file\n"


@dataclass(frozen=True)
class WritePlan:
    path: str  # resolved absolute path
    exists: bool
    inside_cwd: bool
    diff: str


def plan_write(cwd: str, path: str, new_text: str, read_outside: bool) -> WritePlan:
    """Resolve `path` against `cwd` and diff its current content against `new_text`.
    A file outside cwd is only read when `read_outside` (nothing outside the workspace leaks
    into a refused item)."""
    real_cwd = os.path.realpath(cwd)
    real = os.path.realpath(os.path.join(cwd, path))
    inside = os.path.commonpath([real, real_cwd]) == real_cwd
    exists = os.path.lexists(real)
    old: str | None = None
    if exists and (inside or read_outside):
        try:
            with open(real, "rb") as f:
                old = f.read().decode("utf-8", errors="replace")
        except OSError:
            old = None
    diff = unified_diff(old, new_text, real) if inside or read_outside or not exists else ""
    return WritePlan(path=real, exists=exists, inside_cwd=inside, diff=diff)


def unified_diff(old: str | None, new: str, path: str) -> str:
    """Unified diff from `old` (None: no file) to `new`, marking a missing final newline."""
    lines = difflib.unified_diff(
        (old or "").splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile="/dev/null" if old is None else path,
        tofile=path,
    )
    return "".join(line if line.endswith("\n") else f"{line}\n{NO_NEWLINE}" for line in lines)


def _write_bytes(path: str, data: bytes) -> None:
    # O_NOFOLLOW: `path` is already resolved; a symlink swapped in since then is refused.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o666)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _change_item(item_id: str, plan: WritePlan, status: str) -> dict[str, Any]:
    kind = {"type": "update", "move_path": None} if plan.exists else {"type": "add"}
    return {
        "id": item_id,
        "type": "fileChange",
        "changes": [{"path": plan.path, "kind": kind, "diff": plan.diff}],
        "status": status,
    }


async def write_file(ctx: TurnContext, arg: str) -> None:
    """The whole `/write` directive: item, sandbox rules, approval, write, completion."""
    words = arg.split(maxsplit=1)
    if not words:
        raise TurnFailed("/write expects a path and text: /write PATH TEXT")
    new_text = (words[1] if len(words) > 1 else "") + "\n"
    full_access = ctx.sandbox == "danger-full-access"
    plan = await trio.to_thread.run_sync(plan_write, ctx.cwd, words[0], new_text, full_access)
    item_id = ctx.new_item_id()
    await ctx.item_started(_change_item(item_id, plan, "inProgress"))

    async def finish(status: str, message: str) -> None:
        await ctx.file_change_output_delta(item_id, message)
        await ctx.item_completed(_change_item(item_id, plan, status))

    if ctx.sandbox == "read-only":
        await finish("failed", f"refused: the sandbox is read-only, {plan.path} not written\n")
        return
    if not plan.inside_cwd and not full_access:
        await finish("failed", f"refused: {plan.path} is outside the workspace {ctx.cwd}\n")
        return
    if write_needs_approval(ctx):
        params = {"itemId": item_id, "reason": None, "grantRoot": None}
        verdict = await seek_approval(ctx, "fileChange", params, file_session_key(plan.path))
        if verdict is not Verdict.PROCEED:
            await ctx.item_completed(_change_item(item_id, plan, verdict.item_status))
            if verdict is Verdict.CANCELLED:
                raise TurnCancelled()
            return

    try:
        data = new_text.encode("utf-8")
        await trio.to_thread.run_sync(_write_bytes, plan.path, data)
    except (OSError, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        await finish("failed", f"write failed: {plan.path}: {reason}\n")
        return
    await finish("completed", f"wrote {len(data)} bytes to {plan.path}\n")
