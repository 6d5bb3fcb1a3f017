"""The openai backend (issue #9) against a fake OpenAI-compatible server on loopback
(tests/fake_openai.py), with appserver running in process. No mocks, no network."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from agents.recording import RecordingContext
from fake_openai import (
    DONE,
    FakeOpenAI,
    answer,
    chunk,
    error_reply,
    event,
    shell_call,
    stream_reply,
)
from shapes import MS, agent_message, timed

from appserver.agents import OpenAIChatAgent, OpenAISettings, TurnFailed, get_backend
from appserver.cli import UsageError, config_from_args
from appserver.client import Client
from appserver.server import Server, ServerConfig, open_server

from support import SchemaChecker

TIMEOUT = 10
API_KEY = "sk-test-0123456789abcdef-SECRET"

Message = dict[str, Any]


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


def make_config(fake: FakeOpenAI, key_file: Path, **overrides: Any) -> ServerConfig:
    settings: dict[str, Any] = {
        "data_dir": None,
        "agent": "openai",
        "model": "fake-model",
        "model_base_url": fake.url,
        "api_key_file": key_file,
        "model_timeout": 5.0,
        "model_retry_delay": 0.01,
        **overrides,
    }
    return ServerConfig(**settings)


class Session:
    """One in-process client with every message it received recorded."""

    def __init__(self, server: Server, client: Client) -> None:
        self.server = server
        self.client = client
        self.seen: list[Message] = []

    async def start_thread(self, **params: Any) -> str:
        result = await self.client.request("thread/start", {"cwd": "/tmp", **params})
        thread_id: str = result["thread"]["id"]
        return thread_id

    async def start_turn(self, thread_id: str, text: str, **params: Any) -> str:
        input_ = [{"type": "text", "text": text}]
        result = await self.client.request(
            "turn/start", {"threadId": thread_id, "input": input_, **params}
        )
        turn_id: str = result["turn"]["id"]
        return turn_id

    async def completed(self, thread_id: str) -> Message:
        with trio.fail_after(TIMEOUT):
            note = await self.client.next_notification(
                "turn/completed", where=lambda p: p["threadId"] == thread_id
            )
        turn: Message = note["params"]["turn"]
        return turn

    async def run(self, text: str, **thread_params: Any) -> tuple[str, Message]:
        thread_id = await self.start_thread(**thread_params)
        await self.start_turn(thread_id, text)
        return thread_id, await self.completed(thread_id)

    def items(self, method: str = "item/completed") -> list[Message]:
        return [m["params"]["item"] for m in self.seen if m.get("method") == method]

    def notes(self, method: str) -> list[Message]:
        return [m["params"] for m in self.seen if m.get("method") == method and "id" not in m]


@asynccontextmanager
async def session(
    config: ServerConfig, checker: SchemaChecker | None = None
) -> AsyncIterator[Session]:
    async with open_server(config) as server, server.connect() as client:
        sess = Session(server, client)

        def observe(message: Message, method: str | None) -> None:
            if checker is not None:
                checker.check(message, method)
            sess.seen.append(message)

        client.observer = observe
        await client.initialize("openai-tests")
        yield sess


async def read_thread(sess: Session, thread_id: str) -> list[Message]:
    result = await sess.client.request("thread/read", {"threadId": thread_id, "includeTurns": True})
    turns: list[Message] = result["thread"]["turns"]
    return turns


def tool_messages(body: Message) -> list[Message]:
    return [m for m in body["messages"] if m["role"] == "tool"]


# --- answers ---------------------------------------------------------------------------------


async def test_plain_answer_streams_reasoning_and_text(
    fake: FakeOpenAI, key_file: Path, schema_checker: SchemaChecker
) -> None:
    fake.script(answer("Hello", ", ", "world!", reasoning=("Let me ", "think.")))
    async with session(make_config(fake, key_file), schema_checker) as s:
        thread_id, turn = await s.run("hi there")
        assert turn["status"] == "completed" and turn["error"] is None
        reasoning, message = s.items()[1:]
        assert reasoning["type"] == "reasoning" and reasoning["summary"] == ["Let me think."]
        assert timed(message) == {
            **agent_message(message["id"], "Hello, world!"),
            "startedAtMs": MS,
            "completedAtMs": MS,
        }
        assert timed(reasoning)["completedAtMs"] == MS
        deltas = [n["delta"] for n in s.notes("item/agentMessage/delta")]
        assert deltas == ["Hello", ", ", "world!"]
        assert [n["delta"] for n in s.notes("item/reasoning/summaryTextDelta")] == [
            "Let me ",
            "think.",
        ]
        stored = (await read_thread(s, thread_id))[0]["items"]
        assert [i["type"] for i in stored] == ["userMessage", "reasoning", "agentMessage"]

    request = await fake.request(1)
    assert request.method == "POST" and request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    body = request.body
    assert body["model"] == "fake-model" and body["stream"] is True
    assert [t["function"]["name"] for t in body["tools"]] == ["shell"]
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert body["messages"][1]["content"] == "hi there"


async def test_reasoning_field_variant_and_thread_model(fake: FakeOpenAI, key_file: Path) -> None:
    """`delta.reasoning` (Ollama, OpenRouter) works too; a thread's model overrides."""
    fake.script(
        stream_reply(
            chunk(reasoning="hmm", reasoning_field="reasoning"), chunk("ok", finish="stop"), DONE
        )
    )
    async with session(make_config(fake, key_file, agent="builtin")) as s:
        _, turn = await s.run("x", modelProvider="openai", model="llama3.1")
        assert turn["status"] == "completed"
        assert [i["type"] for i in s.items()[1:]] == ["reasoning", "agentMessage"]
    assert (await fake.request(1)).body["model"] == "llama3.1"


