"""A real model: any OpenAI-compatible endpoint (`modelProvider: "openai"`), spoken to
through chat completions (`--model-api chat`, the default: `{base_url}/chat/completions`)
or the Responses API (`--model-api responses`: `{base_url}/responses`, openai_responses).

Each step POSTs the conversation with `stream: true` and turns the server-sent events
(decoded by `httpx-sse`) into items: text → `agentMessage` deltas, reasoning text → a
`reasoning` item. Every request names the thread's current model (`ctx.model`: a turn/start
`model`, a thread/resume switch), the configured `--model` only for a context without one.

Instructions: the thread's `baseInstructions` replace the backend's default prompt and its
`developerInstructions` follow them (as Codex does; chat: one system message, Responses
API: two `developer` messages), read from the context's `base_instructions` /
`developer_instructions` when it has them (openai_messages.instructions).

Tools: `shell` (`{command, workdir?}`); each call becomes a `commandExecution` item run by
the builtin agent's `/run` code (`run_command`: same approvals, policies, replay and
interrupt). Beside it, the dynamic tools the client declared at thread/start
(`ctx.dynamic_tools`), each call run by the client through `ctx.call_client_tool`
(openai_client_tools). Results go back to the model as tool messages. The turn loops until
the model answers without a tool call, at most `max_steps` requests per user input. A
turn/steer cuts the request in flight and asks again with the steered input appended
(running tool calls finish first, as in Codex; see `openai_loop`). After each answer the
endpoint's token usage goes to `ctx.token_usage` (`thread/tokenUsage/updated`).

thread/compact/start asks the model for a summary of the conversation (`openai_compact`);
later turns send that summary instead of the turns it replaced. review/start gathers the
change with read-only git commands and asks the model to review it (`openai_review`).

Endpoint failures end the turn `failed` with a clear message (TurnFailed); 429 and 5xx
answers are retried (tenacity: exponential backoff with jitter, or the endpoint's
Retry-After), each retry announced by an `error` notification with `willRetry: true`.
Connecting and every wait for the next chunk are bounded by `timeout`. Interrupting cancels
the HTTP request at once (trio cancellation closes the connection), a backoff wait too.
The API key is only ever sent in the Authorization header: it is never logged, and it is
scrubbed from any message that could reach a client.

Layout: this module holds the backend; `openai_loop` its turn loop and steering,
`openai_settings` the settings, `openai_http` the request bodies and the requests with
their retries,
`openai_stream` the parsing of one streamed chat response (and what both APIs share),
`openai_responses` the Responses API (bodies and events), `openai_messages` the
conversation as chat messages, `openai_tools` the tools (`shell`), `openai_client_tools`
the client's dynamic tools, `openai_compact` and `openai_review` the special turns.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from .base import TurnContext, TurnFailed
from .openai_compact import summarise
from .openai_http import scrub
from .openai_loop import run_conversation
from .openai_messages import (
    MAX_TOOL_OUTPUT_CHARS,
    describe,
    history_messages,
    system_message,
    system_messages,
    tool_call_message,
    truncate,
    user_content,
)
from .openai_review import review_change
from .openai_settings import (
    API_KEY_ENV,
    DEFAULT_BASE_URL,
    DEFAULT_MODEL,
    PROVIDER_NAME,
    OpenAISettings,
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
    """AgentBackend for an OpenAI-compatible endpoint (chat completions or the Responses
    API); it takes steered input (openai_loop), compacts (openai_compact) and reviews
    (openai_review)."""

    name: str = PROVIDER_NAME
    steerable: bool = True  # agents.base.Steering

    def __init__(self, settings: OpenAISettings | None = None) -> None:
        self.settings = settings or OpenAISettings()
        self.model = self.settings.model

    async def run_turn(self, ctx: TurnContext, user_input: Sequence[dict[str, Any]]) -> None:
        separate = self.settings.api == "responses"
        messages = [*system_messages(ctx, separate=separate)]
        messages += history_messages(await ctx.history())
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
