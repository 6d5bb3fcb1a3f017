"""One streamed chat-completions response: server-sent event chunks turned into items
(`agentMessage` and `reasoning` deltas) as they arrive, and the reply they add up to (its
text and tool calls)."""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import trio

from .base import TurnContext, TurnFailed, agent_message_item
from .sse import SSEDecoder

MAX_ERROR_DETAIL_CHARS = 300


@dataclass
class ToolCall:
    id: str
    name: str = ""
    arguments: list[str] = field(default_factory=list)

    def wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": "".join(self.arguments)},
        }


@dataclass
class Reply:
    text: str
    tool_calls: list[ToolCall]

    def message(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.text}
        if self.tool_calls:
            message["tool_calls"] = [call.wire() for call in self.tool_calls]
        return message


class _Stream:
    """Turns the chunks of one response into items as they arrive (or, with `emit`
    False, only gathers them). `text` receives the content pieces as they come, so a
    caller whose request is cut off (a steer) still has what was streamed."""

    def __init__(self, ctx: TurnContext, text: list[str], *, emit: bool) -> None:
        self.ctx = ctx
        self.text = text
        self.emit = emit
        self.calls: dict[int, ToolCall] = {}
        self.finish_reason: str | None = None
        self._open: dict[str, Any] | None = None  # the item being streamed
        self._open_text: list[str] = []

    async def feed(self, chunk: Any) -> None:
        if not isinstance(chunk, dict):
            raise _Malformed("a chunk is not a JSON object")
        if "error" in chunk:
            raise TurnFailed(f"the model endpoint reported an error: {error_text(chunk)}")
        choices = chunk.get("choices") or []
        if not isinstance(choices, list):
            raise _Malformed("`choices` is not a list")
        for choice in choices[:1]:
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if not isinstance(delta, dict):
                raise _Malformed("a choice has no `delta` object")
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str) and reasoning and self.emit:
                await self._delta("reasoning", reasoning)
            content = delta.get("content")
            if isinstance(content, str) and content:
                self.text.append(content)
                if self.emit:
                    await self._delta("agentMessage", content)
            self._tool_calls(delta.get("tool_calls"))
            if isinstance(choice.get("finish_reason"), str):
                self.finish_reason = choice["finish_reason"]

    def _tool_calls(self, calls: Any) -> None:
        if calls is None:
            return
        if not isinstance(calls, list):
            raise _Malformed("`tool_calls` is not a list")
        for position, part in enumerate(calls):
            if not isinstance(part, dict):
                raise _Malformed("a tool call is not an object")
            index = part.get("index", position)
            call = self.calls.get(index)
            if call is None:
                call = self.calls[index] = ToolCall(id=part.get("id") or f"call_{uuid.uuid4().hex}")
            function = part.get("function") or {}
            if isinstance(function.get("name"), str):
                call.name += function["name"]
            if isinstance(function.get("arguments"), str):
                call.arguments.append(function["arguments"])

    async def _delta(self, kind: str, delta: str) -> None:
        if self._open is None or self._open["type"] != kind:
            await self.close_item()
            item_id = self.ctx.new_item_id()
            if kind == "reasoning":
                self._open = {"id": item_id, "type": "reasoning", "summary": [], "content": []}
            else:
                self._open = agent_message_item(item_id, "")
            await self.ctx.item_started(self._open)
        self._open_text.append(delta)
        if kind == "reasoning":
            await self.ctx.reasoning_summary_delta(self._open["id"], delta, 0)
        else:
            await self.ctx.agent_message_delta(self._open["id"], delta)

    async def close_item(self) -> None:
        item, self._open = self._open, None
        if item is None:
            return
        text, self._open_text = "".join(self._open_text), []
        if item["type"] == "reasoning":
            await self.ctx.item_completed({**item, "summary": [text]})
        else:
            await self.ctx.item_completed(agent_message_item(item["id"], text))

    def reply(self) -> Reply:
        return Reply("".join(self.text), [self.calls[i] for i in sorted(self.calls)])


class _Malformed(Exception):
    pass


def error_text(body: Any) -> str:
    """The `error.message` of an OpenAI-style error body, else the body itself."""
    if isinstance(body, dict):
        error = body.get("error")
        message = error.get("message") if isinstance(error, dict) else None
        if isinstance(message, str):
            return message[:MAX_ERROR_DETAIL_CHARS]
        if isinstance(error, str):
            return error[:MAX_ERROR_DETAIL_CHARS]
    return json.dumps(body)[:MAX_ERROR_DETAIL_CHARS]


async def read_reply(
    ctx: TurnContext, response: httpx.Response, text: list[str], *, emit: bool = True
) -> Reply:
    """Consume the event stream (see `_Stream` for `text` and `emit`). The body is read
    by a separate task that only ever waits inside httpx (it hands lines over without
    blocking), so stopping early, on `[DONE]`, an error, an interrupt or a steer, cancels
    it inside httpx's own generators and they finish cleanly instead of being abandoned
    half-way."""
    send, receive = trio.open_memory_channel[str](math.inf)
    failure: list[httpx.HTTPError] = []

    async def pump() -> None:
        with send:
            try:
                async for line in response.aiter_lines():
                    send.send_nowait(line)
            except httpx.HTTPError as exc:  # reaches the reader after the lines before it
                failure.append(exc)

    outcome: Reply | Exception
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pump)
        try:
            outcome = await _consume(_Stream(ctx, text, emit=emit), receive, failure)
        except Exception as exc:  # raised below, outside the nursery (no group)
            outcome = exc
        nursery.cancel_scope.cancel()
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


async def _consume(
    stream: _Stream,
    lines: trio.MemoryReceiveChannel[str],
    failure: list[httpx.HTTPError],
) -> Reply:
    decoder = SSEDecoder()

    async def handle(data: str) -> bool:
        """Feed one event's data; True at the `[DONE]` sentinel."""
        if data.strip() == "[DONE]":
            return True
        try:
            chunk = json.loads(data)
        except ValueError:
            raise _Malformed(f"an event is not JSON: {data[:80]!r}") from None
        await stream.feed(chunk)
        return False

    done = False
    try:
        async for line in lines:
            event = decoder.feed(line)
            if event is not None and await handle(event.data):
                done = True
                break
        else:
            if failure:
                raise failure[0]
            pending = decoder.flush()  # a last event without its blank line
            done = pending is not None and await handle(pending.data)
    except _Malformed as exc:
        raise TurnFailed(f"malformed response from the model endpoint: {exc}") from None
    if not done and stream.finish_reason is None:
        raise TurnFailed("the model endpoint ended the stream before the answer was complete")
    await stream.close_item()
    return stream.reply()
