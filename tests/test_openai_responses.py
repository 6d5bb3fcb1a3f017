"""The openai backend on the Responses API (`--model-api responses`, issue 15).

Behaviour against the reference's fake model (../shared/codex-reference/fake_model.py, the
stdlib server Codex is diffed against, run as a subprocess on loopback): streaming, several
messages, a function call and its output, usage, interrupt. The request bodies against
tests/fake_openai.py (which records every request) serving Responses API events.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
from agents.recording import RecordingContext
from fake_openai import (
    FakeOpenAI,
    response_call,
    response_event,
    response_text,
    responses_reply,
    stream_reply,
)
from test_openai_backend import TIMEOUT, Message
from test_openai_tools import LOOKUP, InstructedContext, session

from appserver.agents import OpenAIChatAgent, OpenAISettings, TurnFailed
from appserver.cli import UsageError, config_from_args
from appserver.server import ServerConfig

from support import SchemaChecker

FAKE_MODEL = Path(__file__).resolve().parents[2] / "shared" / "codex-reference" / "fake_model.py"


@dataclass
class FakeModel:
    url: str


@pytest.fixture
async def fake_model(nursery: trio.Nursery) -> FakeModel:
    """fake_model.py on a free loopback port; killed when the test's nursery ends."""
    if not FAKE_MODEL.is_file():
        pytest.skip(f"the reference kit is not here: {FAKE_MODEL}")
    command = [sys.executable, "-u", str(FAKE_MODEL), "--port", "0"]
    process: trio.Process = await nursery.start(
        partial(
            trio.run_process, command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, check=False
        )
    )
    assert process.stdout is not None
    banner = b""
    with trio.fail_after(TIMEOUT):
        while not banner.endswith(b"\n"):
            data = await process.stdout.receive_some(256)
            assert data, "fake_model.py exited before listening"
            banner += data
    port = int(banner.decode().strip().rsplit(":", 1)[1])  # "fake model listening on H:P"
    return FakeModel(f"http://127.0.0.1:{port}/v1")


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "api-key"
    path.write_text("dummy\n", encoding="utf-8")
    return path


def responses_config(url: str, key_file: Path) -> ServerConfig:
    return ServerConfig(
        data_dir=None,
        agent="openai",
        model="fake-model",
        model_base_url=url,
        api_key_file=key_file,
        model_timeout=5.0,
        model_retry_delay=0.01,
        model_api="responses",
    )


# --- against the reference's fake model -----------------------------------------------------


async def test_streamed_message_and_usage(
    fake_model: FakeModel, key_file: Path, schema_checker: SchemaChecker
) -> None:
    async with session(responses_config(fake_model.url, key_file), schema_checker) as s:
        thread_id, turn = await s.run("/stream 3 4")
        assert turn["status"] == "completed"
        (message,) = [i for i in s.items() if i["type"] == "agentMessage"]
        assert message["text"] == "abcd" * 3
        assert [n["delta"] for n in s.notes("item/agentMessage/delta")] == ["abcd"] * 3
        (update,) = [n["tokenUsage"] for n in s.notes("thread/tokenUsage/updated")]
        last = update["last"]
        assert (last["inputTokens"], last["outputTokens"], last["totalTokens"]) == (10, 3, 13)
        stored = await s.client.request(
            "thread/read", {"threadId": thread_id, "includeTurns": True}
        )
        items = stored["thread"]["turns"][0]["items"]
        assert [i["type"] for i in items] == ["userMessage", "agentMessage"]


async def test_each_output_message_is_an_item(fake_model: FakeModel, key_file: Path) -> None:
    async with session(responses_config(fake_model.url, key_file)) as s:
        _, turn = await s.run("hello there\n/say two words")
        assert turn["status"] == "completed"
        texts = [i["text"] for i in s.items() if i["type"] == "agentMessage"]
        assert texts == ["You said: hello there", "two words"]


