"""`/write`: real files, sandbox rules and approvals (PROTOCOL.md §7.3, §10)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from appserver.agents.base import ApprovalDecision, TurnCancelled, TurnFailed

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


@pytest.mark.parametrize("path", ["missing/f.txt", "dir"])
async def test_write_errors_fail_the_item_and_go_on(workspace: Path, path: str) -> None:
    (workspace / "dir").mkdir()
    ctx = RecordingContext(str(workspace))
    await run(ctx, f"/write {path} text\n/say next")
    item = only_change(ctx)
    assert item["status"] == "failed"
    assert ctx.output(item["id"]).startswith(f"write failed: {workspace / path}: ")
    assert messages(ctx) == ["next"]
