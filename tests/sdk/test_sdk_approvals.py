"""Approvals answered through `CodexClient(approval_handler=...)`.

The high-level `Codex` has no approval-handler parameter: it always builds its
`CodexClient` with the default handler, which accepts everything. A program that decides
itself builds the `CodexClient` and wraps a thread in the public `Thread(client, id)`
dataclass to keep the high-level `run()`/`turn()`.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import jsonschema
from openai_codex import Thread
from openai_codex.generated.v2_all import (
    CommandExecutionStatus,
    CommandExecutionThreadItem,
    FileChangeThreadItem,
    PatchApplyStatus,
    TurnStatus,
)
from openai_codex.models import JsonObject

from .support import SdkEnv, root

SCHEMA_DIR = Path(__file__).resolve().parents[3] / "shared" / "codex-schema-0.171"
APPROVAL = "item/commandExecution/requestApproval"


class Recorder:
    """An approval handler that answers `decision` and remembers what it was asked."""

    def __init__(self, decision: str) -> None:
        self.decision = decision
        self.calls: list[tuple[str, JsonObject | None]] = []
        self._lock = threading.Lock()

    def __call__(self, method: str, params: JsonObject | None) -> JsonObject:
        with self._lock:
            self.calls.append((method, params))
        return {"decision": self.decision}


def check_approval_params(params: JsonObject | None) -> JsonObject:
    assert params is not None
    schema = json.loads((SCHEMA_DIR / "CommandExecutionRequestApprovalParams.json").read_text())
    jsonschema.validate(params, schema)
    return params


def commands(items: list[object]) -> list[CommandExecutionThreadItem]:
    return [root(i) for i in items if isinstance(root(i), CommandExecutionThreadItem)]


def test_approval_accepted_by_handler(sdk: SdkEnv) -> None:
    handler = Recorder("accept")
    client = sdk.client(approval_handler=handler)
    started = client.thread_start({"approvalPolicy": "on-request"})
    thread = Thread(client, started.thread.id)

    result = thread.run("/run echo hi")

    assert result.status == TurnStatus.completed
    [command] = commands(list(result.items))
    assert command.status == CommandExecutionStatus.completed
    assert command.aggregated_output == "hi\n"
    assert command.exit_code == 0
    assert [method for method, _ in handler.calls] == [APPROVAL]
    params = check_approval_params(handler.calls[0][1])
    assert params["threadId"] == thread.id
    assert params["turnId"] == result.id
    assert params["itemId"] == command.id
    assert "echo hi" in str(params["command"])
    assert sdk.wire.error_responses() == []


def test_approval_declined_by_handler(sdk: SdkEnv) -> None:
    handler = Recorder("decline")
    client = sdk.client(approval_handler=handler)
    started = client.thread_start({"approvalPolicy": "on-request"})
    thread = Thread(client, started.thread.id)

    result = thread.run("/run touch declined.txt\n/say carried on")

    assert result.status == TurnStatus.completed
    [command] = commands(list(result.items))
    assert command.status == CommandExecutionStatus.declined
    assert not (sdk.workdir / "declined.txt").exists()
    assert result.final_response == "carried on"
    assert [method for method, _ in handler.calls] == [APPROVAL]


def test_approval_cancel_interrupts_the_turn_low_level(sdk: SdkEnv) -> None:
    """The low-level flow: `turn_start` + `wait_for_turn_completed`, then `thread_read`."""
    handler = Recorder("cancel")
    client = sdk.client(approval_handler=handler)
    thread_id = client.thread_start({"approvalPolicy": "on-request"}).thread.id

    turn = client.turn_start(thread_id, "/run touch cancelled.txt\n/say never said")
    completed = client.wait_for_turn_completed(turn.turn.id)

    assert completed.thread_id == thread_id
    assert completed.turn.id == turn.turn.id
    assert completed.turn.status == TurnStatus.interrupted
    assert not (sdk.workdir / "cancelled.txt").exists()
    assert [method for method, _ in handler.calls] == [APPROVAL]

    stored = client.thread_read(thread_id, include_turns=True).thread.turns
    assert [(t.id, t.status) for t in stored] == [(turn.turn.id, TurnStatus.interrupted)]
    [command] = commands(list(stored[0].items))
    assert command.status == CommandExecutionStatus.declined
    assert [root(i).type for i in stored[0].items if root(i).type == "agentMessage"] == []


def test_file_change_approval_by_handler(sdk: SdkEnv) -> None:
    handler = Recorder("accept")
    client = sdk.client(approval_handler=handler)
    thread = Thread(client, client.thread_start({"approvalPolicy": "on-request"}).thread.id)

    result = thread.run("/write hello.txt hi there")

    assert result.status == TurnStatus.completed
    [change] = [root(i) for i in result.items if isinstance(root(i), FileChangeThreadItem)]
    assert change.status == PatchApplyStatus.completed
    assert (sdk.workdir / "hello.txt").read_text() == "hi there\n"
    assert [method for method, _ in handler.calls] == ["item/fileChange/requestApproval"]
    params = handler.calls[0][1]
    assert params is not None
    assert (params["threadId"], params["turnId"], params["itemId"]) == (
        thread.id,
        result.id,
        change.id,
    )
