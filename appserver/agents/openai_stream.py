"""One streamed model response: server-sent events (decoded by `httpx-sse`) turned into
items (`agentMessage` and `reasoning` deltas) as they arrive, and the reply they add up to
(its text, tool calls and token usage).

`Stream` holds what both wire APIs share (the items, the text, the tool calls); its
subclass for chat completions is `ChatStream` (below), the one for the Responses API
`openai_responses.ResponsesStream`. `read_reply` drives either over one HTTP response.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import trio
from httpx_sse import EventSource, ServerSentEvent, SSEError

from .base import TurnContext, TurnFailed, agent_message_item

MAX_ERROR_DETAIL_CHARS = 300

# The token usage of one model call as agents.base.TalkingBack.token_usage takes it.
Usage = dict[str, int]


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
    usage: Usage | None = None

    def message(self) -> dict[str, Any]:
        """The reply as a chat message (the conversation is kept as chat messages for
        both APIs; openai_responses converts them)."""
        message: dict[str, Any] = {"role": "assistant", "content": self.text}
        if self.tool_calls:
            message["tool_calls"] = [call.wire() for call in self.tool_calls]
        return message


class Malformed(Exception):
    pass


def usage_of(
    raw: Any, *, input_key: str, output_key: str, input_details: str, output_details: str
) -> Usage | None:
    """An endpoint's usage object mapped to the TalkingBack shape (missing counts are 0)."""
    if not isinstance(raw, dict):
        return None

    def count(value: Any) -> int:
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    def detail(key: str, name: str) -> int:
        details = raw.get(key)
        return count(details.get(name)) if isinstance(details, dict) else 0

    inputs, outputs = count(raw.get(input_key)), count(raw.get(output_key))
    return {
        "inputTokens": inputs,
        "cachedInputTokens": detail(input_details, "cached_tokens"),
        "outputTokens": outputs,
        "reasoningOutputTokens": detail(output_details, "reasoning_tokens"),
        "totalTokens": count(raw.get("total_tokens")) or inputs + outputs,
    }


class Stream:
    """Turns the events of one response into items as they arrive (or, with `emit`
    False, only gathers them). `text` receives the content pieces as they come, so a
    caller whose request is cut off (a steer) still has what was streamed."""

    def __init__(self, ctx: TurnContext, text: list[str], *, emit: bool) -> None:
        self.ctx = ctx
        self.text = text
        self.emit = emit
        self.calls: dict[Any, ToolCall] = {}
        self.usage: Usage | None = None
        self.finished = False  # the answer is known to be complete
        self._open: dict[str, Any] | None = None  # the item being streamed
        self._open_text: list[str] = []

    async def event(self, event: ServerSentEvent) -> bool:
        """Feed one event; True when the response is over."""
        raise NotImplementedError

    def payload(self, data: str) -> dict[str, Any]:
        try:
            parsed = json.loads(data)
        except ValueError:
            raise Malformed(f"an event is not JSON: {data[:80]!r}") from None
        if not isinstance(parsed, dict):
            raise Malformed("an event is not a JSON object")
        return parsed

    async def reasoning(self, delta: str) -> None:
        if delta and self.emit:
            await self._delta("reasoning", delta)

    async def content(self, delta: str) -> None:
        if delta:
            self.text.append(delta)
            if self.emit:
                await self._delta("agentMessage", delta)

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
        calls = list(self.calls.values())
        return Reply("".join(self.text), calls, self.usage)


class ChatStream(Stream):
    """A chat-completions stream: `data:` chunks with `choices[0].delta`, a last chunk
    with `usage` (asked for with `stream_options.include_usage`), then `[DONE]`."""

    async def event(self, event: ServerSentEvent) -> bool:
        if event.data.strip() == "[DONE]":
            self.finished = True
            return True
        chunk = self.payload(event.data)
        if "error" in chunk:
            raise TurnFailed(f"the model endpoint reported an error: {error_text(chunk)}")
        usage = usage_of(
            chunk.get("usage"),
            input_key="prompt_tokens",
            output_key="completion_tokens",
            input_details="prompt_tokens_details",
            output_details="completion_tokens_details",
        )
        if usage is not None:
            self.usage = usage
        choices = chunk.get("choices") or []
        if not isinstance(choices, list):
            raise Malformed("`choices` is not a list")
        for choice in choices[:1]:
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if not isinstance(delta, dict):
                raise Malformed("a choice has no `delta` object")
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str):
                await self.reasoning(reasoning)
            content = delta.get("content")
            if isinstance(content, str):
                await self.content(content)
            self._tool_calls(delta.get("tool_calls"))
            if isinstance(choice.get("finish_reason"), str):
                self.finished = True
        return False

    def _tool_calls(self, calls: Any) -> None:
        if calls is None:
            return
        if not isinstance(calls, list):
            raise Malformed("`tool_calls` is not a list")
        for position, part in enumerate(calls):
            if not isinstance(part, dict):
                raise Malformed("a tool call is not an object")
            index = part.get("index", position)
            call = self.calls.get(index)
            if call is None:
                call = self.calls[index] = ToolCall(id=part.get("id") or f"call_{uuid.uuid4().hex}")
            function = part.get("function") or {}
            if isinstance(function.get("name"), str):
                call.name += function["name"]
            if isinstance(function.get("arguments"), str):
                call.arguments.append(function["arguments"])

    def reply(self) -> Reply:
        calls = [self.calls[i] for i in sorted(self.calls)]
        return Reply("".join(self.text), calls, self.usage)


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


async def read_reply(stream: Stream, response: httpx.Response) -> Reply:
    """Consume the event stream into `stream`. The body is read and decoded (httpx-sse)
    by a separate task that only ever waits inside httpx (it hands events over without
    blocking), so stopping early, at the end of the answer, an error, an interrupt or a
    steer, cancels it inside httpx's own generators and they finish cleanly instead of
    being abandoned half-way."""
    send, receive = trio.open_memory_channel[ServerSentEvent](math.inf)
    failure: list[httpx.HTTPError] = []

    async def pump() -> None:
        with send:
            try:
                async for event in EventSource(response).aiter_sse():
                    send.send_nowait(event)
            except httpx.HTTPError as exc:  # reaches the reader after the events before it
                failure.append(exc)

    outcome: Reply | Exception
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pump)
        try:
            outcome = await _consume(stream, receive, failure)
        except Exception as exc:  # raised below, outside the nursery (no group)
            outcome = exc
        nursery.cancel_scope.cancel()
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


async def _consume(
    stream: Stream,
    events: trio.MemoryReceiveChannel[ServerSentEvent],
    failure: list[httpx.HTTPError],
) -> Reply:
    try:
        async for event in events:
            if await stream.event(event):
                break
        else:
            if failure:
                if isinstance(failure[0], SSEError):
                    raise Malformed(str(failure[0]))
                raise failure[0]
    except Malformed as exc:
        raise TurnFailed(f"malformed response from the model endpoint: {exc}") from None
    if not stream.finished:
        raise TurnFailed("the model endpoint ended the stream before the answer was complete")
    await stream.close_item()
    return stream.reply()
