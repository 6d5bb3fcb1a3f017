"""Read-only git for review/start: the change a review target names, as text.

Git is run directly (no shell) in the thread's cwd, without any approval, because it only
reads: `diff`, `show`, `ls-files`, `rev-parse`, never a command that writes. Optional
locks are off (`GIT_OPTIONAL_LOCKS=0`: `git diff` does not refresh the index), and no
repository-configured program runs (no external diff, no textconv, no fsmonitor, no
pager, no prompt). Each command is bounded by `GIT_TIMEOUT` seconds and its output by
`MAX_GIT_OUTPUT` bytes (a longer diff is cut, and says so). Every problem — git missing,
not a repository, an unknown branch or commit, a failing command — is a TurnFailed with a
clear message.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from functools import partial
from typing import Any

import trio

from .base import TurnFailed

GIT_TIMEOUT = 20.0  # seconds, per git command
MAX_GIT_OUTPUT = 256 * 1024  # bytes kept of one command's output
MAX_GIT_ERROR = 300  # characters of git's stderr quoted in a message
_SAFE = [
    "-c",
    "core.fsmonitor=false",
    "-c",
    "core.pager=cat",
    "-c",
    "color.ui=false",
]
_ENV = {
    "GIT_OPTIONAL_LOCKS": "0",
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_PAGER": "cat",
    "LC_ALL": "C",
}
_DIFF_OPTIONS = ["--no-ext-diff", "--no-textconv", "--no-color"]


@dataclass(frozen=True)
class Change:
    """What a review looks at: a description of the target (the reviewer's task) and the
    change as text ("" when there is none, or for a `custom` target)."""

    task: str
    diff: str


async def gather(cwd: str, target: dict[str, Any]) -> Change:
    """The change `target` (a wire ReviewTarget) names in the repository at `cwd`."""
    kind = target.get("type")
    if kind == "custom":
        instructions = target.get("instructions")
        if not isinstance(instructions, str) or not instructions.strip():
            raise TurnFailed("a custom review needs non-empty `instructions`")
        return Change(instructions.strip(), "")
    if kind not in ("uncommittedChanges", "baseBranch", "commit"):
        raise TurnFailed(f"unknown review target type: {kind!r}")
    if not await trio.Path(cwd).is_dir():
        raise TurnFailed(f"cannot review: the working directory {cwd} does not exist")
    await _git(cwd, "rev-parse", "--git-dir")  # "not a git repository" comes from here
    if kind == "uncommittedChanges":
        return await _uncommitted(cwd)
    if kind == "baseBranch":
        branch = _name(target, "branch", "branch")
        await _revision(cwd, branch, "branch")
        diff = await _git(cwd, "diff", *_DIFF_OPTIONS, f"{branch}...HEAD", "--")
        return Change(
            f"Review the code changes against the base branch '{branch}' (the diff of "
            f"HEAD against the merge base with {branch}) and provide prioritized findings.",
            diff,
        )
    sha = _name(target, "sha", "commit")
    await _revision(cwd, sha, "commit")
    title = target.get("title")
    label = f'{sha} ("{title}")' if isinstance(title, str) and title else sha
    diff = await _git(cwd, "show", *_DIFF_OPTIONS, "--format=fuller", sha, "--")
    return Change(
        f"Review the code changes introduced by commit {label} and provide prioritized findings.",
        diff,
    )


async def _uncommitted(cwd: str) -> Change:
    staged = await _git(cwd, "diff", "--cached", *_DIFF_OPTIONS, "--")
    unstaged = await _git(cwd, "diff", *_DIFF_OPTIONS, "--")
    untracked = await _git(cwd, "ls-files", "--others", "--exclude-standard", "--")
    sections = [
        f"{title}:\n{body.rstrip()}"
        for title, body in (
            ("Staged changes (git diff --cached)", staged),
            ("Unstaged changes (git diff)", unstaged),
            ("Untracked files (not shown in the diffs)", untracked),
        )
        if body.strip()
    ]
    return Change(
        "Review the current code changes (staged, unstaged, and untracked files) and "
        "provide prioritized findings.",
        "\n\n".join(sections),
    )


def _name(target: dict[str, Any], field: str, what: str) -> str:
    value = target.get(field)
    if not isinstance(value, str) or not value.strip():
        raise TurnFailed(f"a {what} review needs a non-empty `{field}`")
    value = value.strip()
    if value.startswith("-"):  # never taken for an option
        raise TurnFailed(f"not a {what} name: {value!r}")
    return value


async def _revision(cwd: str, name: str, what: str) -> None:
    try:
        await _git(
            cwd, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{name}^{{commit}}"
        )
    except _GitFailed:
        raise TurnFailed(f"unknown {what} {name!r} in the repository at {cwd}") from None


class _GitFailed(TurnFailed):
    pass


async def _git(cwd: str, *args: str) -> str:
    """`git ARGS` in `cwd`: its stdout (cut at MAX_GIT_OUTPUT bytes, with a note)."""
    argv = ["git", *_SAFE, *args]
    shown = "git " + " ".join(args)
    out, err = bytearray(), bytearray()
    proc: trio.Process | None = None
    cut = False

    async def read(stream: trio.abc.ReceiveStream, into: bytearray, limit: int) -> bool:
        """Read to EOF keeping `limit` bytes; True when more came (the process is then
        killed: the rest is not wanted)."""
        async for data in stream:
            room = limit - len(into)
            into += data[:room]
            if len(data) > room:
                assert proc is not None
                proc.kill()
                return True
        return False

    async def read_errors(stream: trio.abc.ReceiveStream) -> None:
        async for data in stream:
            err.extend(data[: max(0, MAX_GIT_ERROR * 4 - len(err))])

    failure: str | None = None  # raised outside the nursery (not as a group)
    with trio.move_on_after(GIT_TIMEOUT) as timer:
        async with trio.open_nursery() as nursery:
            try:
                proc = await nursery.start(
                    partial(
                        trio.run_process,
                        argv,
                        cwd=cwd,
                        env={**os.environ, **_ENV},
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        check=False,
                    )
                )
            except FileNotFoundError:
                failure = "cannot review: git is not installed (it is not on PATH)"
            except OSError as exc:
                failure = f"cannot review: {shown} could not be started: {exc}"
            else:
                assert proc.stdout is not None and proc.stderr is not None
                nursery.start_soon(read_errors, proc.stderr)
                cut = await read(proc.stdout, out, MAX_GIT_OUTPUT)
    if failure is not None:
        raise TurnFailed(failure)
    if timer.cancelled_caught:
        raise TurnFailed(f"cannot review: {shown} took longer than {GIT_TIMEOUT:g} s")
    assert proc is not None
    text = out.decode("utf-8", errors="replace")
    if cut:
        return text + f"\n[... cut: the output of `{shown}` is longer than {MAX_GIT_OUTPUT} bytes]"
    if proc.returncode != 0:
        message = err.decode("utf-8", errors="replace").strip()
        if "not a git repository" in message:
            raise TurnFailed(f"cannot review: {cwd} is not in a git repository")
        raise _GitFailed(
            f"cannot review: `{shown}` failed (exit {proc.returncode}): "
            f"{message[:MAX_GIT_ERROR] or 'no message'}"
        )
    return text