async def test_function_call_runs_and_its_output_goes_back(
    fake_model: FakeModel, key_file: Path, tmp_path: Path, schema_checker: SchemaChecker
) -> None:
    """The fake calls `shell` with an argv (we offer no exec_command); the follow-up
    request carries the output after the call, so the fake answers `done`."""
    config = responses_config(fake_model.url, key_file)
    async with session(config, schema_checker) as s:
        thread_id = await s.start_thread(cwd=str(tmp_path), approvalPolicy="on-request")
        await s.start_turn(thread_id, "/run echo hi")
        with trio.fail_after(TIMEOUT):
            ask = await s.client.next_server_request("item/commandExecution/requestApproval")
        assert ask.params["command"] == "bash -lc 'echo hi'"
        await s.client.respond(ask.id, {"decision": "accept"})
        turn = await s.completed(thread_id)
        assert turn["status"] == "completed"
        command, message = [i for i in s.items() if i["type"] != "userMessage"]
        assert command["type"] == "commandExecution" and command["aggregatedOutput"] == "hi\n"
        assert message["text"] == "done"
        assert len(s.notes("thread/tokenUsage/updated")) == 2


async def test_interrupt_mid_response(fake_model: FakeModel, key_file: Path) -> None:
    async with session(responses_config(fake_model.url, key_file)) as s:
        thread_id = await s.start_thread()
        turn_id = await s.start_turn(thread_id, "/say first words\n/sleep 30\n/say never")
        with trio.fail_after(TIMEOUT):
            await s.client.next_notification("item/agentMessage/delta")
            await s.client.request("turn/interrupt", {"threadId": thread_id, "turnId": turn_id})
            turn = await s.completed(thread_id)
        assert turn["status"] == "interrupted"
        assert [i["text"] for i in s.items() if i["type"] == "agentMessage"] == ["first words"]


# --- request bodies (tests/fake_openai.py) --------------------------------------------------


@pytest.fixture
async def fake(nursery: trio.Nursery) -> FakeOpenAI:
    server = FakeOpenAI()
    await nursery.start(server.serve)
    return server


def responses_agent(fake: FakeOpenAI) -> OpenAIChatAgent:
    settings = OpenAISettings(base_url=fake.url, model="default", api="responses")
    return OpenAIChatAgent(settings)


async def test_request_body_instructions_tools_and_the_call_round_trip(fake: FakeOpenAI) -> None:
    """As Codex 0.171 sends them: the base instructions, then the developer instructions,
    as `developer` messages of `input`; tools flat with `strict: false`."""
    fake.script(
        responses_reply(
            response_text("Checking."), response_call("lookup", {"q": "Ada"}, call_id="c1", index=1)
        ),
        responses_reply(
            response_event(
                {"type": "response.reasoning_summary_text.delta", "output_index": 0, "delta": "hm"}
            ),
            response_text("Ada is a customer.", index=1),
        ),
    )
    ctx = InstructedContext("/tmp", base="You are a pirate.", developer="Answer in French.")
    calls: list[tuple[str, Any, str | None]] = []

    async def call_client_tool(
        tool: str, arguments: Any, *, namespace: str | None = None
    ) -> dict[str, Any]:
        calls.append((tool, arguments, namespace))
        await trio.lowlevel.checkpoint()
        return {"contentItems": [{"type": "inputText", "text": "since 1843"}], "success": True}

    ctx.dynamic_tools = [LOOKUP]  # type: ignore[attr-defined]
    ctx.call_client_tool = call_client_tool  # type: ignore[attr-defined]
    with trio.fail_after(TIMEOUT):
        await responses_agent(fake).run_turn(ctx, [{"type": "text", "text": "who is Ada?"}])
    assert calls == [("lookup", {"q": "Ada"}, None)]
    assert [i["text"] for i in ctx.completed("agentMessage")] == ["Checking.", "Ada is a customer."]
    assert [i["summary"] for i in ctx.completed("reasoning")] == [["hm"]]
    assert [u["totalTokens"] for u in ctx.usage] == [10, 10]

    first = await fake.request(1)
    assert first.path == "/v1/responses"
    body = first.body
    assert body["model"] == "ctx-model" and body["stream"] is True and body["store"] is False
    assert "instructions" not in body and "messages" not in body
    assert body["input"] == [
        {
            "type": "message",
            "role": "developer",
            "content": [{"type": "input_text", "text": "You are a pirate."}],
        },
        {
            "type": "message",
            "role": "developer",
            "content": [{"type": "input_text", "text": "Answer in French."}],
        },
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "who is Ada?"}],
        },
    ]
    assert [t["name"] for t in body["tools"]] == ["shell", "lookup"]
    assert body["tools"][1] == {
        "type": "function",
        "name": "lookup",
        "description": LOOKUP["description"],
        "strict": False,
        "parameters": LOOKUP["inputSchema"],
    }
    second: list[Message] = (await fake.request(2)).body["input"]
    assert second[3:] == [
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Checking."}],
        },
        {"type": "function_call", "call_id": "c1", "name": "lookup", "arguments": '{"q": "Ada"}'},
        {"type": "function_call_output", "call_id": "c1", "output": "since 1843"},
    ]


