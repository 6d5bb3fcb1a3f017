"""`/write`: real files, sandbox rules and approvals (PROTOCOL.md §7.3, §10)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from appserver.agents.base import ApprovalDecision, ApprovalKind, TurnCancelled, TurnFailed
from appserver.agents.safe_open import WriteRefused, Written, write_below

from .helpers import run
from .recording import RecordingContext


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    (tmp_path / "outside").mkdir()
    return ws


def only_change(ctx: RecordingContext) -> dict[str, Any]:
    (item,) = ctx.completed("fileChange")
    return item


def messages(ctx: RecordingContext) -> list[str]:
    return [item["text"] for item in ctx.completed("agentMessage")]


async def test_write_adds_a_file(workspace: Path) -> None:
    ctx = RecordingContext(str(workspace), approval_policy="on-request", decisions=["accept"])
    await run(ctx, "/write notes.txt hello  world")
    target = workspace / "notes.txt"
    assert target.read_bytes() == b"hello  world\n"
    (started,) = ctx.started()
    path = str(target)
    diff = f"--- /dev/null\n+++ {path}\n@@ -0,0 +1 @@\n+hello  world\n"
    assert started == {
        "id": started["id"],
        "type": "fileChange",
        "changes": [{"path": path, "kind": {"type": "add"}, "diff": diff}],
        "status": "inProgress",
    }
    assert only_change(ctx) == {**started, "status": "completed"}
    assert ctx.approvals() == [
        ("fileChange", {"itemId": started["id"], "reason": None, "grantRoot": None})
    ]
    assert ctx.output(started["id"]) == f"wrote 13 bytes to {path}\n"
    assert [e.name for e in ctx.events] == ["started", "approval", "file_delta", "completed"]


async def test_write_updates_a_file(workspace: Path) -> None:
    target = workspace / "sub" / "f.txt"
    target.parent.mkdir()
    target.write_text("old\nkept")
    ctx = RecordingContext(str(workspace))
    await run(ctx, "/write ./sub/../sub/f.txt new")
    assert target.read_text() == "new\n"
    change = only_change(ctx)["changes"][0]
    assert change["path"] == str(target)
    assert change["kind"] == {"type": "update", "move_path": None}
    assert change["diff"] == (
        f"--- {target}\n+++ {target}\n@@ -1,2 +1 @@\n-old\n-kept\n\\ No newline at end of file\n"
        "+new\n"
    )
    assert ctx.approvals() == []


async def test_write_without_text_writes_a_newline(workspace: Path) -> None:
    ctx = RecordingContext(str(workspace))
    await run(ctx, "/write empty.txt")
    assert (workspace / "empty.txt").read_bytes() == b"\n"


async def test_write_without_path_fails_the_turn(workspace: Path) -> None:
    ctx = RecordingContext(str(workspace))
    with pytest.raises(TurnFailed, match="/write expects a path"):
        await run(ctx, "/write")


@pytest.mark.parametrize("policy", ["never", "on-request"])
async def test_read_only_sandbox_fails_writes_without_asking(workspace: Path, policy: str) -> None:
    ctx = RecordingContext(str(workspace), approval_policy=policy, sandbox="read-only")
    await run(ctx, "/write f.txt text\n/say next")
    assert only_change(ctx)["status"] == "failed"
    assert not (workspace / "f.txt").exists()
    assert ctx.approvals() == []
    assert messages(ctx) == ["next"]


def escape(workspace: Path, how: str) -> str:
    """Set up an escape from `workspace` and return the PATH argument that uses it."""
    outside = workspace.parent / "outside"
    if how == "dotdot":
        return "../outside/f.txt"
    if how == "absolute":
        return str(outside / "f.txt")
    if how == "symlinked file":
        (workspace / "link.txt").symlink_to(outside / "f.txt")
        return "link.txt"
    if how == "symlinked existing file":
        (outside / "f.txt").write_text("secret\n")
        (workspace / "link.txt").symlink_to(outside / "f.txt")
        return "link.txt"
    assert how == "symlinked parent"
    (workspace / "dir").symlink_to(outside)
    return "dir/f.txt"


HOWS = ["dotdot", "absolute", "symlinked file", "symlinked existing file", "symlinked parent"]


@pytest.mark.parametrize("how", HOWS)
async def test_workspace_write_refuses_escapes_without_asking(workspace: Path, how: str) -> None:
    ctx = RecordingContext(str(workspace), approval_policy="on-request")
    path = escape(workspace, how)
    before = sorted(os.listdir(workspace.parent / "outside"))
    await run(ctx, f"/write {path} text\n/say next")
    item = only_change(ctx)
    assert item["status"] == "failed"
    assert item["changes"][0]["path"] == str(workspace.parent / "outside" / "f.txt")
    assert "secret" not in item["changes"][0]["diff"]
    assert ctx.approvals() == []
    assert sorted(os.listdir(workspace.parent / "outside")) == before
    if before:
        assert (workspace.parent / "outside" / "f.txt").read_text() == "secret\n"
    assert messages(ctx) == ["next"]


@pytest.mark.parametrize("how", HOWS)
async def test_full_access_writes_anywhere(workspace: Path, how: str) -> None:
    ctx = RecordingContext(str(workspace), sandbox="danger-full-access")
    await run(ctx, f"/write {escape(workspace, how)} text")
    assert only_change(ctx)["status"] == "completed"
    assert (workspace.parent / "outside" / "f.txt").read_text() == "text\n"


async def test_symlink_inside_the_workspace_is_allowed(workspace: Path) -> None:
    (workspace / "real").mkdir()
    (workspace / "alias").symlink_to(workspace / "real")
    ctx = RecordingContext(str(workspace))
    await run(ctx, "/write alias/f.txt text")
    item = only_change(ctx)
    assert item["status"] == "completed"
    assert item["changes"][0]["path"] == str(workspace / "real" / "f.txt")
    assert (workspace / "real" / "f.txt").read_text() == "text\n"


async def test_decline_and_error_leave_the_file_alone(workspace: Path) -> None:
    decisions: list[ApprovalDecision] = ["decline", "error"]
    ctx = RecordingContext(str(workspace), approval_policy="untrusted", decisions=decisions)
    await run(ctx, "/write a.txt x\n/write b.txt y\n/say next")
    assert [i["status"] for i in ctx.completed("fileChange")] == ["declined", "failed"]
    assert sorted(os.listdir(workspace)) == []
    assert messages(ctx) == ["next"]


async def test_cancel_declines_and_cancels_the_turn(workspace: Path) -> None:
    ctx = RecordingContext(str(workspace), approval_policy="on-request", decisions=["cancel"])
    with pytest.raises(TurnCancelled):
        await run(ctx, "/write a.txt x\n/say never")
    assert only_change(ctx)["status"] == "declined"
    assert not (workspace / "a.txt").exists()
    assert messages(ctx) == []


async def test_accept_for_session_remembers_the_path(workspace: Path) -> None:
    decisions: list[ApprovalDecision] = ["acceptForSession", "accept"]
    ctx = RecordingContext(str(workspace), approval_policy="on-request", decisions=decisions)
    await run(ctx, "/write a.txt 1\n/write ./a.txt 2\n/write b.txt 3")
    assert len(ctx.approvals()) == 2
    assert [i["status"] for i in ctx.completed()] == ["completed"] * 3
    assert (workspace / "a.txt").read_text() == "2\n"
    assert (workspace / "b.txt").read_text() == "3\n"


@pytest.mark.parametrize("path", ["file.txt/f.txt", "dir", "."])
async def test_write_errors_fail_the_item_and_go_on(workspace: Path, path: str) -> None:
    (workspace / "dir").mkdir()
    (workspace / "file.txt").write_text("kept\n")
    ctx = RecordingContext(str(workspace))
    await run(ctx, f"/write {path} text\n/say next")
    item = only_change(ctx)
    assert item["status"] == "failed"
    assert ctx.output(item["id"]).startswith(f"write failed: {(workspace / path).resolve()}: ")
    assert messages(ctx) == ["next"]
    assert (workspace / "file.txt").read_text() == "kept\n"


# --- missing directories, the approval race, odd paths (issue 13) --------------------------


class MeanwhileContext(RecordingContext):
    """Runs `meanwhile()` while an approval request is pending, before answering it."""

    def __init__(self, cwd: str, meanwhile: Callable[[], object], **kwargs: Any) -> None:
        super().__init__(cwd, approval_policy="on-request", **kwargs)
        self.meanwhile = meanwhile

    async def request_approval(
        self, kind: ApprovalKind, params: dict[str, Any]
    ) -> ApprovalDecision:
        self.meanwhile()
        return await super().request_approval(kind, params)


def umasked(mode: int) -> int:
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


async def test_write_creates_missing_directories(workspace: Path) -> None:
    ctx = RecordingContext(str(workspace))
    await run(ctx, "/write notes/a.txt one\n/write deep/er/still/b.txt two")
    assert [i["status"] for i in ctx.completed()] == ["completed", "completed"]
    assert (workspace / "notes" / "a.txt").read_text() == "one\n"
    assert (workspace / "deep" / "er" / "still" / "b.txt").read_text() == "two\n"
    for directory in ("notes", "deep", "deep/er", "deep/er/still"):
        assert (workspace / directory).stat().st_mode & 0o7777 == umasked(0o777)


async def test_dotdot_below_a_missing_directory_stays_lexical(workspace: Path) -> None:
    ctx = RecordingContext(str(workspace))
    await run(ctx, "/write new/sub/../f.txt x")
    assert only_change(ctx)["changes"][0]["path"] == str(workspace / "new" / "f.txt")
    assert (workspace / "new" / "f.txt").read_text() == "x\n"
    assert sorted(os.listdir(workspace / "new")) == ["f.txt"]


@pytest.mark.parametrize("existing", [False, True])
async def test_parent_swapped_for_a_symlink_during_the_approval(
    workspace: Path, existing: bool
) -> None:
    outside = workspace.parent / "outside"
    (workspace / "sub").mkdir()
    if existing:
        (workspace / "sub" / "x.txt").write_text("inside\n")
        (outside / "x.txt").write_text("secret\n")
    before = {p.name: p.read_text() for p in outside.iterdir()}

    def swap() -> None:
        (workspace / "sub").rename(workspace / "moved")
        (workspace / "sub").symlink_to(outside, target_is_directory=True)

    ctx = MeanwhileContext(str(workspace), swap, decisions=["accept"])
    await run(ctx, "/write sub/x.txt hi\n/say next")
    item = only_change(ctx)
    assert item["status"] == "failed"
    assert item["changes"][0]["path"] == str(workspace / "sub" / "x.txt")
    assert ctx.output(item["id"]) == (
        f"refused: {workspace}/sub is a symbolic link (it was not when the write was checked), "
        "not followed; nothing written\n"
    )
    assert {p.name: p.read_text() for p in outside.iterdir()} == before
    assert messages(ctx) == ["next"]


async def test_file_swapped_for_a_symlink_during_the_approval(workspace: Path) -> None:
    outside = workspace.parent / "outside"
    (workspace / "x.txt").write_text("inside\n")

    def swap() -> None:
        (workspace / "x.txt").unlink()
        (workspace / "x.txt").symlink_to(outside / "x.txt")

    ctx = MeanwhileContext(str(workspace), swap, decisions=["accept"])
    await run(ctx, "/write x.txt hi")
    item = only_change(ctx)
    assert item["status"] == "failed"
    assert "symbolic link" in ctx.output(item["id"])
    assert list(outside.iterdir()) == []


async def test_workspace_replaced_during_the_approval(workspace: Path) -> None:
    def swap() -> None:
        workspace.rename(workspace.parent / "old-ws")
        workspace.mkdir()

    ctx = MeanwhileContext(str(workspace), swap, decisions=["accept"])
    await run(ctx, "/write x.txt hi")
    assert only_change(ctx)["status"] == "failed"
    assert ctx.output(only_change(ctx)["id"]).startswith(f"refused: {workspace} was replaced")
    assert os.listdir(workspace) == []
    assert os.listdir(workspace.parent / "old-ws") == []


async def test_the_completed_diff_is_what_was_replaced(workspace: Path) -> None:
    """The file appeared while the approval waited: the item started as an `add` and
    completes as the `update` that was actually written."""
    target = workspace / "f.txt"
    ctx = MeanwhileContext(
        str(workspace), lambda: target.write_text("theirs\n"), decisions=["accept"]
    )
    await run(ctx, "/write f.txt mine")
    assert target.read_text() == "mine\n"
    (started,) = ctx.started()
    assert started["changes"][0]["kind"] == {"type": "add"}
    change = only_change(ctx)["changes"][0]
    assert change["kind"] == {"type": "update", "move_path": None}
    assert change["diff"] == f"--- {target}\n+++ {target}\n@@ -1 +1 @@\n-theirs\n+mine\n"
    assert ctx.output(started["id"]) == (
        f"wrote 5 bytes to {target}\n{target} changed while the approval was pending; "
        "the completed diff shows what this write replaced\n"
    )


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("a\0b.txt", "the path contains a NUL byte"),
        ("sub/\0", "the path contains a NUL byte"),
    ],
)
@pytest.mark.parametrize("policy", ["never", "on-request"])
async def test_an_impossible_path_is_refused_before_asking(
    workspace: Path, path: str, reason: str, policy: str
) -> None:
    ctx = RecordingContext(str(workspace), approval_policy=policy)
    await run(ctx, f"/write {path} text\n/say next")
    item = only_change(ctx)
    assert item["status"] == "failed"
    assert ctx.output(item["id"]) == f"refused: {reason}; nothing written\n"
    assert ctx.approvals() == []
    assert os.listdir(workspace) == []
    assert messages(ctx) == ["next"]


async def test_a_fifo_is_refused_without_blocking(workspace: Path) -> None:
    os.mkfifo(workspace / "fifo")
    ctx = RecordingContext(str(workspace))
    await run(ctx, "/write fifo text")
    item = only_change(ctx)
    assert item["status"] == "failed"
    assert ctx.output(item["id"]) == f"write failed: {workspace / 'fifo'}: not a regular file\n"


async def test_full_access_creates_missing_directories_outside(workspace: Path) -> None:
    target = workspace.parent / "outside" / "new" / "f.txt"
    ctx = RecordingContext(str(workspace), sandbox="danger-full-access")
    await run(ctx, f"/write {target} text")
    assert only_change(ctx)["status"] == "completed"
    assert target.read_text() == "text\n"


# --- safe_open.write_below on its own -----------------------------------------------------


def test_write_below_follows_no_symlink_and_no_dotdot_above_the_root(tmp_path: Path) -> None:
    (tmp_path / "root" / "a").mkdir(parents=True)
    (tmp_path / "root" / "link").symlink_to(tmp_path / "root" / "a")
    root = str(tmp_path / "root")
    assert write_below(root, "a/../b.txt", b"1") == Written(created=True, old=None)
    assert (tmp_path / "root" / "b.txt").read_bytes() == b"1"
    assert write_below(root, "b.txt", b"2") == Written(created=False, old=b"1")
    with pytest.raises(WriteRefused, match="climb above"):
        write_below(root, "../x.txt", b"x")
    with pytest.raises(WriteRefused, match="symbolic link"):
        write_below(root, "link/x.txt", b"x")
    with pytest.raises(WriteRefused, match="symbolic link"):
        write_below(root, "link", b"x")
    with pytest.raises(IsADirectoryError):
        write_below(root, "a/..", b"x")
    assert sorted(os.listdir(tmp_path)) == ["root"]
    assert sorted(os.listdir(tmp_path / "root")) == ["a", "b.txt", "link"]
    assert os.listdir(tmp_path / "root" / "a") == []


def test_write_below_keeps_an_unreadable_file_writable(tmp_path: Path) -> None:
    target = tmp_path / "w.txt"
    target.write_text("old")
    target.chmod(0o200)
    if os.access(target, os.R_OK):
        pytest.skip("running as root: permissions do not stop reading")
    assert write_below(str(tmp_path), "w.txt", b"new") == Written(created=False, old=None)
    target.chmod(0o600)
    assert target.read_bytes() == b"new"