async def test_default_provider_and_model(fake: FakeOpenAI, key_file: Path) -> None:
    async with session(make_config(fake, key_file)) as s:
        result = await s.client.request("thread/start")
        assert (result["modelProvider"], result["model"]) == ("openai", "fake-model")
        result = await s.client.request("thread/start", {"modelProvider": "builtin"})
        assert (result["modelProvider"], result["model"]) == ("builtin", "script")
    async with session(make_config(fake, key_file, agent="builtin")) as s:
        result = await s.client.request("thread/start")
        assert (result["modelProvider"], result["model"]) == ("builtin", "script")
        result = await s.client.request("thread/start", {"modelProvider": "openai"})
        assert (result["modelProvider"], result["model"]) == ("openai", "fake-model")


# --- the shell tool -------------------------------------------------------------------------


async def test_tool_call_approved(
    fake: FakeOpenAI, key_file: Path, tmp_path: Path, schema_checker: SchemaChecker
) -> None:
    fake.script(shell_call("echo hello from tool", text="Running it."), answer("It printed hello."))
    async with session(make_config(fake, key_file), schema_checker) as s:
        thread_id = await s.start_thread(cwd=str(tmp_path))
        await s.start_turn(thread_id, "say hello")
        with trio.fail_after(TIMEOUT):
            ask = await s.client.next_server_request("item/commandExecution/requestApproval")
        assert ask.params["command"] == "echo hello from tool"
        assert ask.params["cwd"] == str(tmp_path)
        await s.client.respond(ask.id, {"decision": "accept"})
        turn = await s.completed(thread_id)
        assert turn["status"] == "completed"
        types = [i["type"] for i in s.items()]
        assert types == ["userMessage", "agentMessage", "commandExecution", "agentMessage"]
        command = s.items()[2]
        assert command["status"] == "completed" and command["exitCode"] == 0
        assert command["aggregatedOutput"] == "hello from tool\n"
        assert s.items()[3]["text"] == "It printed hello."

    second = (await fake.request(2)).body
    assistant = second["messages"][-2]
    assert assistant["role"] == "assistant" and assistant["content"] == "Running it."
    call = assistant["tool_calls"][0]
    assert call["id"] == "call_1" and json.loads(call["function"]["arguments"]) == {
        "command": "echo hello from tool"
    }
    (tool,) = tool_messages(second)
    assert tool["tool_call_id"] == "call_1"
    assert "Exit code: 0" in tool["content"] and "hello from tool" in tool["content"]


