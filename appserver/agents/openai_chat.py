"""A real model: any OpenAI-compatible chat-completions endpoint (`modelProvider: "openai"`).

Each step POSTs the conversation to `{base_url}/chat/completions` with `stream: true` and
turns the server-sent events into items: text → `agentMessage` deltas, reasoning text
(`delta.reasoning_content` or `delta.reasoning`) → a `reasoning` item. The model has one
tool, `shell` (`{command, workdir?}`); each call becomes a `commandExecution` item run by
the builtin agent's `/run` code (`run_command`: same approvals, policies, replay and
interrupt), and its result goes back to the model as a `tool` message. The turn loops until
the model answers without a tool call, at most `max_steps` requests.

Endpoint failures end the turn `failed` with a clear message (TurnFailed); 429 and 5xx
answers are retried with backoff, each retry announced by an `error` notification with
`willRetry: true`. Connecting and every wait for the next chunk are bounded by `timeout`.
Interrupting cancels the HTTP request at once (trio cancellation closes the connection).
The API key is only ever sent in the Authorization header: it is never logged, and it is
scrubbed from any message that could reach a client.

Layout: this module holds the backend and its turn loop; `openai_http` the settings and the
requests with their retries, `openai_stream` the parsing of one streamed response,
`openai_messages` the conversation as chat messages, and `openai_tools` the `shell` tool.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from .base import TurnContext, TurnFailed
from .openai_http import (
    API_KEY_ENV,
    DEFAULT_BASE_URL,
    DEFAULT_MODEL,
    OpenAISettings,
    open_client,
    request_reply,
    scrub,
)
from .openai_messages import (
    MAX_TOOL_OUTPUT_CHARS,
    describe,
    history_messages,
    system_message,
    tool_call_message,
    truncate,
    user_content,
)
from .openai_stream import MAX_ERROR_DETAIL_CHARS, Reply, ToolCall
from .openai_tools import SHELL_TOOL, run_tool

__all__ = [
    "API_KEY_ENV",
    "DEFAULT_BASE_URL",
    "DEFAULT_MODEL",
    "MAX_ERROR_DETAIL_CHARS",
    "MAX_TOOL_OUTPUT_CHARS",
    "SHELL_TOOL",
    "OpenAIChatAgent",
    "OpenAISettings",
    "Reply",
    "ToolCall",
    "describe",
    "history_messages",
    "run_tool",
    "system_message",
    "tool_call_message",
    "truncate",
    "user_content",
]


class OpenAIChatAgent:
    """AgentBackend for an OpenAI-compatible `/chat/completions` endpoint."""

    name: str = "openai"

    def __init__(self, settings: OpenAISettings | None = None) -> None:
        self.settings = settings or OpenAISettings()
        self.model = self.settings.model

    async def run_turn(self, ctx: TurnContext, user_input: Sequence[dict[str, Any]]) -> None:
        try:
            await self._run(ctx, user_input)
        except TurnFailed as exc:
            raise TurnFailed(self._scrub(exc.message)) from None

    def _scrub(self, text: str) -> str:
        return scrub(self.settings, text)

    async def _run(self, ctx: TurnContext, user_input: Sequence[dict[str, Any]]) -> None:
        messages = [system_message(ctx), *history_messages(await ctx.history())]
        messages.append({"role": "user", "content": user_content(user_input)})
        async with open_client(self.settings) as client:
            for _ in range(self.settings.max_steps):
                reply = await self._step(ctx, client, messages)
                messages.append(reply.message())
                if not reply.tool_calls:
                    return
                for call in reply.tool_calls:
                    result = await run_tool(ctx, call)
                    messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
        raise TurnFailed(
            f"the model was still calling tools after {self.settings.max_steps} steps; "
            "the turn was stopped"
        )

    async def _step(
        self, ctx: TurnContext, client: httpx.AsyncClient, messages: list[dict[str, Any]]
    ) -> Reply:
        """One request, retried on 429 / 5xx (with `error` willRetry notifications)."""
        settings = self.settings
        body = {
            "model": ctx.model or settings.model,
            "messages": messages,
            "tools": [SHELL_TOOL],
            "stream": True,
        }
        return await request_reply(ctx, client, settings, body)
