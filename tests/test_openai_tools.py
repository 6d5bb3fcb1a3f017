"""The openai backend grows up (issue 15): instructions, the thread's model after a switch,
dynamic tools offered to the model, the endpoint's usage, retries with jitter. Against the
fake chat-completions server (tests/fake_openai.py), every behaviour asserted at the
endpoint (the requests it received)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from agents.recording import RecordingContext
from fake_openai import FakeOpenAI, answer, chunk, error_reply, stream_reply, tool_call, usage_chunk
from test_openai_backend import API_KEY, TIMEOUT, Message, Session, make_config

from appserver.agents import OpenAIChatAgent, OpenAISettings
from appserver.agents.openai_messages import DEFAULT_INSTRUCTIONS
from appserver.server import ServerConfig, open_server

from support import SchemaChecker

LOOKUP = {
    "type": "function",
    "name": "lookup",
    "description": "Look a customer up by name.",
    "inputSchema": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
}
CRM = {
    "type": "namespace",
    "name": "crm",
    "description": "CRM tools",
    "tools": [
        {
            "type": "function",
            "name": "find",
            "description": "Find a deal.",
            "inputSchema": {"type": "object"},
        }
    ],
}


@pytest.fixture
async def fake(nursery: trio.Nursery) -> FakeOpenAI:
    server = FakeOpenAI()
    await nursery.start(server.serve)
    return server


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "api-key"
    path.write_text(API_KEY + "\n", encoding="utf-8")
    return path


@asynccontextmanager
async def session(
    config: ServerConfig, checker: SchemaChecker | None = None
) -> AsyncIterator[Session]:
    """As test_openai_backend.session, with the experimental API (dynamicTools) on."""
    async with open_server(config) as server, server.connect() as client:
        sess = Session(server, client)

        def observe(message: Message, method: str | None) -> None:
            if checker is not None:
                checker.check(message, method)
            sess.seen.append(message)

        client.observer = observe
        await client.request(
            "initialize",
            {
                "clientInfo": {"name": "tools-tests", "version": "0"},
                "capabilities": {"experimentalApi": True},
            },
        )
        await client.notify("initialized")
        yield sess


class InstructedContext(RecordingContext):
    """A recording context that has the thread's instructions (as the TurnContext offers
    them, `base_instructions` / `developer_instructions`) and reports usage."""

    def __init__(self, cwd: str, *, base: str | None, developer: str | None) -> None:
        super().__init__(cwd, model="ctx-model")
        self.base_instructions = base
        self.developer_instructions = developer
        self.usage: list[dict[str, Any]] = []

    async def token_usage(self, usage: dict[str, Any]) -> None:
        self.usage.append(usage)
        await trio.lowlevel.checkpoint()


def agent_for(fake: FakeOpenAI, **settings: Any) -> OpenAIChatAgent:
    return OpenAIChatAgent(OpenAISettings(base_url=fake.url, model="default", **settings))


# --- instructions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "developer", "expected"),
    [
        (None, None, [DEFAULT_INSTRUCTIONS.format(cwd="/tmp")]),
        ("You are a pirate.", None, ["You are a pirate."]),
        (
            None,
            "Answer in French.",
            [DEFAULT_INSTRUCTIONS.format(cwd="/tmp") + "\n\nAnswer in French."],
        ),
        ("You are a pirate.", "Answer in French.", ["You are a pirate.\n\nAnswer in French."]),
    ],
    ids=["default", "base-replaces", "developer-added", "both"],
)
async def test_instructions_reach_the_chat_endpoint(
    fake: FakeOpenAI, base: str | None, developer: str | None, expected: list[str]
) -> None:
    fake.script(answer("ok"))
    ctx = InstructedContext("/tmp", base=base, developer=developer)
    with trio.fail_after(TIMEOUT):
        await agent_for(fake).run_turn(ctx, [{"type": "text", "text": "hi"}])
    messages = (await fake.request(1)).body["messages"]
    assert [m["content"] for m in messages if m["role"] == "system"] == expected
    assert messages[0]["role"] == "system" and messages[-1] == {"role": "user", "content": "hi"}
    assert (await fake.request(1)).body["model"] == "ctx-model"


async def test_instructions_in_compaction_and_review_are_the_special_ones(
    fake: FakeOpenAI,
) -> None:
    """A summary or a review keeps its own fixed instruction (the thread's are for turns)."""
    fake.script(answer("the summary"))
    ctx = InstructedContext("/tmp", base="You are a pirate.", developer=None)
    ctx.prior_turns = [
        {
            "id": "t1",
            "status": "completed",
            "error": None,
            "items": [
                {"type": "userMessage", "id": "u", "content": [{"type": "text", "text": "x"}]}
            ],
        }
    ]
    with trio.fail_after(TIMEOUT):
        assert await agent_for(fake).compact(ctx) == "the summary"
    system = (await fake.request(1)).body["messages"][0]["content"]
    assert "compacting a conversation" in system and "pirate" not in system


# --- the thread's model ---------------------------------------------------------------------


async def test_a_threads_instructions_reach_the_endpoint(fake: FakeOpenAI, key_file: Path) -> None:
    """thread/start `baseInstructions` / `developerInstructions`, through a real thread's
    turn context, as the first (system) message of its requests."""
    fake.script(answer("arr"))
    async with session(make_config(fake, key_file)) as s:
        thread_id = await s.start_thread(
            baseInstructions="You are a pirate.", developerInstructions="Answer in French."
        )
        await s.start_turn(thread_id, "hello")
        assert (await s.completed(thread_id))["status"] == "completed"
    first = fake.requests[0].body["messages"][0]
    assert first == {"role": "system", "content": "You are a pirate.\n\nAnswer in French."}


async def test_the_threads_model_after_a_switch(fake: FakeOpenAI, key_file: Path) -> None:
    """turn/start `model`, and a provider switch by thread/resume: each request names the
    thread's model at that point, not the configured default."""
    fake.script(answer("1"), answer("2"), answer("3"), answer("4"))
    async with session(make_config(fake, key_file, agent="builtin")) as s:
        thread_id = await s.start_thread(modelProvider="openai", model="first-model")
        await s.start_turn(thread_id, "one")
        assert (await s.completed(thread_id))["status"] == "completed"
        await s.start_turn(thread_id, "two", model="second-model")
        assert (await s.completed(thread_id))["status"] == "completed"
        await s.start_turn(thread_id, "three")  # the turn's model stays the thread's
        assert (await s.completed(thread_id))["status"] == "completed"

        builtin = await s.start_thread()
        await s.start_turn(builtin, "/say hi")
        assert (await s.completed(builtin))["status"] == "completed"
        resumed = await s.client.request(
            "thread/resume",
            {"threadId": builtin, "modelProvider": "openai", "model": "resumed-model"},
        )
        assert (resumed["modelProvider"], resumed["model"]) == ("openai", "resumed-model")
        await s.start_turn(builtin, "four")
        assert (await s.completed(builtin))["status"] == "completed"
        # A switch without a model takes the new provider's default model.
        other = await s.start_thread()
        switched = await s.client.request(
            "thread/resume", {"threadId": other, "modelProvider": "openai"}
        )
        assert (switched["modelProvider"], switched["model"]) == ("openai", "fake-model")
        fake.script(answer("5"))
        await s.start_turn(other, "five")
        assert (await s.completed(other))["status"] == "completed"
    models = [r.body["model"] for r in fake.requests]
    assert models == ["first-model", "second-model", "second-model", "resumed-model", "fake-model"]
    # The builtin turn went to the history as text the model reads.
    assert [m["content"] for m in fake.requests[3].body["messages"][1:]] == [
        "/say hi",
        "hi",
        "four",
    ]


# --- dynamic tools --------------------------------------------------------------------------


async def test_dynamic_tool_call_goes_to_the_client_and_back(
    fake: FakeOpenAI, key_file: Path, schema_checker: SchemaChecker
) -> None:
    fake.script(
        tool_call("lookup", {"q": "Ada"}, call_id="call_lookup"),
        tool_call("crm__find", {}, call_id="call_find"),
        answer("Ada is a customer."),
        answer("again"),
    )
    async with session(make_config(fake, key_file), schema_checker) as s:
        thread_id = await s.start_thread(dynamicTools=[LOOKUP, CRM])
        await s.start_turn(thread_id, "who is Ada?")
        with trio.fail_after(TIMEOUT):
            ask = await s.client.next_server_request("item/tool/call")
        assert (ask.params["tool"], ask.params["arguments"]) == ("lookup", {"q": "Ada"})
        assert ask.params["namespace"] is None
        await s.client.respond(
            ask.id,
            {
                "contentItems": [{"type": "inputText", "text": "Ada: customer since 1843"}],
                "success": True,
            },
        )
        with trio.fail_after(TIMEOUT):
            ask = await s.client.next_server_request("item/tool/call")
        assert (ask.params["namespace"], ask.params["tool"]) == ("crm", "find")
        await s.client.respond(
            ask.id, {"contentItems": [{"type": "inputText", "text": "no deal"}], "success": False}
        )
        turn = await s.completed(thread_id)
        assert turn["status"] == "completed"
        calls = [i for i in s.items() if i["type"] == "dynamicToolCall"]
        assert [(c["tool"], c["status"]) for c in calls] == [
            ("lookup", "completed"),
            ("find", "failed"),
        ]
        await s.start_turn(thread_id, "and now?")
        assert (await s.completed(thread_id))["status"] == "completed"

    first = (await fake.request(1)).body
    tools = {t["function"]["name"]: t["function"] for t in first["tools"]}
    assert list(tools) == ["shell", "lookup", "crm__find"]
    assert tools["lookup"]["description"] == "Look a customer up by name."
    assert tools["lookup"]["parameters"] == LOOKUP["inputSchema"]
    assert tools["crm__find"]["parameters"] == {"type": "object", "properties": {}}
    third = (await fake.request(3)).body["messages"]
    results = [(m["tool_call_id"], m["content"]) for m in third if m["role"] == "tool"]
    assert results == [
        ("call_lookup", "Ada: customer since 1843"),
        ("call_find", "The tool reported a failure.\nno deal"),
    ]
    # A later turn sends the stored calls as tool calls with their results.
    later = (await fake.request(4)).body["messages"]
    names = [c["function"]["name"] for m in later for c in m.get("tool_calls", [])]
    assert names == ["lookup", "crm__find"]
    assert [m["content"] for m in later if m["role"] == "tool"] == [r[1] for r in results]


async def test_a_client_tool_call_answered_with_an_error_is_told_to_the_model(
    fake: FakeOpenAI, key_file: Path
) -> None:
    fake.script(tool_call("lookup", {"q": "Bob"}), answer("Could not look it up."))
    async with session(make_config(fake, key_file)) as s:
        thread_id = await s.start_thread(dynamicTools=[LOOKUP])
        await s.start_turn(thread_id, "who is Bob?")
        with trio.fail_after(TIMEOUT):
            ask = await s.client.next_server_request("item/tool/call")
        await s.client.respond_error(ask.id, -32000, "tool crashed")
        assert (await s.completed(thread_id))["status"] == "completed"
    (tool,) = [m for m in (await fake.request(2)).body["messages"] if m["role"] == "tool"]
    assert tool["content"].startswith("Error: the client did not run the tool")


async def test_without_declared_tools_only_shell_is_offered(fake: FakeOpenAI) -> None:
    fake.script(tool_call("lookup", {"q": "x"}), answer("fine"))
    ctx = InstructedContext("/tmp", base=None, developer=None)
    with trio.fail_after(TIMEOUT):
        await agent_for(fake).run_turn(ctx, [{"type": "text", "text": "hi"}])
    assert [t["function"]["name"] for t in (await fake.request(1)).body["tools"]] == ["shell"]
    (tool,) = [m for m in (await fake.request(2)).body["messages"] if m["role"] == "tool"]
    assert tool["content"] == "Error: unknown tool 'lookup'; the tools are `shell`."


# --- usage ----------------------------------------------------------------------------------


async def test_usage_of_each_call_is_reported(
    fake: FakeOpenAI, key_file: Path, schema_checker: SchemaChecker
) -> None:
    fake.script(
        stream_reply(
            chunk("", tool_calls=None),
            *tool_call("shell", {"command": "true"}).parts[:-1],
            usage_chunk(100, 20, cached=60, reasoning=5),
            b"data: [DONE]\n\n",
        ),
        stream_reply(chunk("done", finish="stop"), usage_chunk(130, 2), b"data: [DONE]\n\n"),
    )
    async with session(make_config(fake, key_file), schema_checker) as s:
        _, turn = await s.run("go", approvalPolicy="never")
        assert turn["status"] == "completed"
        updates = [n["tokenUsage"] for n in s.notes("thread/tokenUsage/updated")]
    shown = ("inputTokens", "cachedInputTokens", "outputTokens", "reasoningOutputTokens")
    assert [{k: u["last"][k] for k in (*shown, "totalTokens")} for u in updates] == [
        {
            "inputTokens": 100,
            "cachedInputTokens": 60,
            "outputTokens": 20,
            "reasoningOutputTokens": 5,
            "totalTokens": 120,
        },
        {
            "inputTokens": 130,
            "cachedInputTokens": 0,
            "outputTokens": 2,
            "reasoningOutputTokens": 0,
            "totalTokens": 132,
        },
    ]
    assert updates[-1]["total"]["totalTokens"] == 252
    assert (await fake.request(1)).body["stream_options"] == {"include_usage": True}


# --- retries --------------------------------------------------------------------------------


async def test_backoff_has_jitter_and_grows(fake: FakeOpenAI) -> None:
    """Without Retry-After: exponential backoff from retry_delay plus up to retry_delay
    of jitter (tenacity), each retry told through ctx.retrying before it waits."""
    fake.script(error_reply(503, "busy"), error_reply(502, "busy"), answer("ok"))
    ctx = InstructedContext("/tmp", base=None, developer=None)
    agent = agent_for(fake, retry_delay=0.05, max_attempts=3)
    with trio.fail_after(TIMEOUT):
        await agent.run_turn(ctx, [{"type": "text", "text": "hi"}])
    delays = [float(re.search(r"retrying in ([0-9.e-]+) s", m)[1]) for m in ctx.retries]  # type: ignore[index]
    assert len(delays) == 2 and len(fake.requests) == 3
    assert 0.05 <= delays[0] <= 0.1 and 0.1 <= delays[1] <= 0.15
    assert "attempt 2 of 3" in ctx.retries[0] and "attempt 3 of 3" in ctx.retries[1]
    assert ctx.completed("agentMessage")[-1]["text"] == "ok"


async def test_retry_after_is_honoured(fake: FakeOpenAI) -> None:
    fake.script(error_reply(429, "slow", [("retry-after", "0.2")]), answer("ok"))
    ctx = InstructedContext("/tmp", base=None, developer=None)
    agent = agent_for(fake, retry_delay=5.0)
    with trio.fail_after(TIMEOUT):
        start = trio.current_time()
        await agent.run_turn(ctx, [{"type": "text", "text": "hi"}])
        waited = trio.current_time() - start
    assert "retrying in 0.2 s" in ctx.retries[0]
    assert 0.2 <= waited < 5.0


async def test_interrupt_during_the_backoff(fake: FakeOpenAI, key_file: Path) -> None:
    fake.script(error_reply(500, "down"), answer("never asked"))
    async with session(make_config(fake, key_file, model_retry_delay=60.0)) as s:
        thread_id = await s.start_thread()
        turn_id = await s.start_turn(thread_id, "hi")
        with trio.fail_after(TIMEOUT):
            note = await s.client.next_notification("error")
            assert note["params"]["willRetry"] is True
            await s.client.request("turn/interrupt", {"threadId": thread_id, "turnId": turn_id})
        assert (await s.completed(thread_id))["status"] == "interrupted"
    assert len(fake.requests) == 1


def test_request_body_json() -> None:
    """What the chat body looks like (no tools for a summary or a review)."""
    from appserver.agents.openai_http import request_body

    body = request_body(OpenAISettings(), "m", [{"role": "user", "content": "x"}])
    assert json.loads(json.dumps(body)) == {
        "model": "m",
        "messages": [{"role": "user", "content": "x"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