async def test_tool_call_declined_goes_on(fake: FakeOpenAI, key_file: Path) -> None:
    fake.script(shell_call("rm -rf /tmp/nothing-here"), answer("OK, I won't."))
    async with session(make_config(fake, key_file)) as s:
        thread_id = await s.start_thread()
        await s.start_turn(thread_id, "clean up")
        with trio.fail_after(TIMEOUT):
            ask = await s.client.next_server_request("item/commandExecution/requestApproval")
        await s.client.respond(ask.id, {"decision": "decline"})
        turn = await s.completed(thread_id)
        assert turn["status"] == "completed"
        command = s.items()[1]
        assert command["status"] == "declined" and command["aggregatedOutput"] is None
    (tool,) = tool_messages((await fake.request(2)).body)
    assert "declined" in tool["content"]


async def test_tool_call_cancelled_interrupts_the_turn(fake: FakeOpenAI, key_file: Path) -> None:
    fake.script(shell_call("echo never"), answer("unused"))
    async with session(make_config(fake, key_file)) as s:
        thread_id = await s.start_thread()
        await s.start_turn(thread_id, "go")
        with trio.fail_after(TIMEOUT):
            ask = await s.client.next_server_request("item/commandExecution/requestApproval")
        await s.client.respond(ask.id, {"decision": "cancel"})
        turn = await s.completed(thread_id)
        assert turn["status"] == "interrupted"
        assert s.items()[1]["status"] == "declined"
    assert len(fake.requests) == 1


async def test_multi_step_tool_loop_with_workdir(
    fake: FakeOpenAI, key_file: Path, tmp_path: Path
) -> None:
    (tmp_path / "sub").mkdir()
    fake.script(
        shell_call("pwd", workdir="sub", call_id="a"),
        shell_call("echo two; exit 3", call_id="b"),
        shell_call("echo three", call_id="c", pieces=1),
        answer("done"),
    )
    async with session(make_config(fake, key_file)) as s:
        _, turn = await s.run("work", cwd=str(tmp_path), approvalPolicy="never")
        assert turn["status"] == "completed"
        commands = [i for i in s.items() if i["type"] == "commandExecution"]
        assert [c["cwd"] for c in commands] == [str(tmp_path / "sub"), str(tmp_path), str(tmp_path)]
        assert [c["status"] for c in commands] == ["completed", "failed", "completed"]
        assert commands[0]["aggregatedOutput"] == f"{tmp_path / 'sub'}\n"
    last = (await fake.request(4)).body
    assert [t["tool_call_id"] for t in tool_messages(last)] == ["a", "b", "c"]
    assert "Exit code: 3" in tool_messages(last)[1]["content"]


async def test_bad_tool_arguments_are_reported_to_the_model(
    fake: FakeOpenAI, key_file: Path
) -> None:
    bad = stream_reply(
        chunk(
            tool_calls=[{"index": 0, "id": "x", "function": {"name": "shell", "arguments": "{"}}]
        ),
        chunk(
            tool_calls=[{"index": 1, "id": "y", "function": {"name": "python", "arguments": "{}"}}]
        ),
        chunk(
            tool_calls=[
                {
                    "index": 2,
                    "id": "z",
                    "function": {"name": "shell", "arguments": '{"command": "echo a\\u0000b"}'},
                }
            ]
        ),
        chunk(finish="tool_calls"),
        DONE,
    )
    fake.script(bad, answer("sorry"))
    async with session(make_config(fake, key_file)) as s:
        _, turn = await s.run("x", approvalPolicy="never")
        assert turn["status"] == "completed"
    contents = [t["content"] for t in tool_messages((await fake.request(2)).body)]
    assert "not valid JSON" in contents[0] and "unknown tool 'python'" in contents[1]
    assert "NUL character" in contents[2]  # refused before any item or approval


