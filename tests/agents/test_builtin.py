"""The builtin agent's text directives and script parsing (PROTOCOL.md §10)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from appserver.agents import ScriptAgent, get_backend
from appserver.agents.base import TurnFailed

from .helpers import run, run_and_cancel, text
from .recording import RecordingContext
from .schemas import check_item, schemas_available


def messages(ctx: RecordingContext) -> list[str]:
    return [item["text"] for item in ctx.completed("agentMessage")]


def test_registry() -> None:
    backend = get_backend("builtin")
    assert isinstance(backend, ScriptAgent)
    assert backend.name == "builtin"
    assert backend.model == "script"
    assert get_backend("nosuch") is None


async def test_plain_lines_answered_with_one_message(tmp_path: Path) -> None:
    ctx = RecordingContext(str(tmp_path))
    await run(ctx, "hello there\n\n  \r\nsecond line\r\n")
    assert [e.name for e in ctx.events] == ["started"] + ["agent_delta"] * 6 + ["completed"]
    started, completed = ctx.started()[0], ctx.completed()[0]
    item_id = started["id"]
    assert started == {
        "id": item_id,
        "type": "agentMessage",
        "text": "",
        "phase": None,
        "memoryCitation": None,
        "moderation": None,
        "delivery": None,
        "questions": None,
    }
    assert completed == {**started, "text": "You said: hello there\nsecond line"}
    assert ctx.deltas(item_id) == ["You ", "said: ", "hello ", "there\n", "second ", "line"]
    assert not ctx.open_items


async def test_text_inputs_are_read_in_order_and_others_ignored(tmp_path: Path) -> None:
    ctx = RecordingContext(str(tmp_path))
    user_input = [
        {"type": "text", "text": "one"},
        {"type": "image", "url": "https://example.invalid/x.png"},
        {"type": "localImage", "path": "/x.png"},
        {"type": "text", "text": "two\n/say three"},
    ]
    with trio.fail_after(10):
        await ScriptAgent().run_turn(ctx, user_input)
    assert messages(ctx) == ["You said: one\ntwo", "three"]


@pytest.mark.parametrize(
    "user_input",
    [
        [],
        [{"type": "image", "url": "https://example.invalid/x.png"}],
        [{"type": "text", "text": ""}],
        [{"type": "text", "text": "\n \n"}],
    ],
)
async def test_no_text_is_answered_you_said_empty(
    tmp_path: Path, user_input: list[dict[str, Any]]
) -> None:
    ctx = RecordingContext(str(tmp_path))
    with trio.fail_after(10):
        await ScriptAgent().run_turn(ctx, user_input)
    assert messages(ctx) == ["You said: "]
    assert ctx.deltas(ctx.completed()[0]["id"]) == ["You ", "said: "]


async def test_only_directives_send_no_you_said(tmp_path: Path) -> None:
    ctx = RecordingContext(str(tmp_path))
    await run(ctx, "/say hi\n/say there")
    assert messages(ctx) == ["hi", "there"]


async def test_you_said_comes_before_directives(tmp_path: Path) -> None:
    ctx = RecordingContext(str(tmp_path))
    await run(ctx, "/say first directive\nplain one\n/think hmm\nplain two")
    assert [i["type"] for i in ctx.completed()] == ["agentMessage", "agentMessage", "reasoning"]
    assert messages(ctx) == ["You said: plain one\nplain two", "first directive"]


async def test_indented_slash_line_is_plain_text(tmp_path: Path) -> None:
    ctx = RecordingContext(str(tmp_path))
    await run(ctx, " /say not a directive")
    assert messages(ctx) == ["You said:  /say not a directive"]


async def test_say_streams_one_delta_per_word(tmp_path: Path) -> None:
    ctx = RecordingContext(str(tmp_path))
    await run(ctx, "/say a  b c\n/say\n/say \tlead and trail  ")
    first, empty, third = ctx.completed()
    assert first["text"] == "a  b c"
    assert ctx.deltas(first["id"]) == ["a  ", "b ", "c"]
    assert empty["text"] == ""
    assert ctx.deltas(empty["id"]) == []
    assert third["text"] == "lead and trail  "
    assert ctx.deltas(third["id"]) == ["lead ", "and ", "trail  "]


async def test_think_streams_reasoning_summary(tmp_path: Path) -> None:
    ctx = RecordingContext(str(tmp_path))
    await run(ctx, "/think let me  see")
    started, completed = ctx.started()[0], ctx.completed()[0]
    assert started == {"id": started["id"], "type": "reasoning", "summary": [], "content": []}
    assert completed == {**started, "summary": ["let me  see"]}
    deltas = ctx.named("reasoning_delta")
    assert [e.data for e in deltas] == ["let ", "me  ", "see"]
    assert {e.summary_index for e in deltas} == {0}
    assert [e.name for e in ctx.events] == ["started"] + ["reasoning_delta"] * 3 + ["completed"]


async def test_stream_n_deltas_of_size(tmp_path: Path) -> None:
    ctx = RecordingContext(str(tmp_path))
    await run(ctx, "/stream 1000 4\n/stream 3\n/stream 0\n/stream 2 0")
    big, default, empty, zero = ctx.completed()
    chunks = ctx.deltas(big["id"])
    assert len(chunks) == 1000
    assert {len(c) for c in chunks} == {4}
    assert "".join(chunks) == big["text"]
    assert big["text"].startswith("abcdefghijklmnopqrstuvwxyzabcd")
    assert ctx.deltas(default["id"]) == ["abcdefgh", "ijklmnop", "qrstuvwx"]
    assert default["text"] == "abcdefghijklmnopqrstuvwx"
    assert ctx.deltas(empty["id"]) == [] and empty["text"] == ""
    assert ctx.deltas(zero["id"]) == ["", ""] and zero["text"] == ""


async def test_stream_200000_deltas_is_cheap(tmp_path: Path) -> None:
    ctx = RecordingContext(str(tmp_path))
    await run(ctx, "/stream 200000")
    item = ctx.completed()[0]
    assert len(item["text"]) == 1_600_000
    assert len(ctx.named("agent_delta")) == 200_000


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("", "/stream expects N [SIZE], got ''"),
        ("x", "/stream: N must be a non-negative integer, got 'x'"),
        ("-1", "/stream: N must be a non-negative integer, got '-1'"),
        ("1.5", "/stream: N must be a non-negative integer, got '1.5'"),
        ("3 -2", "/stream: SIZE must be a non-negative integer, got '-2'"),
        ("1 2 3", "/stream expects N [SIZE], got '1 2 3'"),
        ("100000000 100", "/stream: N*SIZE must be at most 67108864, got '100000000 100'"),
    ],
)
async def test_stream_bad_arguments_fail_the_turn(tmp_path: Path, arg: str, message: str) -> None:
    ctx = RecordingContext(str(tmp_path))
    with pytest.raises(TurnFailed) as caught:
        await run(ctx, f"/stream {arg}")
    assert caught.value.message == message
    assert ctx.events == []


async def test_fail_raises_and_stops_the_script(tmp_path: Path) -> None:
    ctx = RecordingContext(str(tmp_path))
    with pytest.raises(TurnFailed) as caught:
        await run(ctx, "/say before\n/fail it broke: badly\n/say after")
    assert caught.value.message == "it broke: badly"
    assert str(caught.value) == "it broke: badly"
    assert messages(ctx) == ["before"]


@pytest.mark.parametrize(("line", "name"), [("/foo bar", "/foo"), ("/", "/"), ("/SAY x", "/SAY")])
async def test_unknown_directive_fails_naming_it(tmp_path: Path, line: str, name: str) -> None:
    ctx = RecordingContext(str(tmp_path))
    with pytest.raises(TurnFailed) as caught:
        await run(ctx, f"hello\n{line}\n/say never")
    assert caught.value.message == f"unknown directive: {name}"
    assert messages(ctx) == ["You said: hello"]


async def test_sleep_waits(tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    ctx = RecordingContext(str(tmp_path))
    start = trio.current_time()
    await run(ctx, "/sleep 2.5\n/say done")
    assert trio.current_time() - start == pytest.approx(2.5)
    assert messages(ctx) == ["done"]


async def test_sleep_is_interruptible(tmp_path: Path) -> None:
    ctx = RecordingContext(str(tmp_path))
    with trio.move_on_after(0.05) as scope:
        await ScriptAgent().run_turn(ctx, text("/sleep 1000\n/say never"))
    assert scope.cancelled_caught
    assert ctx.events == []


@pytest.mark.parametrize("arg", ["", "soon", "-1", "nan"])
async def test_sleep_bad_argument_fails(tmp_path: Path, arg: str) -> None:
    ctx = RecordingContext(str(tmp_path))
    with pytest.raises(TurnFailed, match="/sleep expects"):
        await run(ctx, f"/sleep {arg}")


def test_schemas_are_checked() -> None:
    if not schemas_available():
        pytest.skip("../shared/codex-schema not found")
    with pytest.raises(Exception, match="is not valid"):
        check_item({"id": "x", "type": "agentMessage", "text": 3})


async def test_stream_is_interruptible(tmp_path: Path) -> None:
    ctx = RecordingContext(str(tmp_path))
    await run_and_cancel(ctx, "/stream 200000", lambda c: bool(c.named("agent_delta")))
    assert len(ctx.named("agent_delta")) < 200_000
