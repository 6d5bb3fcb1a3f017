"""turn/steer with the openai backend (issue 14): the request in flight is cut and the
model asked again with the steered input; tool calls finish first, as in Codex 0.171.
Against the fake chat-completions server (tests/fake_openai.py), appserver in process (one
test over stdio). No mocks, no network."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio
from agents.recording import RecordingContext
from fake_openai import DONE, FakeOpenAI, answer, chunk, error_reply, shell_call, stream_reply
from test_openai_backend import API_KEY, TIMEOUT, Message, Session, make_config, session

from appserver.agents import OpenAIChatAgent, OpenAISettings
from appserver.client import RpcError, spawn_stdio

from support import SchemaChecker


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


def steer_params(thread_id: str, turn_id: str, text: str) -> dict[str, Any]:
    return {
        "threadId": thread_id,
        "expectedTurnId": turn_id,
        "input": [{"type": "text", "text": text}],
    }


async def steer(s: Session, thread_id: str, turn_id: str, text: str) -> None:
    result = await s.client.request("turn/steer", steer_params(thread_id, turn_id, text))
    assert result == {"turnId": turn_id}


def conversation(body: Message) -> list[tuple[str, str]]:
    """(role, content) of every message after the system prompt; a tool call shows as
    `call:<id>`."""
    shown = []
    for m in body["messages"][1:]:
        content = m["content"]
        if m.get("tool_calls"):
            content += "|" + ",".join("call:" + c["id"] for c in m["tool_calls"])
        shown.append((m["role"], content))
    return shown


def stored_texts(turn: Message) -> list[tuple[str, str]]:
    shown = []
    for item in turn["items"]:
        if item["type"] == "userMessage":
            shown.append(("user", item["content"][0]["text"]))
        elif item["type"] == "agentMessage":
            shown.append(("agent", item["text"]))
        elif item["type"] == "commandExecution":
            shown.append(("command", item["status"]))
    return shown


def every_item_completed(s: Session) -> None:
    started = [i["id"] for i in s.items("item/started")]
    assert started == [i["id"] for i in s.items()]


async def stored_turn(s: Session, thread_id: str) -> Message:
    result = await s.client.request("thread/read", {"threadId": thread_id, "includeTurns": True})
    (turn,) = result["thread"]["turns"]
    return turn  # type: ignore[no-any-return]


async def test_steer_cuts_the_stream_and_the_model_sees_the_partial_answer(
    fake: FakeOpenAI, key_file: Path, schema_checker: SchemaChecker
) -> None:
    never = trio.Event()
    fake.script(
        stream_reply(chunk(reasoning="hmm"), chunk("Let me "), chunk("look "), never, DONE),
        answer("Sure, ", "in French."),
        answer("Oui."),
    )
    async with session(make_config(fake, key_file), schema_checker) as s:
        thread_id = await s.start_thread()
        turn_id = await s.start_turn(thread_id, "explain this")
        with trio.fail_after(TIMEOUT):
            await s.client.next_notification("item/agentMessage/delta")
            await s.client.next_notification("item/agentMessage/delta")
            await steer(s, thread_id, turn_id, "in French please")
            await fake.requests[0].disconnected.wait()
        turn = await s.completed(thread_id)
        assert turn["status"] == "completed"
        every_item_completed(s)
        cut = s.items()[2]
        assert cut["type"] == "agentMessage" and cut["text"] == "Let me look "
        assert s.items()[1]["summary"] == ["hmm"]  # the reasoning completes too
        stored = await stored_turn(s, thread_id)
        assert stored_texts(stored) == [
            ("user", "explain this"),
            ("agent", "Let me look "),
            ("user", "in French please"),
            ("agent", "Sure, in French."),
        ]
        await s.start_turn(thread_id, "thanks")
        assert (await s.completed(thread_id))["status"] == "completed"
    assert not fake.requests[0].finished.is_set()
    # a later turn's history holds the steered turn as it was stored
    assert conversation((await fake.request(3)).body) == [
        ("user", "explain this"),
        ("assistant", "Let me look "),
        ("user", "in French please"),
        ("assistant", "Sure, in French."),
        ("user", "thanks"),
    ]
    assert conversation((await fake.request(2)).body) == [
        ("user", "explain this"),
        ("assistant", "Let me look "),
        ("user", "in French please"),
    ]


async def test_steer_cuts_a_tool_call_still_streaming(fake: FakeOpenAI, key_file: Path) -> None:
    """A tool call whose arguments had not all arrived is dropped: no item, no call."""
    never = trio.Event()
    start = {"index": 0, "id": "c1", "function": {"name": "shell", "arguments": '{"comm'}}
    fake.script(stream_reply(chunk("Running it. "), chunk(tool_calls=[start]), never), answer("ok"))
    async with session(make_config(fake, key_file)) as s:
        thread_id = await s.start_thread()
        turn_id = await s.start_turn(thread_id, "run ls")
        with trio.fail_after(TIMEOUT):
            await s.client.next_notification("item/agentMessage/delta")
            await steer(s, thread_id, turn_id, "no, don't")
        assert (await s.completed(thread_id))["status"] == "completed"
        assert [i["type"] for i in s.items()] == [
            "userMessage",
            "agentMessage",
            "userMessage",
            "agentMessage",
        ]
    assert conversation((await fake.request(2)).body) == [
        ("user", "run ls"),
        ("assistant", "Running it. "),
        ("user", "no, don't"),
    ]


async def test_steer_during_an_approval_wait_lets_the_command_finish_first(
    fake: FakeOpenAI, key_file: Path, tmp_path: Path, schema_checker: SchemaChecker
) -> None:
    """As the reference: the approval stays pending, the command runs once accepted, and
    the steered item follows its item; the next request carries both."""
    fake.script(shell_call("echo approved", call_id="c1", text="Checking."), answer("Switched."))
    async with session(make_config(fake, key_file), schema_checker) as s:
        thread_id = await s.start_thread(cwd=str(tmp_path), approvalPolicy="untrusted")
        turn_id = await s.start_turn(thread_id, "check it")
        with trio.fail_after(TIMEOUT):
            ask = await s.client.next_server_request("item/commandExecution/requestApproval")
            await steer(s, thread_id, turn_id, "do something else")
            assert not s.notes("serverRequest/resolved")
            await s.client.respond(ask.id, {"decision": "accept"})
        turn = await s.completed(thread_id)
        assert turn["status"] == "completed"
        every_item_completed(s)
        command = s.items()[2]
        assert command["status"] == "completed" and command["aggregatedOutput"] == "approved\n"
        stored = await stored_turn(s, thread_id)
        assert stored_texts(stored) == [
            ("user", "check it"),
            ("agent", "Checking."),
            ("command", "completed"),
            ("user", "do something else"),
            ("agent", "Switched."),
        ]
    second = (await fake.request(2)).body
    assert conversation(second)[:2] == [("user", "check it"), ("assistant", "Checking.|call:c1")]
    tool, user = second["messages"][3:]
    assert tool["role"] == "tool" and "approved" in tool["content"]
    assert user == {"role": "user", "content": "do something else"}


async def test_steer_while_a_command_runs_waits_for_it(
    fake: FakeOpenAI, key_file: Path, tmp_path: Path
) -> None:
    gate = tmp_path / "go"
    command = f"while [ ! -e {gate} ]; do sleep 0.01; done; echo ran"
    fake.script(shell_call(command, call_id="c1"), answer("Done differently."))
    async with session(make_config(fake, key_file)) as s:
        thread_id = await s.start_thread(cwd=str(tmp_path), approvalPolicy="never")
        turn_id = await s.start_turn(thread_id, "wait for it")
        with trio.fail_after(TIMEOUT):
            await s.client.next_notification(
                "item/started", where=lambda p: p["item"]["type"] == "commandExecution"
            )
            await steer(s, thread_id, turn_id, "and then stop")
            assert [i["type"] for i in s.items()] == ["userMessage"]  # still running
            gate.touch()
        assert (await s.completed(thread_id))["status"] == "completed"
        every_item_completed(s)
        assert [(i["type"], i.get("aggregatedOutput")) for i in s.items()[1:3]] == [
            ("commandExecution", "ran\n"),
            ("userMessage", None),
        ]
    assert conversation((await fake.request(2)).body)[-1] == ("user", "and then stop")


async def test_several_steers_in_a_row(
    fake: FakeOpenAI, key_file: Path, schema_checker: SchemaChecker
) -> None:
    never = trio.Event()
    fake.script(
        stream_reply(chunk("one "), never),
        stream_reply(chunk("two "), never),
        answer("three"),
    )
    async with session(make_config(fake, key_file), schema_checker) as s:
        thread_id = await s.start_thread()
        turn_id = await s.start_turn(thread_id, "start")
        with trio.fail_after(TIMEOUT):
            await s.client.next_notification("item/agentMessage/delta")
            await steer(s, thread_id, turn_id, "A")
            await fake.request(2)
            await s.client.next_notification("item/agentMessage/delta")
            await steer(s, thread_id, turn_id, "B")
        assert (await s.completed(thread_id))["status"] == "completed"
        every_item_completed(s)
        assert stored_texts(await stored_turn(s, thread_id)) == [
            ("user", "start"),
            ("agent", "one "),
            ("user", "A"),
            ("agent", "two "),
            ("user", "B"),
            ("agent", "three"),
        ]
    assert [r.disconnected.is_set() for r in fake.requests[:2]] == [True, True]
    assert conversation((await fake.request(3)).body) == [
        ("user", "start"),
        ("assistant", "one "),
        ("user", "A"),
        ("assistant", "two "),
        ("user", "B"),
    ]


async def test_steer_as_the_last_answer_completes(fake: FakeOpenAI, key_file: Path) -> None:
    """Sent the moment the final answer's item completes: the steer is either taken (the
    model is asked again, in the same turn) or refused because the turn is over; never
    accepted and dropped."""
    fake.script(answer("first"), answer("second"))
    async with session(make_config(fake, key_file)) as s:
        thread_id = await s.start_thread()
        turn_id = await s.start_turn(thread_id, "go")
        with trio.fail_after(TIMEOUT):
            await s.client.next_notification(
                "item/completed", where=lambda p: p["item"]["type"] == "agentMessage"
            )
            try:
                await steer(s, thread_id, turn_id, "one more thing")
                taken = True
            except RpcError as exc:
                assert exc.message == "no active turn to steer"
                taken = False
        assert (await s.completed(thread_id))["status"] == "completed"
        every_item_completed(s)
        expected = [("user", "go"), ("agent", "first")]
        if taken:
            expected += [("user", "one more thing"), ("agent", "second")]
        assert stored_texts(await stored_turn(s, thread_id)) == expected
    assert len(fake.requests) == (2 if taken else 1)


async def test_steer_during_a_retry_wait_asks_again_at_once(
    fake: FakeOpenAI, key_file: Path
) -> None:
    fake.script(error_reply(429, "slow down", [("retry-after", "25")]), answer("right away"))
    async with session(make_config(fake, key_file)) as s:
        thread_id = await s.start_thread()
        turn_id = await s.start_turn(thread_id, "hi")
        with trio.fail_after(TIMEOUT):
            retry = await s.client.next_notification("error")
            assert retry["params"]["willRetry"] is True
            await steer(s, thread_id, turn_id, "still there?")
        assert (await s.completed(thread_id))["status"] == "completed"
        assert s.items()[-1]["text"] == "right away"
    assert conversation((await fake.request(2)).body) == [
        ("user", "hi"),
        ("user", "still there?"),
    ]


class SteeredContext(RecordingContext):
    """A recording context with steering: `steers[n]` is handed to the n-th call of
    `until_steered` (0-based) as if it had come before that call."""

    def __init__(self, cwd: str, steers: dict[int, list[dict[str, Any]]]) -> None:
        super().__init__(cwd, model="m")
        self.steers = steers
        self.calls = 0

    async def until_steered(
        self, work: Callable[[], Awaitable[None]]
    ) -> list[dict[str, Any]] | None:
        call, self.calls = self.calls, self.calls + 1
        steered = self.steers.get(call)
        if steered is None:
            await work()
        return steered


async def test_a_steer_after_the_last_request_is_not_lost(fake: FakeOpenAI, tmp_path: Path) -> None:
    """The window between the final answer and the agent's return (the HTTP client
    closing): the backend looks for a steer once more and answers it."""
    fake.script(answer("first"), answer("second"))
    agent = OpenAIChatAgent(OpenAISettings(base_url=fake.url, model="m"))
    ctx = SteeredContext(str(tmp_path), {1: [{"type": "text", "text": "late"}]})
    with trio.fail_after(TIMEOUT):
        await agent.run_turn(ctx, [{"type": "text", "text": "go"}])
    assert [i["text"] for i in ctx.completed("agentMessage")] == ["first", "second"]
    assert conversation((await fake.request(2)).body) == [
        ("user", "go"),
        ("assistant", "first"),
        ("user", "late"),
    ]


async def test_a_steer_before_the_answer_is_read_skips_its_tool_calls(
    fake: FakeOpenAI, tmp_path: Path
) -> None:
    """A steer that comes as a tool-calling answer completes: the calls are not run and
    the model is told so, each call answered (the chat API wants a result per call)."""

    class LateSteer(SteeredContext):
        async def until_steered(
            self, work: Callable[[], Awaitable[None]]
        ) -> list[dict[str, Any]] | None:
            self.calls += 1
            await work()
            return [{"type": "text", "text": "stop"}] if self.calls == 1 else None

    fake.script(shell_call("echo never", call_id="c1"), answer("stopped"))
    agent = OpenAIChatAgent(OpenAISettings(base_url=fake.url, model="m"))
    ctx = LateSteer(str(tmp_path), {})
    with trio.fail_after(TIMEOUT):
        await agent.run_turn(ctx, [{"type": "text", "text": "go"}])
    assert not ctx.started("commandExecution")
    messages = (await fake.request(2)).body["messages"]
    assert messages[-2]["role"] == "tool" and messages[-2]["tool_call_id"] == "c1"
    assert "Not run" in messages[-2]["content"]
    assert messages[-1] == {"role": "user", "content": "stop"}


async def test_steer_over_stdio(fake: FakeOpenAI, key_file: Path) -> None:
    never = trio.Event()
    fake.script(stream_reply(chunk("partial "), never), answer("steered answer"))
    args = [
        "--in-memory",
        "--log-level",
        "warning",
        "--agent",
        "openai",
        "--model",
        "fake-model",
        "--model-base-url",
        fake.url,
        "--api-key-file",
        str(key_file),
    ]
    with trio.fail_after(TIMEOUT):
        async with spawn_stdio(args) as client:
            await client.initialize("steer-stdio")
            thread = await client.request("thread/start", {"cwd": "/tmp"})
            thread_id = thread["thread"]["id"]
            started = await client.request(
                "turn/start",
                {"threadId": thread_id, "input": [{"type": "text", "text": "hello"}]},
            )
            turn_id = started["turn"]["id"]
            await client.next_notification("item/agentMessage/delta")
            result = await client.request("turn/steer", steer_params(thread_id, turn_id, "more"))
            assert result == {"turnId": turn_id}
            done = await client.next_notification("turn/completed")
            assert done["params"]["turn"]["status"] == "completed"
            read = await client.request(
                "thread/read", {"threadId": thread_id, "includeTurns": True}
            )
    assert stored_texts(read["thread"]["turns"][0]) == [
        ("user", "hello"),
        ("agent", "partial "),
        ("user", "more"),
        ("agent", "steered answer"),
    ]
    assert json.loads(fake.requests[1].raw)["messages"][-1] == {"role": "user", "content": "more"}