@pytest.mark.parametrize(
    ("events", "fragment"),
    [
        (
            [
                response_event(
                    {"type": "response.failed", "response": {"error": {"message": "overloaded"}}}
                )
            ],
            "reported an error: overloaded",
        ),
        (
            [
                response_event(
                    {
                        "type": "response.incomplete",
                        "response": {"incomplete_details": {"reason": "max_output_tokens"}},
                    }
                )
            ],
            "incomplete (max_output_tokens)",
        ),
        ([b"data: {not json\n\n"], "malformed response"),
        (response_text("cut off"), "ended the stream before the answer was complete"),
    ],
    ids=["failed", "incomplete", "not-json", "no-completed"],
)
async def test_bad_responses_fail_the_turn(
    fake: FakeOpenAI, events: list[Any], fragment: str
) -> None:
    fake.script(stream_reply(*events))
    ctx = RecordingContext("/tmp", model="m")
    with pytest.raises(TurnFailed) as info, trio.fail_after(TIMEOUT):
        await responses_agent(fake).run_turn(ctx, [{"type": "text", "text": "hi"}])
    assert fragment in info.value.message
    started = {e.item_id for e in ctx.named("started")}
    assert started == {e.item_id for e in ctx.named("completed")}


async def test_compaction_on_the_responses_api(fake: FakeOpenAI) -> None:
    fake.script(responses_reply(response_text("the summary")))
    history = [
        {
            "id": "t1",
            "status": "completed",
            "error": None,
            "items": [
                {"type": "userMessage", "id": "u", "content": [{"type": "text", "text": "fix it"}]}
            ],
        }
    ]
    ctx = RecordingContext("/tmp", model="m", history=history)
    with trio.fail_after(TIMEOUT):
        assert await responses_agent(fake).compact(ctx) == "the summary"
    body = (await fake.request(1)).body
    assert "tools" not in body
    assert [(i["role"], i["content"][0]["type"]) for i in body["input"]] == [
        ("developer", "input_text"),
        ("user", "input_text"),
    ]
    assert "User: fix it" in body["input"][1]["content"][0]["text"]


def test_model_api_flag() -> None:
    config = config_from_args(["--in-memory", "--model-api", "responses"])
    assert config.model_api == "responses"
    assert config.backends().openai.api == "responses"
    assert config_from_args(["--in-memory"]).backends().openai.api == "chat"
    with pytest.raises(UsageError):
        config_from_args(["--in-memory", "--model-api", "soap"])
    assert json.dumps(config.model_api) == '"responses"'


async def test_steer_on_the_responses_api(fake: FakeOpenAI, key_file: Path) -> None:
    """A steer cuts the response; the next request carries the partial answer and the
    steered input as Responses items."""
    never = trio.Event()
    fake.script(
        responses_reply(*response_text("Let me ", "look")[:-1], never, completed=False),
        responses_reply(response_text("In French then.")),
    )
    config = responses_config(fake.url, key_file)
    async with session(config) as s:
        thread_id = await s.start_thread()
        turn_id = await s.start_turn(thread_id, "explain")
        with trio.fail_after(TIMEOUT):
            await s.client.next_notification("item/agentMessage/delta")
            await s.client.next_notification("item/agentMessage/delta")
        steer = {
            "threadId": thread_id,
            "expectedTurnId": turn_id,
            "input": [{"type": "text", "text": "in French"}],
        }
        assert await s.client.request("turn/steer", steer) == {"turnId": turn_id}
        assert (await s.completed(thread_id))["status"] == "completed"
        texts = [i["text"] for i in s.items() if i["type"] == "agentMessage"]
        assert texts == ["Let me look", "In French then."]
    second = (await fake.request(2)).body["input"]
    assert [(i["role"], i["content"][0]["text"]) for i in second[1:]] == [
        ("user", "explain"),
        ("assistant", "Let me look"),
        ("user", "in French"),
    ]
