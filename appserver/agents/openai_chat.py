"""A real model: any OpenAI-compatible chat-completions endpoint (`modelProvider: "openai"`).

Each step POSTs the conversation to `{base_url}/chat/completions` with `stream: true` and
turns the server-sent events into items: text → `agentMessage` deltas, reasoning text
(`delta.reasoning_content` or `delta.reasoning`) → a `reasoning` item. The model has one
tool, `shell` (`{command, workdir?}`); each call becomes a `commandExecution` item run by
the builtin agent's `/run` code (`run_command`: same approvals, policies, replay and
interrupt), and its result goes back to the model as a `tool` message. The turn loops until
the model answers without a tool call, at most `max_steps` requests per user input. A
turn/steer cuts the request in flight and asks again with the steered input appended
(running tool calls finish first, as in Codex; see `openai_loop`).

thread/compact/start asks the model for a summary of the conversation (`openai_compact`);
later turns send that summary instead of the turns it replaced. review/start gathers the
change with read-only git commands and asks the model to review it (`openai_review`).

Endpoint failures end the turn `failed` with a clear message (TurnFailed); 429 and 5xx
answers are retried with backoff, each retry announced by an `error` notification with
`willRetry: true`. Connecting and every wait for the next chunk are bounded by `timeout`.
Interrupting cancels the HTTP request at once (trio cancellation closes the connection).
The API key is only ever sent in the Authorization header: it is never logged, and it is
scrubbed from any message that could reach a client.

Layout: this module holds the backend; `openai_loop` its turn loop and steering,
`openai_http` the settings and the requests with their retries, `openai_stream` the parsing
of one streamed response, `openai_messages` the conversation as chat messages,
`openai_tools` the `shell` tool, `openai_compact` and `openai_review` the special turns.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from .base import TurnContext, TurnFailed
from .openai_compact import summarise
from .openai_http import API_KEY_ENV, DEFAULT_BASE_URL, DEFAULT_MODEL, OpenAISettings, scrub
from .openai_loop import run_conversation
from .openai_messages import (
    MAX_TOOL_OUTPUT_CHARS,
    describe,
    history_messages,
    system_message,
    tool_call_message,
    truncate,
    user_content,
)
from .openai_review import review_change
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
    """AgentBackend for an OpenAI-compatible `/chat/completions` endpoint; it takes
    steered input (openai_loop), compacts (openai_compact) and reviews (openai_review)."""

    name: str = "openai"
    steerable: bool = True  # agents.base.Steering

    def __init__(self, settings: OpenAISettings | None = None) -> None:
        self.settings = settings or OpenAISettings()
        self.model = self.settings.model

    async def run_turn(self, ctx: TurnContext, user_input: Sequence[dict[str, Any]]) -> None:
        messages = [system_message(ctx), *history_messages(await ctx.history())]
        messages.append({"role": "user", "content": user_content(user_input)})
        with self._scrubbed():
            await run_conversation(ctx, self.settings, messages)

    async def compact(self, ctx: TurnContext) -> str:
        """agents.base.Compacting: the model's summary of `ctx.history()`."""
        with self._scrubbed():
            return await summarise(ctx, self.settings)

    async def review(self, ctx: TurnContext, target: dict[str, Any]) -> str:
        """agents.base.Reviewing: the model's review of `target`'s change in `ctx.cwd`."""
        with self._scrubbed():
            return await review_change(ctx, self.settings, target)

    @contextlib.contextmanager
    def _scrubbed(self) -> Iterator[None]:
        """TurnFailed messages without the API key (they reach clients)."""
        try:
            yield
        except TurnFailed as exc:
            raise TurnFailed(scrub(self.settings, exc.message)) from None
