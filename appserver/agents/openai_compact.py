"""thread/compact/start for the OpenAI-compatible backend (agents.base.Compacting).

One streamed request, with no tools, asks the model to summarise the conversation:

- system: `COMPACT_INSTRUCTION` (fixed, below);
- user: the conversation so far as a plain-text transcript (`transcript`), built from
  `ctx.history()` as later turns would send it (an earlier compaction's summary stands
  for the turns it replaced).

The conversation goes as text rather than as chat messages so that no endpoint has to
accept tool calls in a request without tools. The answer streams no items (the server
records the turn's `contextCompaction` item) and is returned stripped; an empty answer
fails the turn. Later turns send the summary as a user message in place of the compacted
turns (openai_messages.history_messages).
"""

from __future__ import annotations

from typing import Any

from .base import TurnContext, TurnFailed
from .openai_http import OpenAISettings, open_client, request_body, request_reply
from .openai_messages import history_messages

COMPACT_INSTRUCTION = (
    "You are compacting a conversation between a user and a coding agent so that the "
    "agent can go on from a summary instead of the whole conversation. Write a handoff "
    "summary for the agent that will resume the work. Include: the user's goals and "
    "requests, the progress so far and the decisions made, the commands run and what "
    "they showed that still matters, the files and names involved, constraints and "
    "preferences the user stated, and what remains to be done (clear next steps). Be "
    "concise and factual; write only the summary."
)
EMPTY_CONVERSATION = "(The conversation so far is empty.)"


def transcript(messages: list[dict[str, Any]]) -> str:
    """Chat messages as a plain-text transcript, one block per message."""
    blocks: list[str] = []
    for message in messages:
        role, content = message["role"], _text(message.get("content"))
        if role == "user":
            blocks.append(f"User: {content}")
        elif role == "assistant":
            if content:
                blocks.append(f"Agent: {content}")
            for call in message.get("tool_calls", []):
                blocks.append(
                    f"Agent called {call['function']['name']}: {call['function']['arguments']}"
                )
        elif role == "tool":
            blocks.append(f"Tool result:\n{content}")
    return "\n\n".join(blocks)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # parts: text and images
        return "\n".join(
            part.get("text", "") if part.get("type") == "text" else "[image]"
            for part in content
            if isinstance(part, dict)
        )
    return ""


async def summarise(ctx: TurnContext, settings: OpenAISettings) -> str:
    """The model's summary of `ctx.history()`; an empty history is summarised without
    a request."""
    messages = history_messages(await ctx.history())
    if not messages:
        return EMPTY_CONVERSATION
    request = [
        {"role": "system", "content": COMPACT_INSTRUCTION},
        {"role": "user", "content": "The conversation to summarise:\n\n" + transcript(messages)},
    ]
    body = request_body(settings, ctx.model or settings.model, request)
    async with open_client(settings) as client:
        reply = await request_reply(ctx, client, settings, body, emit=False)
    summary = reply.text.strip()
    if not summary:
        raise TurnFailed("the model answered the compaction request with an empty summary")
    return summary
