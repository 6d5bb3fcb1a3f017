"""The official SDK's documented turn flows: quickstart, run, stream, failure, interrupt."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from openai_codex import ApprovalMode, Sandbox, TurnResult
from openai_codex.generated.v2_all import (
    AgentMessageDeltaNotification,
    AgentMessageThreadItem,
    CommandExecutionStatus,
    CommandExecutionThreadItem,
    ErrorNotification,
    FileChangeThreadItem,
    IdleThreadStatus,
    ItemCompletedNotification,
    ItemStartedNotification,
    PatchApplyStatus,
    ReasoningThreadItem,
    SystemErrorThreadStatus,
    TurnCompletedNotification,
    TurnStartedNotification,
    TurnStatus,
    UserMessageThreadItem,
)

from .support import SdkEnv, root, untyped


def item_types(result: TurnResult) -> list[str]:
    return [root(item).type for item in result.items]


def test_initialize_reports_the_codex_release(sdk: SdkEnv) -> None:
    """SDKs gate features on `serverInfo.version` (first word), else on `userAgent`."""
    with sdk.codex() as codex:
        meta = codex.metadata
        assert meta.serverInfo is not None
        assert meta.serverInfo.name == "appserver"
        assert (meta.serverInfo.version or "").split()[0] == "0.171.0"
        assert (meta.userAgent or "").startswith("appserver/")
        assert meta.platformFamily == "unix"
    init = sdk.wire.sent("initialize")
    assert init[0]["capabilities"] == {"experimentalApi": True}


def test_quickstart_thread_start_defaults(sdk: SdkEnv) -> None:
    """README quickstart: `thread_start()` (approval mode auto_review) then `run()`."""
    with sdk.codex() as codex:
        thread = codex.thread_start()
        result = thread.run("Explain this repository in three bullets.")
        assert result.final_response == "You said: Explain this repository in three bullets."
        assert result.status == TurnStatus.completed
        assert result.error is None

        read = thread.read().thread
        assert read.id == thread.id
        assert read.ephemeral is False
        assert Path(root(read.cwd)) == sdk.workdir.resolve()
        assert read.preview == "Explain this repository in three bullets."
        assert isinstance(read.status.root, IdleThreadStatus)

    start = sdk.wire.sent("thread/start")
    assert start == [{"approvalPolicy": "on-request", "approvalsReviewer": "auto_review"}]
    assert sdk.wire.error_responses() == []


def test_thread_start_deny_all(sdk: SdkEnv) -> None:
    """`ApprovalMode.deny_all` is approvalPolicy `never`: a command runs without asking."""
    with sdk.codex() as codex:
        thread = codex.thread_start(approval_mode=ApprovalMode.deny_all)
        result = thread.run("/run echo unasked")
        commands = [root(i) for i in result.items if root(i).type == "commandExecution"]
        assert len(commands) == 1
        assert commands[0].status == CommandExecutionStatus.completed
        assert (commands[0].aggregated_output or "").strip() == "unasked"
    assert sdk.wire.sent("thread/start") == [{"approvalPolicy": "never"}]
    assert not [m for d, m in sdk.wire.messages if d == "<<" and "method" in m and "id" in m]


def test_run_final_response_and_items(sdk: SdkEnv) -> None:
    with sdk.codex() as codex:
        thread = codex.thread_start()
        result = thread.run("/think pondering\n/say hello world")

        assert result.final_response == "hello world"
        assert result.status == TurnStatus.completed
        assert item_types(result) == ["userMessage", "reasoning", "agentMessage"]
        user, reasoning, agent = (root(i) for i in result.items)
        assert isinstance(user, UserMessageThreadItem)
        assert root(user.content[0]).text == "/think pondering\n/say hello world"
        assert isinstance(reasoning, ReasoningThreadItem)
        assert reasoning.summary == ["pondering"]
        assert isinstance(agent, AgentMessageThreadItem)
        assert agent.text == "hello world"
        assert result.started_at is not None
        assert result.completed_at is not None
        assert result.completed_at >= result.started_at
        assert result.duration_ms is not None

        # Ids round-trip: the stored turn is the one the SDK collected.
        turns = thread.read(include_turns=True).thread.turns
        assert [t.id for t in turns] == [result.id]
        assert turns[0].status == TurnStatus.completed
        assert [root(i).id for i in turns[0].items] == [root(i).id for i in result.items]

        # A second turn on the same thread.
        again = thread.run("plain words")
        assert again.final_response == "You said: plain words"
        assert again.id != result.id

    turn_starts = sdk.wire.sent("turn/start")
    assert turn_starts[0] == {
        "threadId": thread.id,
        "input": [{"type": "text", "text": "/think pondering\n/say hello world"}],
    }
    assert sdk.wire.error_responses() == []


def test_turn_stream_until_completion(sdk: SdkEnv) -> None:
    with sdk.codex() as codex:
        thread = codex.thread_start()
        handle = thread.turn("/stream 5 4")
        events = list(handle.stream())

    assert untyped(events) == []
    methods = [e.method for e in events]
    assert methods[0] == "turn/started"
    assert methods[-1] == "turn/completed"
    started = events[0].payload
    assert isinstance(started, TurnStartedNotification)
    assert started.turn.id == handle.id
    assert started.thread_id == thread.id

    deltas = [e.payload for e in events if isinstance(e.payload, AgentMessageDeltaNotification)]
    assert len(deltas) == 5
    assert all(len(d.delta) == 4 for d in deltas)
    completed_items = [
        root(e.payload.item) for e in events if isinstance(e.payload, ItemCompletedNotification)
    ]
    started_items = [
        root(e.payload.item) for e in events if isinstance(e.payload, ItemStartedNotification)
    ]
    assert [i.type for i in started_items] == ["userMessage", "agentMessage"]
    assert [i.type for i in completed_items] == ["userMessage", "agentMessage"]
    agent = completed_items[1]
    assert {d.item_id for d in deltas} == {agent.id}
    assert "".join(d.delta for d in deltas) == agent.text
    assert len(agent.text) == 20

    # Deltas come between the agent message's item/started and item/completed.
    agent_start = next(
        n
        for n, e in enumerate(events)
        if isinstance(e.payload, ItemStartedNotification) and root(e.payload.item).id == agent.id
    )
    agent_done = next(
        n
        for n, e in enumerate(events)
        if isinstance(e.payload, ItemCompletedNotification) and root(e.payload.item).id == agent.id
    )
    delta_positions = [
        n for n, e in enumerate(events) if isinstance(e.payload, AgentMessageDeltaNotification)
    ]
    assert agent_start < min(delta_positions) <= max(delta_positions) < agent_done

    done = events[-1].payload
    assert isinstance(done, TurnCompletedNotification)
    assert done.turn.id == handle.id
    assert done.turn.status == TurnStatus.completed
    assert sdk.wire.error_responses() == []


def test_failing_turn(sdk: SdkEnv) -> None:
    """`run()` raises RuntimeError with the turn's error message; the stream shows the
    `error` notification and a `failed` turn; the thread is `systemError` until the next turn."""
    with sdk.codex() as codex:
        thread = codex.thread_start()
        with pytest.raises(RuntimeError, match=r"^boom$"):
            thread.run("/fail boom")
        assert isinstance(thread.read().thread.status.root, SystemErrorThreadStatus)

        handle = thread.turn("/fail second boom")
        events = list(handle.stream())
        assert untyped(events) == []
        errors = [e.payload for e in events if isinstance(e.payload, ErrorNotification)]
        assert len(errors) == 1
        assert errors[0].error.message == "second boom"
        assert errors[0].will_retry is False
        assert errors[0].turn_id == handle.id
        done = events[-1].payload
        assert isinstance(done, TurnCompletedNotification)
        assert done.turn.status == TurnStatus.failed
        assert done.turn.error is not None
        assert done.turn.error.message == "second boom"

        turns = thread.read(include_turns=True).thread.turns
        assert [t.status for t in turns] == [TurnStatus.failed, TurnStatus.failed]
        assert turns[0].error is not None
        assert turns[0].error.message == "boom"

        ok = thread.run("/say recovered")
        assert ok.final_response == "recovered"
        assert isinstance(thread.read().thread.status.root, IdleThreadStatus)


def test_interrupt_a_sleeping_turn(sdk: SdkEnv) -> None:
    with sdk.codex() as codex:
        thread = codex.thread_start()
        began = time.monotonic()
        handle = thread.turn("/sleep 30")
        handle.interrupt()
        result = handle.run()
        assert time.monotonic() - began < 10
        assert result.id == handle.id
        assert result.status == TurnStatus.interrupted

        turns = thread.read(include_turns=True).thread.turns
        assert [(t.id, t.status) for t in turns] == [(handle.id, TurnStatus.interrupted)]

        after = thread.run("/say still here")
        assert after.final_response == "still here"
    assert sdk.wire.sent("turn/interrupt") == [{"threadId": thread.id, "turnId": handle.id}]
    assert sdk.wire.error_responses() == []


def test_default_approval_handler_accepts_commands(sdk: SdkEnv) -> None:
    """`Codex()` answers every approval request `accept` (its default handler), so a `/run`
    under the quickstart's on-request policy runs."""
    with sdk.codex() as codex:
        thread = codex.thread_start()
        result = thread.run("/run echo hi")
    commands = [root(i) for i in result.items if isinstance(root(i), CommandExecutionThreadItem)]
    assert len(commands) == 1
    assert commands[0].status == CommandExecutionStatus.completed
    assert (commands[0].aggregated_output or "") == "hi\n"
    assert commands[0].exit_code == 0
    requests = [m for d, m in sdk.wire.messages if d == "<<" and "method" in m and "id" in m]
    assert [r["method"] for r in requests] == ["item/commandExecution/requestApproval"]
    answers = [m for d, m in sdk.wire.messages if d == ">>" and m.get("id") == requests[0]["id"]]
    assert answers == [{"id": requests[0]["id"], "result": {"decision": "accept"}}]


