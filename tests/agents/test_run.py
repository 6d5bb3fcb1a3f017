"""`/run`: real subprocesses, approvals (PROTOCOL.md §7.1, §7.3), interrupts (§5.10)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import trio

from appserver.agents.base import ApprovalDecision, TurnCancelled, TurnFailed

from .helpers import process_alive, run, run_and_cancel, wait_process_group_gone
from .recording import RecordingContext


def only_command(ctx: RecordingContext) -> dict[str, Any]:
    (item,) = ctx.completed("commandExecution")
    return item


def messages(ctx: RecordingContext) -> list[str]:
    return [item["text"] for item in ctx.completed("agentMessage")]


async def test_run_streams_output_and_completes(tmp_path: Path) -> None:
    ctx = RecordingContext(str(tmp_path))
    await run(ctx, "/run echo out; echo err >&2; pwd")
    (started,) = ctx.started()
    item_id = started["id"]
    assert started == {
        "id": item_id,
        "type": "commandExecution",
        "command": "echo out; echo err >&2; pwd",
        "cwd": str(tmp_path),
        "processId": None,
        "source": "agent",
        "pluginId": None,
        "scriptPath": None,
        "status": "inProgress",
        "commandActions": [{"type": "unknown", "command": "echo out; echo err >&2; pwd"}],
        "aggregatedOutput": None,
        "exitCode": None,
        "durationMs": None,
    }
    completed = only_command(ctx)
    output = f"out\nerr\n{await trio.Path(tmp_path).resolve()}\n"
    assert ctx.output(item_id) == output
    assert completed == {
        **started,
        "status": "completed",
        "aggregatedOutput": output,
        "exitCode": 0,
        "processId": completed["processId"],
        "durationMs": completed["durationMs"],
    }
    assert completed["processId"].isdigit()
    assert isinstance(completed["durationMs"], int) and completed["durationMs"] >= 0
    assert ctx.approvals() == []


async def test_failing_exit_code_fails_the_item_not_the_turn(tmp_path: Path) -> None:
    ctx = RecordingContext(str(tmp_path))
    await run(ctx, "/run echo partial; exit 3\n/run kill -9 $$\n/say next")
    exited, killed = ctx.completed("commandExecution")
    assert (exited["status"], exited["exitCode"], exited["aggregatedOutput"]) == (
        "failed",
        3,
        "partial\n",
    )
    assert (killed["status"], killed["exitCode"]) == ("failed", 137)
    assert messages(ctx) == ["next"]


async def test_stdin_is_empty_and_output_is_decoded_incrementally(tmp_path: Path) -> None:
    ctx = RecordingContext(str(tmp_path))
    await run(ctx, r"/run cat; printf '\303'; printf '\251\n'; printf 'bad \377\n'")
    assert only_command(ctx)["aggregatedOutput"] == "é\nbad \ufffd\n"


async def test_background_leftovers_are_killed_when_the_shell_exits(tmp_path: Path) -> None:
    ctx = RecordingContext(str(tmp_path))
    await run(ctx, "/run sleep 30 & echo $!")  # finishes long before 30 s (run's timeout)
    item = only_command(ctx)
    assert item["status"] == "completed"
    await wait_process_group_gone(int(item["processId"]))
    assert not process_alive(int(item["aggregatedOutput"]))


async def test_unstartable_command_fails_the_item(tmp_path: Path) -> None:
    ctx = RecordingContext(str(tmp_path / "missing"))
    await run(ctx, "/run echo hi\n/say next")
    item = only_command(ctx)
    assert (item["status"], item["exitCode"], item["processId"]) == ("failed", None, None)
    assert item["aggregatedOutput"].startswith("failed to start /bin/sh:")
    assert messages(ctx) == ["next"]


@pytest.mark.parametrize(
    ("policy", "sandbox", "asked"),
    [
        ("never", "workspace-write", False),
        ("never", "danger-full-access", False),
        ("never", "read-only", True),
        ("on-request", "workspace-write", True),
        ("on-request", "danger-full-access", True),
        ("on-failure", "workspace-write", True),
        ("untrusted", "read-only", True),
    ],
)
async def test_approval_required_by_policy_and_sandbox(
    tmp_path: Path, policy: str, sandbox: str, asked: bool
) -> None:
    ctx = RecordingContext(
        str(tmp_path), approval_policy=policy, sandbox=sandbox, decisions=["accept"] * asked
    )
    await run(ctx, "/run echo ran")
    item = only_command(ctx)
    assert item["aggregatedOutput"] == "ran\n"
    assert len(ctx.approvals()) == int(asked)
    if asked:
        kind, params = ctx.approvals()[0]
        assert kind == "commandExecution"
        assert params == {
            "itemId": item["id"],
            "command": "echo ran",
            "cwd": str(tmp_path),
            "commandActions": [{"type": "unknown", "command": "echo ran"}],
        }
        names = [e.name for e in ctx.events]
        assert names.index("started") < names.index("approval") < names.index("output_delta")


async def test_accept_for_session_is_not_asked_again(tmp_path: Path) -> None:
    session: set[str] = set()
    ctx = RecordingContext(
        str(tmp_path),
        approval_policy="on-request",
        decisions=["acceptForSession", "accept"],
        session_approvals=session,
    )
    await run(ctx, "/run echo a\n/run echo a\n/run echo b")
    assert [i["aggregatedOutput"] for i in ctx.completed()] == ["a\n", "a\n", "b\n"]
    assert [params["command"] for _, params in ctx.approvals()] == ["echo a", "echo b"]
    # The next turn of the same (loaded) thread shares the session set.
    ctx2 = RecordingContext(str(tmp_path), approval_policy="on-request", session_approvals=session)
    await run(ctx2, "/run echo a")
    assert only_command(ctx2)["status"] == "completed"


async def test_decline_skips_the_command_and_goes_on(tmp_path: Path) -> None:
    ctx = RecordingContext(str(tmp_path), approval_policy="on-request", decisions=["decline"])
    await run(ctx, "/run touch marker\n/say next")
    item = only_command(ctx)
    assert (item["status"], item["exitCode"], item["aggregatedOutput"]) == ("declined", None, None)
    assert not (tmp_path / "marker").exists()
    assert messages(ctx) == ["next"]


async def test_cancel_declines_the_item_and_cancels_the_turn(tmp_path: Path) -> None:
    ctx = RecordingContext(str(tmp_path), approval_policy="on-request", decisions=["cancel"])
    with pytest.raises(TurnCancelled):
        await run(ctx, "/run touch marker\n/say never")
    assert only_command(ctx)["status"] == "declined"
    assert ctx.events[-1].name == "completed"
    assert not (tmp_path / "marker").exists()
    assert messages(ctx) == []


async def test_error_answer_fails_the_item_and_goes_on(tmp_path: Path) -> None:
    ctx = RecordingContext(str(tmp_path), approval_policy="on-request", decisions=["error"])
    await run(ctx, "/run touch marker\n/say next")
    assert only_command(ctx)["status"] == "failed"
    assert not (tmp_path / "marker").exists()
    assert messages(ctx) == ["next"]


def part_approvals(ctx: RecordingContext, item_id: str) -> list[dict[str, Any]]:
    approvals = [params for _, params in ctx.approvals()]
    assert {p["itemId"] for p in approvals} == {item_id}
    ids = [p["approvalId"] for p in approvals]
    assert len(set(ids)) == len(ids)
    assert all(uuid.UUID(i) for i in ids)
    return approvals


async def test_chain_asks_per_part_just_before_it_runs(tmp_path: Path) -> None:
    decisions: list[ApprovalDecision] = ["accept", "decline"]
    ctx = RecordingContext(str(tmp_path), approval_policy="on-request", decisions=decisions)
    await run(ctx, "/run echo one && touch two &&echo three\n/say next")
    item = only_command(ctx)
    approvals = part_approvals(ctx, item["id"])
    assert [(p["command"], p["commandActions"]) for p in approvals] == [
        ("echo one", [{"type": "unknown", "command": "echo one"}]),
        ("touch two", [{"type": "unknown", "command": "touch two"}]),
    ]
    assert approvals[0]["cwd"] == str(tmp_path)
    names = [e.name for e in ctx.events]
    assert names[:4] == ["started", "approval", "output_delta", "approval"]
    assert item["command"] == "echo one && touch two &&echo three"
    assert (item["status"], item["aggregatedOutput"]) == ("declined", "one\n")
    assert not (tmp_path / "two").exists()
    assert messages(ctx) == ["next"]


async def test_chain_stops_at_first_failing_part(tmp_path: Path) -> None:
    ctx = RecordingContext(str(tmp_path), approval_policy="on-request", decisions=["accept"] * 3)
    await run(ctx, "/run echo one && exit 4 && touch three")
    item = only_command(ctx)
    assert len(part_approvals(ctx, item["id"])) == 2
    assert (item["status"], item["exitCode"], item["aggregatedOutput"]) == ("failed", 4, "one\n")
    assert not (tmp_path / "three").exists()


async def test_chain_cancel_and_error(tmp_path: Path) -> None:
    ctx = RecordingContext(str(tmp_path), approval_policy="on-request", decisions=["error"])
    await run(ctx, "/run echo one && echo two")
    assert only_command(ctx)["status"] == "failed"

    ctx = RecordingContext(
        str(tmp_path), approval_policy="on-request", decisions=["accept", "cancel"]
    )
    with pytest.raises(TurnCancelled):
        await run(ctx, "/run echo one && echo two\n/say never")
    assert (only_command(ctx)["status"], only_command(ctx)["aggregatedOutput"]) == (
        "declined",
        "one\n",
    )


async def test_chain_accept_for_session_remembers_the_part(tmp_path: Path) -> None:
    decisions: list[ApprovalDecision] = ["acceptForSession", "accept", "accept"]
    ctx = RecordingContext(str(tmp_path), approval_policy="on-request", decisions=decisions)
    await run(ctx, "/run echo a && echo b\n/run echo a\n/run echo b && echo a")
    assert [params["command"] for _, params in ctx.approvals()] == ["echo a", "echo b", "echo b"]
    assert [i["aggregatedOutput"] for i in ctx.completed()] == ["a\nb\n", "a\n", "b\na\n"]


async def test_chain_without_approval_runs_as_one_shell(tmp_path: Path) -> None:
    ctx = RecordingContext(str(tmp_path))
    await run(ctx, "/run X=1 && echo $X && false && echo no")
    item = only_command(ctx)
    assert (item["status"], item["exitCode"], item["aggregatedOutput"]) == ("failed", 1, "1\n")
    assert ctx.approvals() == []


def first_output_lines(n: int) -> Any:
    def ready(ctx: RecordingContext) -> bool:
        return "".join(e.data for e in ctx.named("output_delta")).count("\n") >= n

    return ready


async def test_interrupt_kills_the_running_command(tmp_path: Path) -> None:
    ctx = RecordingContext(str(tmp_path))
    await run_and_cancel(ctx, "/run echo $$; sleep 30\n/say never", first_output_lines(1))
    (item_id,) = ctx.open_items  # the thread, not the agent, completes it
    pgid = int(ctx.output(item_id))
    await wait_process_group_gone(pgid)


async def test_interrupt_kills_background_grandchildren(tmp_path: Path) -> None:
    ctx = RecordingContext(str(tmp_path))
    script = "/run echo $$; sh -c 'sleep 30 & echo $!; sleep 30'"
    await run_and_cancel(ctx, script, first_output_lines(2))
    (item_id,) = ctx.open_items
    pgid, grandchild = map(int, ctx.output(item_id).split())
    await wait_process_group_gone(pgid)
    assert not process_alive(grandchild)


async def test_interrupt_while_waiting_for_approval(tmp_path: Path) -> None:
    ctx = RecordingContext(str(tmp_path), approval_policy="on-request", decisions=[None])
    await run_and_cancel(ctx, "/run touch marker", lambda c: bool(c.approvals()))
    assert list(ctx.open_items.values()) == ["commandExecution"]
    assert not (tmp_path / "marker").exists()


# --- one shell runs the whole chain (PROTOCOL.md §10) --------------------------------------


async def plain_sh(cwd: Path, command: str) -> tuple[int, str]:
    """What `/bin/sh -c command` does on its own (stdin /dev/null, stderr into stdout)."""
    done = await trio.run_process(
        ["/bin/sh", "-c", command], cwd=cwd, capture_stdout=True, stderr=-2, check=False
    )
    return done.returncode, done.stdout.decode()


@pytest.mark.parametrize(
    ("command", "parts"),
    [
        ('echo "a && b"', None),
        ("true && (false && echo no) && echo yes", ["true", "(false && echo no)", "echo yes"]),
        ("{ echo a && echo b; } && echo c", ["{ echo a && echo b; }", "echo c"]),
        (
            "if true && true; then echo a; fi && echo b",
            ["if true && true; then echo a; fi", "echo b"],
        ),
        ("echo ab | tr a b && ! false", ["echo ab | tr a b", "! false"]),
        ("echo a&&echo b # && echo c", ["echo a", "echo b"]),
        ("cd sub && X=$(pwd) && echo $X $LINENO $0", ["cd sub", "X=$(pwd)", "echo $X $LINENO $0"]),
        ("ls /proc/self/fd && cat && echo after", ["ls /proc/self/fd", "cat", "echo after"]),
        ("nosuchcommand_zz && echo never", ["nosuchcommand_zz", "echo never"]),
        ("echo a && echo b;", ["echo a", "echo b"]),
        # Not a plain `&&` chain: approved as a whole, never split textually.
        ("false || echo x && echo y", None),
        ("echo a && false; echo c", None),
        ("echo $(echo a && echo b) && echo c", None),  # bashlex cannot parse it
        ("echo $'a' && echo b", None),  # bash and sh read `$'…'` differently
        ("x=; echo \"${x:-'}'}\" && echo b", None),
        ("echo ( && echo b", None),  # a syntax error, to sh as to bashlex
    ],
)
async def test_chain_runs_exactly_as_plain_sh(
    tmp_path: Path, command: str, parts: list[str] | None
) -> None:
    (tmp_path / "sub").mkdir()
    expected = await plain_sh(tmp_path, command)
    asked = [command] if parts is None else parts
    for policy in ("never", "on-request"):
        ctx = RecordingContext(
            str(tmp_path), approval_policy=policy, decisions=["accept"] * len(asked)
        )
        await run(ctx, f"/run {command}")
        item = only_command(ctx)
        assert (item["exitCode"], item["aggregatedOutput"]) == expected, policy
        assert item["command"] == ctx.started()[0]["command"] == command
        if policy == "never":
            assert ctx.approvals() == []
        elif expected[0] != 2:  # a syntax error stops the shell before it asks
            requests = [params for _, params in ctx.approvals()]
            assert [p["command"] for p in requests] == asked[: len(requests)]
            assert all(("approvalId" in p) == (parts is not None) for p in requests)


async def test_chain_request_names_the_directory_and_follows_the_output(tmp_path: Path) -> None:
    """A part's request comes after all the output of the parts before it (beyond what a
    pipe buffers), names the directory the shell is in, and gates go on when the command
    has closed its output."""
    (tmp_path / "sub").mkdir()
    ctx = RecordingContext(str(tmp_path), approval_policy="on-request", decisions=["accept"] * 4)
    await run(ctx, "/run cd sub && head -c 200000 /dev/zero && exec >/dev/null 2>&1 && touch f")
    assert [p["cwd"] for _, p in ctx.approvals()] == [str(tmp_path)] + [str(tmp_path / "sub")] * 3
    third = [i for i, e in enumerate(ctx.events) if e.name == "approval"][2]  # exec's
    before_third = ctx.events[:third]
    assert "".join(e.data for e in before_third if e.name == "output_delta") == "\0" * 200000
    assert (tmp_path / "sub" / "f").exists() and not (tmp_path / "f").exists()
    assert only_command(ctx)["status"] == "completed"


async def test_declined_first_part_ran_nothing(tmp_path: Path) -> None:
    ctx = RecordingContext(str(tmp_path), approval_policy="on-request", decisions=["decline"])
    await run(ctx, "/run echo 'a && b' > one && touch two")
    assert [p["command"] for _, p in ctx.approvals()] == ["echo 'a && b' > one"]
    item = only_command(ctx)
    assert (item["status"], item["exitCode"], item["processId"]) == ("declined", None, None)
    assert (item["aggregatedOutput"], item["durationMs"]) == (None, None)
    assert not (tmp_path / "one").exists()


@pytest.mark.parametrize("policy", ["never", "on-request"])
async def test_nul_in_command_is_refused_before_anything(tmp_path: Path, policy: str) -> None:
    ctx = RecordingContext(str(tmp_path), approval_policy=policy)
    with pytest.raises(TurnFailed, match="NUL"):
        await run(ctx, "/run touch marker && echo a\0b")
    assert ctx.events == []
    assert not (tmp_path / "marker").exists()


async def test_accept_for_session_never_applies_under_read_only(tmp_path: Path) -> None:
    session: set[str] = set()
    decisions: list[ApprovalDecision] = ["acceptForSession"] * 4
    ctx = RecordingContext(
        str(tmp_path),
        sandbox="read-only",
        decisions=decisions,
        session_approvals=session,
    )
    await run(ctx, "/run echo a\n/run echo a && echo a")
    assert [p["command"] for _, p in ctx.approvals()] == ["echo a"] * 3
    assert session == set()  # not remembered either
    ctx = RecordingContext(
        str(tmp_path), approval_policy="on-request", decisions=["accept"], session_approvals=session
    )
    await run(ctx, "/run echo a")  # so workspace-write asks too
    assert len(ctx.approvals()) == 1
