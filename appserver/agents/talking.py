"""The builtin agent's directives that talk back to the client (PROTOCOL.md §10, issue 15):
`/ask`, `/tool`, `/plan`, and its token count. They need a context with
agents.base.TalkingBack (the server's always has it); with another one they fail the turn.
"""

from __future__ import annotations

import contextlib
import json
import math
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

from .base import TalkingBack, TurnContext, TurnFailed

Say = Callable[[TurnContext, str], Awaitable[None]]

CHARS_PER_TOKEN = 4

# Characters of the agent messages and reasoning each turn's builtin agent sent.
_OUTPUT: weakref.WeakKeyDictionary[TurnContext, list[int]] = weakref.WeakKeyDictionary()


def talking(ctx: TurnContext, directive: str) -> TalkingBack:
    if not hasattr(ctx, "request_user_input"):
        raise TurnFailed(f"/{directive} needs a context that talks back to the client")
    return cast(TalkingBack, ctx)


def record_output(ctx: TurnContext, text: str) -> None:
    # A context that cannot be weakly referenced is not counted.
    with contextlib.suppress(TypeError):
        _OUTPUT.setdefault(ctx, [0])[0] += len(text)


def text_chars(user_input: Sequence[dict[str, Any]]) -> int:
    return sum(
        len(entry["text"])
        for entry in user_input
        if entry.get("type") == "text" and isinstance(entry.get("text"), str)
    )


def tokens(chars: int) -> int:
    return math.ceil(chars / CHARS_PER_TOKEN)


async def report_usage(ctx: TurnContext, input_chars: int) -> None:
    """thread/tokenUsage/updated once per turn: one token per 4 characters (rounded up)
    of the turn's text input and of the agent's output."""
    if not hasattr(ctx, "token_usage"):
        return
    output = _OUTPUT.pop(ctx, [0])[0]
    usage = {
        "inputTokens": tokens(input_chars),
        "cachedInputTokens": 0,
        "outputTokens": tokens(output),
        "reasoningOutputTokens": 0,
    }
    await cast(TalkingBack, ctx).token_usage(usage)


def _parts(arg: str) -> list[str]:
    return [part.strip() for part in arg.split("|")]


async def ask(ctx: TurnContext, arg: str, say: Say) -> None:
    """`/ask QUESTION [| OPTION]…` (§10)."""
    talk = talking(ctx, "ask")
    question, *options = _parts(arg)
    if not question:
        raise TurnFailed("/ask expects a question: /ask QUESTION [| OPTION]...")
    labels = [o for o in options if o]
    entry = {
        "id": "q1",
        "header": "Question",
        "question": question,
        "isOther": False,
        "isSecret": False,
        "options": [{"label": o, "description": ""} for o in labels] or None,
    }
    answers = await talk.request_user_input(ctx.new_item_id(), [entry], is_blocking=True)
    if answers is None:
        await say(ctx, "You answered: (no answer)")
        return
    given = answers.get("q1", {}).get("answers", [])
    await say(ctx, "You answered: " + ", ".join(given))


def declared_tool(tools: Sequence[dict[str, Any]], name: str) -> tuple[str, str | None] | None:
    """(tool, namespace) of a declared dynamic tool: a function named NAME, or
    `NAMESPACE.TOOL` for a function of a namespace; None when not declared."""
    for spec in tools:
        if spec.get("type") == "function" and spec.get("name") == name:
            return name, None
        if spec.get("type") == "namespace" and name.startswith(f"{spec.get('name')}."):
            tool = name[len(spec["name"]) + 1 :]
            if any(t.get("name") == tool for t in spec.get("tools") or []):
                return tool, spec["name"]
    return None


async def call_tool(ctx: TurnContext, arg: str, say: Say) -> None:
    """`/tool NAME JSON` (§10)."""
    talk = talking(ctx, "tool")
    words = arg.split(maxsplit=1)
    if not words:
        raise TurnFailed("/tool expects a tool name and JSON arguments: /tool NAME JSON")
    name = words[0]
    found = declared_tool(talk.dynamic_tools, name)
    if found is None:
        raise TurnFailed(f"/tool: no dynamic tool {name!r} was declared in thread/start")
    try:
        arguments = json.loads(words[1]) if len(words) > 1 else None
    except ValueError as exc:
        raise TurnFailed(f"/tool {name}: the arguments are not valid JSON: {exc}") from None
    if len(words) < 2:
        raise TurnFailed(f"/tool {name}: JSON arguments expected: /tool NAME JSON")
    tool, namespace = found
    result = await talk.call_client_tool(tool, arguments, namespace=namespace)
    if result is None:
        await say(ctx, f"tool {name} returned: (no answer)")
        return
    texts = [c["text"] for c in result["contentItems"] if c.get("type") == "inputText"]
    await say(ctx, f"tool {name} returned: " + "\n".join(texts))


async def plan(ctx: TurnContext, arg: str) -> None:
    """`/plan STEP [| STEP]…` (§10): the first step inProgress, then each step completed
    in turn (the next one inProgress)."""
    talk = talking(ctx, "plan")
    steps = [s for s in _parts(arg) if s]
    if not steps:
        raise TurnFailed("/plan expects at least one step: /plan STEP [| STEP]...")
    for done in range(len(steps) + 1):
        update = [
            {
                "step": step,
                "status": "completed" if i < done else "inProgress" if i == done else "pending",
            }
            for i, step in enumerate(steps)
        ]
        await talk.plan_updated(update)
