"""The builtin scripted agent (`modelProvider: "builtin"`, `model: "script"`, PROTOCOL.md §10).

The turn's text input is read line by line. Lines starting with `/` are directives; the
other non-empty lines are answered first with one agent message `You said: <lines>`; then
the directives run in order. A turn with neither (no text at all) is answered `You said: `.
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
from .shell import run_command

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


async def say(ctx: TurnContext, text: str) -> None:
    await send_message(ctx, text, split_words(text))


async def think(ctx: TurnContext, text: str) -> None:
    item_id = ctx.new_item_id()
    item: dict[str, Any] = {"id": item_id, "type": "reasoning", "summary": [], "content": []}
    await ctx.item_started(item)
    for delta in split_words(text):
        await ctx.reasoning_summary_delta(item_id, delta, 0)
    await ctx.item_completed({**item, "summary": [text]})


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


HANDLERS: dict[str, Handler] = {
    "say": say,
    "think": think,
    "stream": stream,
    "sleep": sleep,
    "fail": fail,
    "run": run_command,
    "write": write_file,
}


class ScriptAgent:
    """AgentBackend that follows the directives in the user's text; needs no network."""

    name: str = "builtin"
    model: str = "script"
    steerable: bool = True

    async def run_turn(self, ctx: TurnContext, user_input: Sequence[dict[str, Any]]) -> None:
        """The script; a turn/steer drops the rest of it and the steered input is
        handled the same way, in the same turn (PROTOCOL.md §10)."""
        script: Sequence[dict[str, Any]] | None = user_input
        while script is not None:
            script = await until_steered(ctx, functools.partial(self._run, ctx, script))

    async def _run(self, ctx: TurnContext, user_input: Sequence[dict[str, Any]]) -> None:
        plain, directives = parse_script(user_input)
        if plain or not directives:
            await say(ctx, "You said: " + "\n".join(plain))
        for name, arg in directives:
            handler = HANDLERS.get(name)
            if handler is None:
                raise TurnFailed(f"unknown directive: /{name}")
            await handler(ctx, arg)
