"""`/write PATH TEXT`: a fileChange item writing `TEXT\\n` to PATH (PROTOCOL.md §7.3, §10).

PATH is taken relative to the thread's cwd and resolved (`..` and every symlink, including
the last component) before anything is decided: the item's `changes[0].path` is that
resolved absolute path, and the sandbox rules are applied to it. A symlink pointing inside
the cwd is thus allowed, and shown resolved.

After the approval the file is opened by `safe_open.write_below`: relative to a handle of
the (resolved) cwd — of `/` under danger-full-access — one component at a time, following
no symlink at all, creating missing directories. The resolved path has no symlink in it, so
a symlink met then was swapped in while the approval waited: the item ends `failed` and
nothing is written. The file written is always the path shown. The completed item's
`kind` and `diff` describe what was actually replaced (read through the same descriptor
that is written), not what the file held when the approval was asked.

A path holding a NUL byte is refused before anything is asked: the item ends `failed`.
Filesystem work runs in a worker thread.
"""

from __future__ import annotations

import difflib
import os
import stat
import weakref
from dataclasses import dataclass, field
from typing import Any

import trio

from .approvals import Verdict, file_session_key, seek_approval, write_needs_approval
from .base import TurnCancelled, TurnContext, TurnFailed
from .safe_open import WriteRefused, Written, write_below

NO_NEWLINE = "\\ No newline at end of file\n"


@dataclass(frozen=True)
class WritePlan:
    path: str  # resolved absolute path
    exists: bool
    inside_cwd: bool
    diff: str
    root: str = "/"  # the directory the write is opened below...
    relative: str = ""  # ...and the path below it (no symlink, no `..`)
    root_id: tuple[int, int] | None = None  # (st_dev, st_ino) of `root` when planned

    def after(self, new_text: str, written: Written) -> WritePlan:
        """This change as it was actually written: created or replaced, diffed against
        what the file held when it was opened (the planned diff when it was unreadable)."""
        if written.created:
            diff = unified_diff(None, new_text, self.path)
        elif written.old is not None:
            diff = unified_diff(written.old.decode("utf-8", errors="replace"), new_text, self.path)
        else:
            diff = self.diff
        return WritePlan(self.path, not written.created, self.inside_cwd, diff)


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
        old = _read_regular(real)
    diff = unified_diff(old, new_text, real) if inside or read_outside or not exists else ""
    root = "/" if read_outside else real_cwd
    try:
        st = os.stat(root)
        root_id: tuple[int, int] | None = (st.st_dev, st.st_ino)
    except OSError:
        root_id = None  # the write fails when it opens the root
    relative = os.path.relpath(real, root) if inside or read_outside else ""
    return WritePlan(real, exists, inside, diff, root, relative, root_id)


def _read_regular(path: str) -> str | None:
    """The text of the regular file at `path`; None for anything else or when unreadable.
    O_NONBLOCK: a FIFO must not hang the worker thread."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return None


def path_problem(path: str) -> str | None:
    """Why `path` cannot name a file at all (checked before anything is asked), or None."""
    if "\0" in path:
        return "the path contains a NUL byte"
    return None  # (lone surrogates, the other unencodable text, never pass the wire: §1)


def refused_plan(cwd: str, path: str) -> WritePlan:
    """The item of a path refused by `path_problem` (nothing is looked up)."""
    return WritePlan(os.path.normpath(os.path.join(cwd, path)), False, False, "")


def unified_diff(old: str | None, new: str, path: str) -> str:
    """Unified diff from `old` (None: no file) to `new`, marking a missing final newline."""
    lines = difflib.unified_diff(
        (old or "").splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile="/dev/null" if old is None else path,
        tofile=path,
    )
    return "".join(line if line.endswith("\n") else f"{line}\n{NO_NEWLINE}" for line in lines)


@dataclass
class TurnDiff:
    """The files one turn wrote: each path's content before the turn first wrote it
    (None: it did not exist) and after its latest write, in the order first written."""

    files: dict[str, tuple[str | None, str]] = field(default_factory=dict)

    def wrote(self, path: str, before: str | None, after: str) -> str:
        """Record a write; return the turn's aggregated unified diff."""
        first = self.files[path][0] if path in self.files else before
        self.files[path] = (first, after)
        return "".join(unified_diff(old, new, p) for p, (old, new) in self.files.items())


_TURN_DIFFS: weakref.WeakKeyDictionary[TurnContext, TurnDiff] = weakref.WeakKeyDictionary()


async def turn_diff_updated(ctx: TurnContext, path: str, before: str | None, after: str) -> None:
    """`turn/diff/updated` with the turn's aggregated diff after a completed write (for a
    context with agents.base.TalkingBack)."""
    send = getattr(ctx, "diff_updated", None)
    if send is None:
        return
    try:
        tracker = _TURN_DIFFS.setdefault(ctx, TurnDiff())
    except TypeError:
        tracker = TurnDiff()
    await send(tracker.wrote(path, before, after))


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
    problem = path_problem(words[0])
    if problem is None:
        plan = await trio.to_thread.run_sync(plan_write, ctx.cwd, words[0], new_text, full_access)
    else:
        plan = refused_plan(ctx.cwd, words[0])
    item_id = ctx.new_item_id()
    await ctx.item_started(_change_item(item_id, plan, "inProgress"))

    async def finish(status: str, message: str, done: WritePlan = plan) -> None:
        await ctx.file_change_output_delta(item_id, message)
        await ctx.item_completed(_change_item(item_id, done, status))

    if problem is not None:
        await finish("failed", f"refused: {problem}; nothing written\n")
        return
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
        written = await trio.to_thread.run_sync(
            lambda: write_below(plan.root, plan.relative, data, root_id=plan.root_id)
        )
    except WriteRefused as exc:
        await finish("failed", f"refused: {exc.message}\n")
        return
    except (OSError, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        await finish("failed", f"write failed: {plan.path}: {reason}\n")
        return
    done = plan.after(new_text, written)
    message = f"wrote {len(data)} bytes to {plan.path}\n"
    if (done.exists, done.diff) != (plan.exists, plan.diff):
        message += (
            f"{plan.path} changed while the approval was pending; the completed diff shows "
            "what this write replaced\n"
        )
    await finish("completed", message, done)
    before = (
        None
        if written.created or written.old is None
        else written.old.decode("utf-8", errors="replace")
    )
    await turn_diff_updated(ctx, plan.path, before, new_text)
