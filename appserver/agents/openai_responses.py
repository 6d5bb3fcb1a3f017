"""The OpenAI Responses API (`--model-api responses`): `POST {base_url}/responses` with
`stream: true`.

The backend keeps its conversation as chat messages whichever API it speaks; `input_items`
converts them for a Responses request as Codex 0.171 sends them: system prompts become
`developer` messages (Codex sends the base instructions and the developer instructions as
the first two `developer` messages of `input`, with no `instructions` field), user and
assistant messages `message` items (`input_text` / `input_image`, `output_text`), an
assistant tool call a `function_call` item and its result a `function_call_output` item.
Tools are flat `{"type": "function", "name", "description", "strict": false,
"parameters"}` objects.

`ResponsesStream` reads the streamed events: `response.output_text.delta` (text),
`response.reasoning_summary_text.delta` / `response.reasoning_text.delta` (a reasoning
item), `response.output_item.added` / `.done` (a message item ends with its output item;
a `function_call` item is a tool call), `response.function_call_arguments.delta`, and
`response.completed` (the end, with `usage`). `response.failed`, `response.incomplete`
and `error` events fail the turn.
"""

from __future__ import annotations

from typing import Any

from httpx_sse import ServerSentEvent

from .base import TurnFailed
from .openai_stream import MAX_ERROR_DETAIL_CHARS, Malformed, Stream, ToolCall, usage_of

Message = dict[str, Any]


def responses_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """A chat-completions tool (`{"type": "function", "function": {...}}`) in the
    Responses API's flat form."""
    function = tool["function"]
    return {
        "type": "function",
        "name": function["name"],
        "description": function.get("description", ""),
        "strict": False,
        "parameters": function.get("parameters", {"type": "object", "properties": {}}),
    }


def _content(content: Any, text_type: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": text_type, "text": content}]
    parts: list[dict[str, Any]] = []
    for part in content if isinstance(content, list) else []:
        if part.get("type") == "text":
            parts.append({"type": text_type, "text": part.get("text", "")})
        elif part.get("type") == "image_url":
            parts.append({"type": "input_image", "image_url": part["image_url"]["url"]})
    return parts


def input_items(messages: list[Message]) -> list[dict[str, Any]]:
    """Chat messages as Responses API input items."""
    items: list[dict[str, Any]] = []
    for message in messages:
        role, content = message["role"], message.get("content")
        if role in ("system", "developer", "user"):
            role = "user" if role == "user" else "developer"
            items.append(
                {"type": "message", "role": role, "content": _content(content, "input_text")}
            )
        elif role == "assistant":
            if content:
                items.append(
                    {
                        "type": "message",
                        "role": "assistant",
                        "content": _content(content, "output_text"),
                    }
                )
            for call in message.get("tool_calls", []):
                items.append(
                    {
                        "type": "function_call",
                        "call_id": call["id"],
                        "name": call["function"]["name"],
                        "arguments": call["function"]["arguments"],
                    }
                )
        elif role == "tool":
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": message["tool_call_id"],
                    "output": content if isinstance(content, str) else "",
                }
            )
    return items


def responses_body(
    model: str, messages: list[Message], tools: list[dict[str, Any]] | None
) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "input": input_items(messages)}
    if tools:
        body["tools"] = [responses_tool(tool) for tool in tools]
        body["tool_choice"] = "auto"
        body["parallel_tool_calls"] = True
    body["stream"] = True
    body["store"] = False
    return body


class ResponsesStream(Stream):
    """One streamed Responses API answer (see the module docstring)."""

    async def event(self, event: ServerSentEvent) -> bool:
        data = self.payload(event.data)
        kind = data.get("type") or event.event
        if kind in ("response.output_text.delta", "response.refusal.delta"):
            await self.content(_text(data, "delta"))
        elif kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            await self.reasoning(_text(data, "delta"))
        elif kind == "response.output_item.added":
            self._function_call(data, done=False)
        elif kind == "response.function_call_arguments.delta":
            call = self.calls.get(data.get("output_index"))
            if call is not None:
                call.arguments.append(_text(data, "delta"))
        elif kind == "response.output_item.done":
            if not self._function_call(data, done=True):
                await self.close_item()  # one agentMessage (or reasoning) item per output item
        elif kind == "response.completed":
            response = data.get("response")
            self.usage = usage_of(
                response.get("usage") if isinstance(response, dict) else None,
                input_key="input_tokens",
                output_key="output_tokens",
                input_details="input_tokens_details",
                output_details="output_tokens_details",
            )
            self.finished = True
            return True
        elif kind in ("response.failed", "error", "response.error"):
            raise TurnFailed(f"the model endpoint reported an error: {_error(data)}")
        elif kind == "response.incomplete":
            response = data.get("response")
            details = response.get("incomplete_details") if isinstance(response, dict) else None
            reason = details.get("reason") if isinstance(details, dict) else None
            raise TurnFailed(
                f"the model endpoint left the answer incomplete ({reason or 'no reason given'})"
            )
        return False

    def _function_call(self, data: dict[str, Any], *, done: bool) -> bool:
        """Track a `function_call` output item; False for any other item."""
        item = data.get("item")
        if not isinstance(item, dict):
            raise Malformed(f"`{data.get('type')}` has no `item` object")
        if item.get("type") != "function_call":
            return False
        index = data.get("output_index", len(self.calls))
        call = self.calls.get(index)
        if call is None:
            call_id = item.get("call_id") or item.get("id")
            if not isinstance(call_id, str) or not call_id:
                raise Malformed("a function_call item has no `call_id`")
            call = self.calls[index] = ToolCall(id=call_id)
        if isinstance(item.get("name"), str) and item["name"]:
            call.name = item["name"]
        arguments = item.get("arguments")
        if isinstance(arguments, str) and (done or arguments):
            call.arguments = [arguments]  # the whole arguments, deltas or not
        return True


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise Malformed(f"`{data.get('type')}` has no string `{key}`")
    return value


def _error(data: dict[str, Any]) -> str:
    response = data.get("response")
    error = response.get("error") if isinstance(response, dict) else data.get("error", data)
    message = error.get("message") if isinstance(error, dict) else None
    if not isinstance(message, str):
        message = data.get("message") if isinstance(data.get("message"), str) else str(error)
    return str(message)[:MAX_ERROR_DETAIL_CHARS]
