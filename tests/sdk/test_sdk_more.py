"""More of the SDK's public surface that programs call besides the core flows: steering a
running turn, naming threads, and the account/model queries (issue 12: honest answers)."""

from __future__ import annotations

import time

import pytest
from openai_codex import CodexError, ExternalMessage, JsonRpcError
from openai_codex.generated.v2_all import (
    AgentMessageThreadItem,
    TurnStatus,
    UserMessageThreadItem,
)

from .support import CODEX_BIN, SdkEnv, root


def test_steer_a_running_turn(sdk: SdkEnv) -> None:
    """PROTOCOL.md §10: a steer drops the rest of the script (the `/sleep` ends there) and
    the steered input is handled in the same turn, as its own userMessage item."""
    with sdk.codex() as codex:
        thread = codex.thread_start()
        began = time.monotonic()
        handle = thread.turn("/sleep 30")
        steered = handle.steer("/say steered")
        assert steered.turn_id == handle.id
        result = handle.run()
        assert time.monotonic() - began < 10
    assert result.status == TurnStatus.completed
    assert result.final_response == "steered"
    users = [root(i) for i in result.items if isinstance(root(i), UserMessageThreadItem)]
    assert [root(u.content[0]).text for u in users] == ["/sleep 30", "/say steered"]
    assert sdk.wire.sent("turn/steer")[0]["expectedTurnId"] == handle.id


def test_set_name_is_listed_and_searchable(sdk: SdkEnv) -> None:
    with sdk.codex() as codex:
        thread = codex.thread_start()
        other = codex.thread_start()
        thread.set_name("Release checklist")
        assert thread.read().thread.name == "Release checklist"
        listed = {t.id: t.name for t in codex.thread_list().data}
        assert listed == {thread.id: "Release checklist", other.id: None}
        assert [t.id for t in codex.thread_list(search_term="checklist").data] == [thread.id]
    assert sdk.wire.error_responses() == []


def test_models_lists_the_builtin_agent_model(sdk: SdkEnv) -> None:
    with sdk.codex() as codex:
        models = codex.models()
        thread = codex.thread_start()
        model_of_thread = thread.read().thread.model
    assert models.data
    assert model_of_thread in {m.id for m in models.data} | {m.model for m in models.data}
    assert sdk.wire.error_responses() == []


def test_account_needs_no_login(sdk: SdkEnv) -> None:
    with sdk.codex() as codex:
        account = codex.account()
    assert account.requires_openai_auth is False
    assert sdk.wire.error_responses() == []


def test_agent_message_phase_is_unset(sdk: SdkEnv) -> None:
    """`final_response` is the last agentMessage with phase `final_answer`, else the last one
    with no phase: appserver's messages carry `phase: null`, so the last one wins."""
    with sdk.codex() as codex:
        result = codex.thread_start().run("/say one\n/say two")
    agents = [root(i) for i in result.items if isinstance(root(i), AgentMessageThreadItem)]
    assert [(a.text, a.phase) for a in agents] == [("one", None), ("two", None)]
    assert result.final_response == "two"


def test_config_overrides_reach_the_command_line(sdk: SdkEnv) -> None:
    """`CodexConfig.config_overrides` become `--config K=V` before `app-server`; Codex keys
    appserver has no setting for are accepted (ignored), never fatal."""
    overrides = ('model_reasoning_summary="concise"', "hide_agent_reasoning=true")
    with sdk.codex(sdk.config(config_overrides=overrides)) as codex:
        result = codex.thread_start().run("/say configured")
        assert result.final_response == "configured"
    [proc] = sdk.wire.procs
    assert isinstance(proc.args, list)
    assert proc.args == [
        str(CODEX_BIN),
        "--config",
        overrides[0],
        "--config",
        overrides[1],
        "app-server",
        "--listen",
        "stdio://",
    ]


def test_launch_args_override_in_memory(sdk: SdkEnv) -> None:
    """Flags after `app-server` need `CodexConfig.launch_args_override` (the SDK then runs
    that argv as given): here appserver's own `--in-memory`, which leaves no data dir."""
    config = sdk.config()
    config.launch_args_override = (
        str(CODEX_BIN),
        "app-server",
        "--listen",
        "stdio://",
        "--in-memory",
    )
    with sdk.codex(config) as codex:
        assert codex.metadata.serverInfo is not None
        thread = codex.thread_start()
        assert thread.run("/say nothing kept").final_response == "nothing kept"
        assert [t.id for t in codex.thread_list().data] == [thread.id]
    assert not sdk.data_dir.exists()


def test_version_gated_turn_fields(sdk: SdkEnv) -> None:
    """`source=` (turnTrigger) and `ExternalMessage` input (toolOutput, with `input: []`)
    are sent only to a runtime reporting Codex >= 0.151.0; the server accepts both."""
    with sdk.codex() as codex:
        thread = codex.thread_start()
        try:
            triggered = thread.run("/say triggered", source="ci-job")
            external = thread.run(ExternalMessage(tool_name="ticket", content="external text"))
        except CodexError as exc:
            if isinstance(exc, JsonRpcError):
                raise
            pytest.fail(f"SDK refused a version-gated field: {exc}")
        assert triggered.final_response == "triggered"
        assert external.status == TurnStatus.completed
        turns = thread.read(include_turns=True).thread.turns
        assert [t.id for t in turns] == [triggered.id, external.id]
    starts = sdk.wire.sent("turn/start")
    assert starts[0]["turnTrigger"] == "ci-job"
    assert starts[1]["input"] == []
    assert starts[1]["toolOutput"] == {"name": "ticket", "output": "external text"}
    assert sdk.wire.error_responses() == []
