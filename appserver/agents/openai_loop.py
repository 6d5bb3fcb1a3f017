"""The OpenAI-compatible backend's turn loop, with turn/steer (PROTOCOL.md §10).

The loop asks the model, runs the tool calls of its answer, gives it their results, and
asks again until it answers without a tool call (at most `max_steps` requests for each
user input).

Steering: each model request runs under `until_steered` (agents/base.py). A steer cancels
the request at once (trio cancellation closes its HTTP connection); the items it was
streaming complete with what they have; and the next request carries the conversation so
far, the partial assistant text included, with the steered input appended as a user
message. Tool calls are not cut: as in the reference (Codex 0.171), a command that waits
for approval or is running goes on to its end, every tool call of that answer runs, and a
steer that arrived meanwhile is taken before the next request (its userMessage item comes
after the command's item). A steer while the answer is being closed or right after the last
answer is taken too: the loop looks once more, without any checkpoint between that look and
the agent's return, so no steer is ever left unanswered. An interrupt still cuts
everything.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import httpx

from .base import TurnContext, TurnFailed, until_steered
from .openai_http import OpenAISettings, open_client, request_body, request_reply
from .openai_messages import user_content
from .openai_stream import Reply
from .openai_tools import run_tool, tools_of

# What the model is told of a tool call its answer made when a steer came before it ran.
NOT_RUN = "Not run: the user sent new input before this tool call could run."

Message = dict[str, Any]


async def run_conversation(
    ctx: TurnContext, settings: OpenAISettings, messages: list[Message]
) -> None:
    """The whole turn; `messages` (the conversation so far) grows in place."""
    while True:
        async with open_client(settings) as client:
            await _converse(ctx, client, settings, messages)
        # A steer that came while the last answer was closed: nothing checkpoints between
        # this look and the agent's return, so none can come after it.
        steered = await until_steered(ctx, _nothing)
        if steered is None:
            return
        messages.append(steered_message(steered))


async def _nothing() -> None:
    return None


def steered_message(steered: list[dict[str, Any]]) -> Message:
    return {"role": "user", "content": user_content(steered)}


def tool_message(call_id: str, content: str) -> Message:
    return {"role": "tool", "tool_call_id": call_id, "content": content}


async def _ask(
    ctx: TurnContext,
    client: httpx.AsyncClient,
    settings: OpenAISettings,
    messages: list[Message],
    text: list[str],
    replies: list[Reply],
) -> None:
    body = request_body(settings, ctx.model or settings.model, messages, tools_of(ctx))
    replies.append(await request_reply(ctx, client, settings, body, text))


async def _converse(
    ctx: TurnContext,
    client: httpx.AsyncClient,
    settings: OpenAISettings,
    messages: list[Message],
) -> None:
    """Requests and tool calls until the model answers without a tool call."""
    steps = 0
    while True:
        if steps >= settings.max_steps:
            raise TurnFailed(
                f"the model was still calling tools after {settings.max_steps} steps; "
                "the turn was stopped"
            )
        steps += 1
        text: list[str] = []  # the answer's text as it streams, kept when a steer cuts it
        replies: list[Reply] = []

        ask = partial(_ask, ctx, client, settings, messages, text, replies)
        steered = await until_steered(ctx, ask)
        if steered is None:
            (reply,) = replies
            messages.append(reply.message())
            if not reply.tool_calls:
                return
            for call in reply.tool_calls:
                messages.append(tool_message(call.id, await run_tool(ctx, call)))
            continue
        if replies:  # the answer was complete when the steer came: its tools do not run
            (reply,) = replies
            messages.append(reply.message())
            messages += [tool_message(call.id, NOT_RUN) for call in reply.tool_calls]
        elif text:  # cut mid-answer: the model sees what it had said
            messages.append({"role": "assistant", "content": "".join(text)})
        messages.append(steered_message(steered))
        steps = 0  # new user input: a fresh allowance of steps