async def test_step_cap_fails_the_turn(fake: FakeOpenAI, tmp_path: Path) -> None:
    """Backend level, with a RecordingContext; still real HTTP to the fake server."""
    fake.script(shell_call("true", call_id="1"), shell_call("true", call_id="2"))
    agent = OpenAIChatAgent(OpenAISettings(base_url=fake.url, model="m", max_steps=2))
    ctx = RecordingContext(str(tmp_path), model="m")
    with pytest.raises(TurnFailed) as info, trio.fail_after(TIMEOUT):
        await agent.run_turn(ctx, [{"type": "text", "text": "loop"}])
    assert "still calling tools after 2 steps" in str(info.value)
    assert [i["status"] for i in ctx.completed("commandExecution")] == ["completed"] * 2
    assert "authorization" not in fake.requests[0].headers  # no key configured


# --- endpoint errors ------------------------------------------------------------------------


async def expect_failure(sess: Session, thread_id: str, fragment: str) -> str:
    turn = await sess.completed(thread_id)
    assert turn["status"] == "failed", turn
    message: str = turn["error"]["message"]
    assert fragment in message, message
    final = [n for n in sess.notes("error") if not n["willRetry"]]
    assert [n["error"]["message"] for n in final] == [message]
    with trio.fail_after(TIMEOUT):
        await sess.client.next_notification(
            "thread/status/changed", where=lambda p: p["status"]["type"] == "systemError"
        )
    return message


async def test_http_401_fails_at_once(fake: FakeOpenAI, key_file: Path) -> None:
    fake.script(error_reply(401, "Incorrect API key provided"))
    async with session(make_config(fake, key_file)) as s:
        thread_id = await s.start_thread()
        await s.start_turn(thread_id, "hi")
        message = await expect_failure(s, thread_id, "HTTP 401: Incorrect API key provided")
        assert "--api-key-file" in message
        assert not [n for n in s.notes("error") if n["willRetry"]]
    assert len(fake.requests) == 1


async def test_connection_refused(key_file: Path) -> None:
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    await listener.aclose()
    config = ServerConfig(
        data_dir=None, agent="openai", model_base_url=f"http://127.0.0.1:{port}/v1"
    )
    async with session(config) as s:
        thread_id = await s.start_thread()
        await s.start_turn(thread_id, "hi")
        await expect_failure(
            s, thread_id, f"cannot connect to the model endpoint http://127.0.0.1:{port}"
        )


async def test_429_is_retried_then_succeeds(
    fake: FakeOpenAI, key_file: Path, schema_checker: SchemaChecker
) -> None:
    fake.script(error_reply(429, "slow down", [("retry-after", "0")]), answer("finally"))
    async with session(make_config(fake, key_file), schema_checker) as s:
        thread_id, turn = await s.run("hi")
        assert turn["status"] == "completed"
        (retry,) = s.notes("error")
        assert retry["willRetry"] is True and retry["threadId"] == thread_id
        assert "HTTP 429: slow down" in retry["error"]["message"]
        assert "attempt 2 of 3" in retry["error"]["message"]
        assert retry["error"]["codexErrorInfo"] is None
        assert s.items()[-1]["text"] == "finally"
        methods = [m.get("method") for m in s.seen]
        assert methods.index("error") < methods.index("item/agentMessage/delta")
        with trio.fail_after(TIMEOUT):
            await s.client.next_notification(
                "thread/status/changed", where=lambda p: p["status"]["type"] == "idle"
            )
        statuses = [n["status"]["type"] for n in s.notes("thread/status/changed")]
        assert statuses == ["active", "idle"]  # a retry is no systemError


async def test_5xx_exhausting_retries(fake: FakeOpenAI, key_file: Path) -> None:
    fake.script(*(error_reply(status, "upstream broke") for status in (500, 502, 503)))
    async with session(make_config(fake, key_file)) as s:
        thread_id = await s.start_thread()
        await s.start_turn(thread_id, "hi")
        await expect_failure(s, thread_id, "HTTP 503: upstream broke (gave up after 3 attempts)")
        retries = [n for n in s.notes("error") if n["willRetry"]]
        assert len(retries) == 2
        assert "HTTP 500" in retries[0]["error"]["message"]
    assert len(fake.requests) == 3


