"""The builtin scripted agent (`modelProvider: "builtin"`, `model: "script"`, PROTOCOL.md §10).

The turn's text input is read line by line. Lines starting with `/` are directives; the
other non-empty lines are answered first with one agent message `You said: <lines>`; then
the directives run in order. A turn with neither (no text at all) is answered `You said: `.

Besides PROTOCOL.md §10's directives:

- `/review [INSTRUCTIONS]` reviews within the turn, with the items review/start shows
  (agents/reviews.py, without the prompt's userMessage): `enteredReviewMode` (label: the
  trimmed INSTRUCTIONS, or `current changes` without), `exitedReviewMode` and an
  agentMessage with the review text below. It runs no command (so it needs no approval).

The directives that talk back (`/ask`, `/tool`, `/plan`: agents/talking.py) are as
§10 says, with these details: `/ask`'s question also carries `isOther: false, isSecret:
false`; `/tool NAME` names a declared function, or `NAMESPACE.TOOL` for a function of a
declared namespace; its JSON is required, and an error answer (or an answer of another
shape) gives the message `tool NAME returned: (no answer)`. A completed `/write` sends
`turn/diff/updated` with the turn's aggregated diff: per file written in the turn (in the
order first written), the unified diff from its content before the turn's first write to
it (`/dev/null` when it did not exist) to its content now.

Token usage, only when the server is asked for it (`--builtin-token-usage`,
`ServerConfig.builtin_token_usage`; off by default, so that a plain turn's events stay
exactly PROTOCOL.md §6's list, which integration tests of other projects assert on): once
per turn, after its last item and before `turn/completed` (also when the turn fails; not
when it is interrupted), `thread/tokenUsage/updated` with one token
per 4 characters, rounded up, of the turn's text input (steered input included) as
`inputTokens`, and of the agent messages and reasoning it sent as `outputTokens`
(`cachedInputTokens` and `reasoningOutputTokens` 0); the running total is the thread's
while it stays loaded; `modelContextWindow` is null.

Compaction and review (agents.base.Compacting and Reviewing), both deterministic:

- `compact` summarises `ctx.history()`: the line `Summary of N earlier turn(s):`, then one
  line per item of those turns, in order: `Earlier summary: S` for a compaction's summary,
  `User: TEXT` (the userMessage's text inputs joined by a space), `Agent: TEXT`,
  `Command: CMD (exit N)` (`(STATUS)` without an exit code); other items are left out.
  With no earlier turn the summary is `Nothing to summarise yet.`
- `review` reads no code: the review text is `Reviewed LABEL: no findings (the builtin
  agent reads no code).` with the target's label (agents/reviews.py).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import trio

from .base import TurnContext, TurnFailed, agent_message_item, until_steered
from .files import write_file
from .reviews import emit_review, review_label
from .shell import run_command
from .talking import ask, call_tool, plan, record_output, report_usage, text_chars

STREAM_ALPHABET = "abcdefghijklmnopqrstuvwxyz"
# /stream N SIZE builds its N*SIZE characters (N when SIZE is 0) at most up to this.
MAX_STREAM_CHARS = 1 << 26
# /stream yields to the scheduler once per this many deltas, so it stays interruptible and
# fair even when every delta is accepted without blocking.
STREAM_CHECKPOINT_EVERY = 256

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_WORD = re.compile(r"\s*\S+\s*|\s+")
_DIRECTIVE = re.compile(r"/(\S*)\s*")
_DIGITS = re.compile(r"[0-9]+")

Directive = tuple[str, str]  # (name without the slash, argument)
Handler = Callable[[TurnContext, str], Awaitable[None]]


def split_words(text: str) -> list[str]:
    """Each word with its trailing whitespace (leading whitespace joins the first word);
    the pieces concatenate back to `text`."""
    return _WORD.findall(text)


def parse_script(user_input: Sequence[dict[str, Any]]) -> tuple[list[str], list[Directive]]:
    """Plain non-empty lines (whitespace-only lines count as empty) and directives, in
    input order, from every `{"type": "text"}` input."""
    plain: list[str] = []
    directives: list[Directive] = []
    for entry in user_input:
        text = entry.get("text")
        if entry.get("type") != "text" or not isinstance(text, str):
            continue
        for line in _LINE_BREAK.split(text):
            match = _DIRECTIVE.match(line)
            if match is not None:
                directives.append((match.group(1), line[match.end() :]))
            elif line.strip():
                plain.append(line)
    return plain, directives


async def send_message(ctx: TurnContext, text: str, deltas: Iterable[str]) -> None:
    """One agentMessage item; `deltas` must concatenate to `text`."""
    item_id = ctx.new_item_id()
    await ctx.item_started(agent_message_item(item_id, ""))
    for delta in deltas:
        await ctx.agent_message_delta(item_id, delta)
    await ctx.item_completed(agent_message_item(item_id, text))
    record_output(ctx, text)


async def say(ctx: TurnContext, text: str) -> None:
    await send_message(ctx, text, split_words(text))


async def think(ctx: TurnContext, text: str) -> None:
    item_id = ctx.new_item_id()
    item: dict[str, Any] = {"id": item_id, "type": "reasoning", "summary": [], "content": []}
    await ctx.item_started(item)
    for delta in split_words(text):
        await ctx.reasoning_summary_delta(item_id, delta, 0)
    await ctx.item_completed({**item, "summary": [text]})
    record_output(ctx, text)


def _count(what: str, value: str) -> int:
    if _DIGITS.fullmatch(value) is None:
        raise TurnFailed(f"/stream: {what} must be a non-negative integer, got {value!r}")
    return int(value)


def parse_stream_args(arg: str) -> tuple[int, int]:
    words = arg.split()
    if len(words) not in (1, 2):
        raise TurnFailed(f"/stream expects N [SIZE], got {arg!r}")
    count = _count("N", words[0])
    size = _count("SIZE", words[1]) if len(words) == 2 else 8
    if count * max(size, 1) > MAX_STREAM_CHARS:
        raise TurnFailed(f"/stream: N*SIZE must be at most {MAX_STREAM_CHARS}, got {arg!r}")
    return count, size


async def stream(ctx: TurnContext, arg: str) -> None:
    """N deltas of SIZE characters cycling through the alphabet. The alphabet's period
    means at most 26 distinct chunks exist; they are sliced once and reused."""
    count, size = parse_stream_args(arg)
    total = count * size
    text = (STREAM_ALPHABET * (total // len(STREAM_ALPHABET) + 1))[:total]
    period = len(STREAM_ALPHABET) // math.gcd(size, len(STREAM_ALPHABET))
    chunks = [text[i * size : (i + 1) * size] for i in range(min(count, period))] or [""]
    item_id = ctx.new_item_id()
    await ctx.item_started(agent_message_item(item_id, ""))
    delta = ctx.agent_message_delta
    for i in range(count):
        await delta(item_id, chunks[i % period])
        if i % STREAM_CHECKPOINT_EVERY == STREAM_CHECKPOINT_EVERY - 1:
            await trio.lowlevel.checkpoint()
    await ctx.item_completed(agent_message_item(item_id, text))
    record_output(ctx, text)


async def sleep(ctx: TurnContext, arg: str) -> None:
    try:
        seconds = float(arg)
    except ValueError:
        raise TurnFailed(f"/sleep expects a number of seconds, got {arg!r}") from None
    if math.isnan(seconds) or seconds < 0:
        raise TurnFailed(f"/sleep expects a non-negative number of seconds, got {arg!r}")
    await trio.sleep(seconds)


async def fail(ctx: TurnContext, message: str) -> None:
    raise TurnFailed(message)


NOTHING_TO_SUMMARISE = "Nothing to summarise yet."
REVIEW_TEXT = "Reviewed {label}: no findings (the builtin agent reads no code)."


def summary_of(history: Sequence[dict[str, Any]]) -> str:
    """The builtin compaction summary of a history (the module doc)."""
    if not history:
        return NOTHING_TO_SUMMARISE
    lines = [f"Summary of {len(history)} earlier turn(s):"]
    for turn in history:
        for item in turn.get("items", []):
            line = _summary_line(item)
            if line is not None:
                lines.append(line)
    return "\n".join(lines)


def _summary_line(item: dict[str, Any]) -> str | None:
    kind = item.get("type")
    if kind == "contextCompaction" and isinstance(item.get("summary"), str):
        return f"Earlier summary: {item['summary']}"
    if kind == "userMessage":
        texts = [i.get("text", "") for i in item.get("content", []) if i.get("type") == "text"]
        return "User: " + " ".join(texts)
    if kind == "agentMessage":
        return f"Agent: {item.get('text', '')}"
    if kind == "commandExecution":
        code = item.get("exitCode")
        return f"Command: {item.get('command', '')} " + (
            f"(exit {code})" if code is not None else f"({item.get('status')})"
        )
    return None


def review_text(target: dict[str, Any]) -> str:
    return REVIEW_TEXT.format(label=review_label(target))


async def review_directive(ctx: TurnContext, instructions: str) -> None:
    target: dict[str, Any] = (
        {"type": "custom", "instructions": instructions.strip()}
        if instructions.strip()
        else {"type": "uncommittedChanges"}
    )

    async def work() -> str:
        return review_text(target)

    await emit_review(ctx, target, work, with_prompt=False)


HANDLERS: dict[str, Handler] = {
    "say": say,
    "think": think,
    "stream": stream,
    "sleep": sleep,
    "fail": fail,
    "run": run_command,
    "write": write_file,
    "review": review_directive,
    "ask": functools.partial(ask, say=say),
    "tool": functools.partial(call_tool, say=say),
    "plan": plan,
}


class ScriptAgent:
    """AgentBackend that follows the directives in the user's text; needs no network."""

    name: str = "builtin"
    model: str = "script"
    steerable: bool = True

    def __init__(self, *, report_usage: bool = False) -> None:
        self.report_usage = report_usage

    async def run_turn(self, ctx: TurnContext, user_input: Sequence[dict[str, Any]]) -> None:
        """The script; a turn/steer drops the rest of it and the steered input is
        handled the same way, in the same turn (PROTOCOL.md §10)."""
        script: Sequence[dict[str, Any]] | None = user_input
        input_chars = 0
        try:
            while script is not None:
                input_chars += text_chars(script)
                script = await until_steered(ctx, functools.partial(self._run, ctx, script))
        except TurnFailed:
            if self.report_usage:
                await report_usage(ctx, input_chars)
            raise
        if self.report_usage:
            await report_usage(ctx, input_chars)

    async def _run(self, ctx: TurnContext, user_input: Sequence[dict[str, Any]]) -> None:
        plain, directives = parse_script(user_input)
        if plain or not directives:
            await say(ctx, "You said: " + "\n".join(plain))
        for name, arg in directives:
            handler = HANDLERS.get(name)
            if handler is None:
                raise TurnFailed(f"unknown directive: /{name}")
            await handler(ctx, arg)

    async def compact(self, ctx: TurnContext) -> str:
        """agents.base.Compacting: the deterministic summary of the module doc."""
        return summary_of(await ctx.history())

    async def review(self, ctx: TurnContext, target: dict[str, Any]) -> str:
        """agents.base.Reviewing: the deterministic review of the module doc."""
        return review_text(target)
