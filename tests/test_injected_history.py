"""thread/inject_items reaches the model: injected Responses API items join `ctx.history()`
after the turn they followed (threads/history.py) and the OpenAI-compatible backend sends
their messages (observed at the fake OpenAI endpoint)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio
from fake_openai import FakeOpenAI, answer

from appserver.agents.openai_messages import history_messages, summary_message
from appserver.server import ServerConfig, open_server
from appserver.store.base import InjectedItem, TurnRecord
from appserver.threads.history import history

TIMEOUT = 15


def message(role: str, text: str) -> dict[str, Any]:
    return {"type": "message", "role": role, "content": [{"type": "input_text", "text": text}]}


async def test_injected_messages_reach_the_model_in_place(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    fake = FakeOpenAI()
    await nursery.start(fake.serve)
    config = ServerConfig(
        agent="openai", model="fake-model", model_base_url=fake.url, model_timeout=5.0
    )
    fake.script(answer("first answer"), answer("second answer"))
    with trio.fail_after(TIMEOUT):
        async with open_server(config) as server, server.connect() as client:
            await client.initialize("inject")
            started = await client.request("thread/start", {"cwd": str(tmp_path)})
            thread_id = started["thread"]["id"]
            for text, injected in (("first question", True), ("second question", False)):
                text_input = [{"type": "text", "text": text}]
                await client.request("turn/start", {"threadId": thread_id, "input": text_input})
                await client.next_notification("turn/completed")
                if injected:
                    items = [message("user", "INJECTED NOTE"), {"type": "reasoning", "x": 1}]
                    params = {"threadId": thread_id, "items": items}
                    assert await client.request("thread/inject_items", params) == {}
    body = (await fake.request(2)).body
    sent = [(m["role"], m["content"]) for m in body["messages"] if m["role"] != "system"]
    assert sent == [
        ("user", "first question"),
        ("assistant", "first answer"),
        ("user", "INJECTED NOTE"),
        ("user", "second question"),
    ]


def turn(turn_id: str, *items: dict[str, Any]) -> TurnRecord:
    return TurnRecord(id=turn_id, thread_id="t", status="completed", items=list(items))


def user(text: str) -> dict[str, Any]:
    return {"type": "userMessage", "id": text, "content": [{"type": "text", "text": text}]}


def test_injected_items_before_any_turn_during_the_turn_and_before_a_compaction() -> None:
    turns = [
        turn("a", user("one")),
        turn("b", {"type": "contextCompaction", "id": "c", "summary": "S"}),
        turn("now", user("current")),
    ]
    injected = [
        InjectedItem(after_turn_id=None, item=message("developer", "first of all")),
        InjectedItem(after_turn_id="a", item=message("user", "dropped by the compaction")),
        InjectedItem(after_turn_id="b", item=message("assistant", "after the compaction")),
        InjectedItem(after_turn_id="now", item=message("user", "during the turn")),
    ]
    summary = summary_message("S")
    messages = history_messages(history(turns, "now", injected))
    assert [(m["role"], m["content"]) for m in messages] == [
        (summary["role"], summary["content"]),
        ("assistant", "after the compaction"),
        ("user", "during the turn"),
    ]
    without_compaction = history(turns[:1], "now", injected)
    assert [(m["role"], m["content"]) for m in history_messages(without_compaction)] == [
        ("system", "first of all"),
        ("user", "one"),
        ("user", "dropped by the compaction"),
        ("assistant", "after the compaction"),
        ("user", "during the turn"),
    ]