async def test_long_retry_after_is_not_waited_for(fake: FakeOpenAI, key_file: Path) -> None:
    fake.script(error_reply(429, "quota", [("retry-after", "3600")]))
    async with session(make_config(fake, key_file)) as s:
        thread_id = await s.start_thread()
        await s.start_turn(thread_id, "hi")
        await expect_failure(s, thread_id, "asks to retry after 3600 s")
    assert len(fake.requests) == 1


@pytest.mark.parametrize(
    ("reply", "fragment"),
    [
        (stream_reply(chunk("partial"), event("{not json")), "malformed response"),
        (stream_reply(event({"choices": "nope"})), "malformed response"),
        (stream_reply(chunk("cut "), chunk("short")), "ended the stream before the answer"),
        (
            stream_reply(event({"error": {"message": "model overloaded"}})),
            "reported an error: model overloaded",
        ),
        (error_reply(404, "model 'fake-model' not found"), "HTTP 404: model 'fake-model'"),
    ],
    ids=["not-json", "bad-shape", "truncated", "error-event", "http-404"],
)
async def test_bad_streams_fail_the_turn(
    fake: FakeOpenAI, key_file: Path, reply: Any, fragment: str
) -> None:
    fake.script(reply)
    async with session(make_config(fake, key_file)) as s:
        thread_id = await s.start_thread()
        await s.start_turn(thread_id, "hi")
        await expect_failure(s, thread_id, fragment)
        # Whatever was streamed is kept, and every started item is completed.
        started = {i["id"] for i in s.items("item/started")}
        assert started == {i["id"] for i in s.items()}


async def test_stalled_stream_times_out(fake: FakeOpenAI, key_file: Path) -> None:
    never = trio.Event()
    fake.script(stream_reply(chunk("thinking about it"), never))
    async with session(make_config(fake, key_file, model_timeout=0.3)) as s:
        thread_id = await s.start_thread()
        await s.start_turn(thread_id, "hi")
        await expect_failure(s, thread_id, "sent nothing for 0.3 s")
        assert s.items()[-1]["text"] == "thinking about it"
    with trio.fail_after(TIMEOUT):
        await fake.requests[0].disconnected.wait()


# --- interrupt and rejoin -------------------------------------------------------------------


async def test_interrupt_mid_stream_closes_the_connection(fake: FakeOpenAI, key_file: Path) -> None:
    gate = trio.Event()
    fake.script(stream_reply(chunk("first "), gate, chunk("never sent"), DONE))
    async with session(make_config(fake, key_file)) as s:
        thread_id = await s.start_thread()
        turn_id = await s.start_turn(thread_id, "hi")
        with trio.fail_after(TIMEOUT):
            await s.client.next_notification("item/agentMessage/delta")
            await s.client.request("turn/interrupt", {"threadId": thread_id, "turnId": turn_id})
            await fake.requests[0].disconnected.wait()
        turn = await s.completed(thread_id)
        assert turn["status"] == "interrupted"
        assert s.items()[-1]["text"] == "first "
    assert not fake.requests[0].finished.is_set()


async def test_rejoin_mid_stream(
    fake: FakeOpenAI, key_file: Path, schema_checker: SchemaChecker
) -> None:
    gate = trio.Event()
    fake.script(stream_reply(chunk("Hello "), chunk("there "), gate, chunk("again."), DONE))
    async with session(make_config(fake, key_file), schema_checker) as a:
        thread_id = await a.start_thread()
        await a.start_turn(thread_id, "hi")
        with trio.fail_after(TIMEOUT):
            await a.client.next_notification("item/agentMessage/delta")
            await a.client.next_notification("item/agentMessage/delta")
        async with a.server.connect() as b:
            b.observer = schema_checker.check
            await b.initialize("rejoiner")
            result = await b.request("thread/resume", {"threadId": thread_id})
            running = result["thread"]["turns"][-1]
            assert running["status"] == "inProgress"
            message = running["items"][-1]
            assert message["type"] == "agentMessage" and message["text"] == "Hello there "
            gate.set()
            with trio.fail_after(TIMEOUT):
                rest = await b.next_notification("item/agentMessage/delta")
                done = await b.next_notification("item/completed")
                await b.next_notification("turn/completed")
            assert rest["params"]["delta"] == "again."
            assert done["params"]["item"]["text"] == "Hello there again."
            assert not [n for n in b.notifications if n["method"] == "item/agentMessage/delta"]
        turn = await a.completed(thread_id)
        assert turn["status"] == "completed"