def test_sandbox_presets_on_thread_and_turn(sdk: SdkEnv) -> None:
    """`Sandbox` presets: a thread's `sandbox` mode and a turn's `sandboxPolicy` override
    (which the SDK sends with `excludeSlashTmp`/`excludeTmpdirEnvVar` and empty roots)."""
    with sdk.codex() as codex:
        locked = codex.thread_start(sandbox=Sandbox.read_only)
        refused = locked.run("/write locked.txt nope")
        [change] = [root(i) for i in refused.items if isinstance(root(i), FileChangeThreadItem)]
        assert change.status == PatchApplyStatus.failed
        assert not (sdk.workdir / "locked.txt").exists()

        # The turn's own override wins for that turn and the ones after it.
        opened = locked.run("/write opened.txt yes", sandbox=Sandbox.workspace_write)
        [change] = [root(i) for i in opened.items if isinstance(root(i), FileChangeThreadItem)]
        assert change.status == PatchApplyStatus.completed
        assert (sdk.workdir / "opened.txt").read_text() == "yes\n"

        thread = codex.thread_start()
        closed = thread.run("/write closed.txt no", sandbox=Sandbox.read_only)
        [change] = [root(i) for i in closed.items if isinstance(root(i), FileChangeThreadItem)]
        assert change.status == PatchApplyStatus.failed
        assert not (sdk.workdir / "closed.txt").exists()

    starts = sdk.wire.sent("thread/start")
    assert starts[0]["sandbox"] == "read-only"
    turn_policies = [p.get("sandboxPolicy") for p in sdk.wire.sent("turn/start")]
    assert turn_policies[1] == {
        "type": "workspaceWrite",
        "writableRoots": [],
        "networkAccess": False,
        "excludeSlashTmp": False,
        "excludeTmpdirEnvVar": False,
    }
    assert turn_policies[2] == {"type": "readOnly", "networkAccess": False}
    assert sdk.wire.error_responses() == []