# --- history and secrecy --------------------------------------------------------------------


async def test_second_turn_sends_the_history(fake: FakeOpenAI, key_file: Path) -> None:
    fake.script(
        shell_call("echo out-of-turn-one", text="Checking."), answer("Turn one done."), answer("2")
    )
    async with session(make_config(fake, key_file)) as s:
        thread_id, turn = await s.run("first question", approvalPolicy="never")
        assert turn["status"] == "completed"
        await s.start_turn(thread_id, "second question")
        assert (await s.completed(thread_id))["status"] == "completed"
    messages = (await fake.request(3)).body["messages"]
    assert [m["role"] for m in messages] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "user",
    ]
    assert messages[1]["content"] == "first question"
    assert messages[2]["content"] == "Checking."
    arguments = json.loads(messages[2]["tool_calls"][0]["function"]["arguments"])
    assert arguments["command"] == "echo out-of-turn-one"
    assert messages[3]["tool_call_id"] == messages[2]["tool_calls"][0]["id"]
    assert "out-of-turn-one" in messages[3]["content"] and "Exit code: 0" in messages[3]["content"]
    assert messages[4]["content"] == "Turn one done."
    assert messages[5]["content"] == "second question"


async def test_api_key_never_reaches_clients_or_logs(
    fake: FakeOpenAI, key_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # An endpoint that echoes the key back in its error (as some do).
    fake.script(
        error_reply(500, f"bad key {API_KEY}"),
        error_reply(401, f"Incorrect API key provided: {API_KEY}"),
    )
    async with session(make_config(fake, key_file)) as s:
        thread_id = await s.start_thread()
        await s.start_turn(thread_id, "hi")
        message = await expect_failure(s, thread_id, "HTTP 401")
        assert "[redacted]" in message
        await read_thread(s, thread_id)
        assert s.seen
        assert API_KEY not in json.dumps(s.seen)
    assert (await fake.request(1)).headers["authorization"] == f"Bearer {API_KEY}"
    assert API_KEY not in caplog.text
    assert API_KEY not in repr(make_config(fake, key_file).backends())


# --- configuration --------------------------------------------------------------------------


def test_cli_flags(key_file: Path) -> None:
    config = config_from_args(
        [
            "--in-memory",
            "--agent",
            "openai",
            "--model",
            "llama3.1",
            "--model-base-url",
            "http://127.0.0.1:11434/v1",
            "--api-key-file",
            str(key_file),
            "--model-timeout",
            "7",
        ]
    )
    assert config.agent == "openai" and config.model == "llama3.1"
    assert config.model_base_url == "http://127.0.0.1:11434/v1"
    assert config.model_timeout == 7.0
    assert config.read_api_key() == API_KEY
    defaults = config_from_args(["--in-memory"])
    assert defaults.agent == "builtin" and defaults.model_base_url == "https://api.openai.com/v1"
    for bad in (  # (an unknown --agent: the agent registry's tests)
        ["--model-base-url", "ftp://x"],
        ["--api-key-file", str(key_file.parent / "missing")],
    ):
        with pytest.raises(UsageError):
            config_from_args(["--in-memory", *bad])


def test_api_key_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "from-env")
    assert ServerConfig().read_api_key() == "from-env"
    monkeypatch.delenv("OPENAI_API_KEY")
    assert ServerConfig().read_api_key() is None
    backend = get_backend("openai", ServerConfig(model="m").backends())
    assert isinstance(backend, OpenAIChatAgent) and backend.model == "m"
