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
"""

from __future__ import annotations

import json
import logging
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import attrs
import httpx
import trio

from .base import ApprovalDecision, ApprovalKind, TurnContext, TurnFailed
from .shell import run_command
from .sse import SSEDecoder

log = logging.getLogger("appserver.agents.openai")

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o-mini"
API_KEY_ENV = "OPENAI_API_KEY"
# Tool output beyond this many characters is cut in the middle before it goes to the model.
MAX_TOOL_OUTPUT_CHARS = 32_000
MAX_ERROR_DETAIL_CHARS = 300

SHELL_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "shell",
        "description": (
            "Run a shell command with /bin/sh -c and return its exit code and combined "
            "stdout/stderr. The user may have to approve each command first."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "command": {"type": "string", "description": "The shell command to run."},
                "workdir": {
                    "type": "string",
                    "description": "Directory to run in (default: the working directory).",
                },
            },
            "required": ["command"],
        },
    },
}


@attrs.frozen(kw_only=True)
class OpenAISettings:
    """How the backend reaches its endpoint (set from ServerConfig at server start)."""

    base_url: str = DEFAULT_BASE_URL
    model: str = DEFAULT_MODEL  # for threads that name no model of their own
    api_key: str | None = attrs.field(default=None, repr=False)
    timeout: float = 60.0  # to connect, and between two chunks of a response
    max_attempts: int = 3  # per request, for 429 and 5xx answers
    retry_delay: float = 1.0  # first backoff, doubled on each retry
    max_retry_after: float = 30.0  # a longer Retry-After ends the turn instead
    max_steps: int = 20  # requests per turn

    @property
    def completions_url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"


# --- the conversation as chat messages ---------------------------------------------------


def system_message(ctx: TurnContext) -> dict[str, Any]:
    return {
        "role": "system",
        "content": (
            "You are a coding agent working in the directory "
            f"{ctx.cwd}. Use the `shell` tool to inspect files and run commands; each "
            "command may need the user's approval. Answer concisely."
        ),
    }


def user_content(content: Sequence[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """A userMessage's input as chat content: plain text, or parts when it has images."""
    texts = [
        i["text"] for i in content if i.get("type") == "text" and isinstance(i.get("text"), str)
    ]
    images = [
        i["url"] for i in content if i.get("type") == "image" and isinstance(i.get("url"), str)
    ]
    text = "\n".join(texts)
    if not images:
        return text
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    parts += [{"type": "image_url", "image_url": {"url": url}} for url in images]
    return parts


def tool_call_message(call_id: str, arguments: dict[str, Any], content: str) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": content,
        "tool_calls": [
            {
                "id": call_id,
                "type": "function",
                "function": {"name": "shell", "arguments": json.dumps(arguments)},
            }
        ],
    }


def history_messages(turns: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Earlier turns' items as chat messages: user and agent messages, and each command
    as an assistant tool call followed by its result. Reasoning is not sent back."""
    messages: list[dict[str, Any]] = []
    for turn in turns:
        for item in turn.get("items", []):
            kind = item.get("type")
            if kind == "userMessage":
                messages.append({"role": "user", "content": user_content(item["content"])})
            elif kind == "agentMessage":
                messages.append({"role": "assistant", "content": item.get("text") or ""})
            elif kind == "commandExecution":
                arguments = {"command": item.get("command", ""), "workdir": item.get("cwd")}
                previous = messages[-1] if messages else None
                if (
                    previous is not None
                    and previous["role"] == "assistant"
                    and "tool_calls" not in previous
                ):
                    messages.pop()  # the text the model said before calling the tool
                    content = previous["content"]
                else:
                    content = ""
                messages.append(tool_call_message(item["id"], arguments, content))
                messages.append(
                    {"role": "tool", "tool_call_id": item["id"], "content": describe(item)}
                )
    return messages


def describe(item: dict[str, Any]) -> str:
    """What the model is told about a finished commandExecution item."""
    status, output, code = item.get("status"), item.get("aggregatedOutput"), item.get("exitCode")
    lines: list[str] = []
    if status == "declined":
        lines.append(
            "The user declined to run this command."
            if output is None
            else "The user declined to run the rest of this command."
        )
    elif output is None:
        lines.append("The command was not run: the approval request failed.")
    if code is not None:
        lines.append(f"Exit code: {code}")
    if output:
        lines.append("Output:\n" + truncate(output))
    elif output == "":
        lines.append("(no output)")
    return "\n".join(lines)


def truncate(text: str, limit: int = MAX_TOOL_OUTPUT_CHARS) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    cut = len(text) - 2 * half
    return f"{text[:half]}\n[... {cut} characters cut ...]\n{text[-half:]}"


# --- one streamed response ----------------------------------------------------------------


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

    def message(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.text}
        if self.tool_calls:
            message["tool_calls"] = [call.wire() for call in self.tool_calls]
        return message


class _Stream:
    """Turns the chunks of one response into items as they arrive."""

    def __init__(self, ctx: TurnContext) -> None:
        self.ctx = ctx
        self.text: list[str] = []
        self.calls: dict[int, ToolCall] = {}
        self.finish_reason: str | None = None
        self._open: dict[str, Any] | None = None  # the item being streamed
        self._open_text: list[str] = []

    async def feed(self, chunk: Any) -> None:
        if not isinstance(chunk, dict):
            raise _Malformed("a chunk is not a JSON object")
        if "error" in chunk:
            raise TurnFailed(f"the model endpoint reported an error: {_error_text(chunk)}")
        choices = chunk.get("choices") or []
        if not isinstance(choices, list):
            raise _Malformed("`choices` is not a list")
        for choice in choices[:1]:
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if not isinstance(delta, dict):
                raise _Malformed("a choice has no `delta` object")
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                await self._delta("reasoning", reasoning)
            content = delta.get("content")
            if isinstance(content, str) and content:
                self.text.append(content)
                await self._delta("agentMessage", content)
            self._tool_calls(delta.get("tool_calls"))
            if isinstance(choice.get("finish_reason"), str):
                self.finish_reason = choice["finish_reason"]

    def _tool_calls(self, calls: Any) -> None:
        if calls is None:
            return
        if not isinstance(calls, list):
            raise _Malformed("`tool_calls` is not a list")
        for position, part in enumerate(calls):
            if not isinstance(part, dict):
                raise _Malformed("a tool call is not an object")
            index = part.get("index", position)
            call = self.calls.get(index)
            if call is None:
                call = self.calls[index] = ToolCall(id=part.get("id") or f"call_{uuid.uuid4().hex}")
            function = part.get("function") or {}
            if isinstance(function.get("name"), str):
                call.name += function["name"]
            if isinstance(function.get("arguments"), str):
                call.arguments.append(function["arguments"])

    async def _delta(self, kind: str, delta: str) -> None:
        if self._open is None or self._open["type"] != kind:
            await self.close_item()
            item_id = self.ctx.new_item_id()
            if kind == "reasoning":
                self._open = {"id": item_id, "type": "reasoning", "summary": [], "content": []}
            else:
                self._open = _agent_message(item_id, "")
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
            await self.ctx.item_completed(_agent_message(item["id"], text))

    def reply(self) -> Reply:
        return Reply("".join(self.text), [self.calls[i] for i in sorted(self.calls)])


class _Malformed(Exception):
    pass


@dataclass
class _Retryable:
    message: str
    retry_after: float | None


def _agent_message(item_id: str, text: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "agentMessage",
        "text": text,
        "phase": None,
        "memoryCitation": None,
    }


def _error_text(body: Any) -> str:
    """The `error.message` of an OpenAI-style error body, else the body itself."""
    if isinstance(body, dict):
        error = body.get("error")
        message = error.get("message") if isinstance(error, dict) else None
        if isinstance(message, str):
            return message[:MAX_ERROR_DETAIL_CHARS]
        if isinstance(error, str):
            return error[:MAX_ERROR_DETAIL_CHARS]
    return json.dumps(body)[:MAX_ERROR_DETAIL_CHARS]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 <= seconds < float("inf") else None


async def _error_detail(response: httpx.Response) -> str:
    raw = (await response.aread()).decode("utf-8", errors="replace")
    try:
        return _error_text(json.loads(raw))
    except ValueError:
        return raw.strip()[:MAX_ERROR_DETAIL_CHARS] or response.reason_phrase


# --- the tool -----------------------------------------------------------------------------


class _CommandContext:
    """The turn's context as `run_command` sees it for one tool call: `cwd` is the call's
    workdir, and the finished commandExecution item is kept for the tool result."""

    def __init__(self, ctx: TurnContext, cwd: str) -> None:
        self._ctx = ctx
        self._cwd = cwd
        self.item: dict[str, Any] | None = None

    @property
    def thread_id(self) -> str:
        return self._ctx.thread_id

    @property
    def turn_id(self) -> str:
        return self._ctx.turn_id

    @property
    def cwd(self) -> str:
        return self._cwd

    @property
    def approval_policy(self) -> str:
        return self._ctx.approval_policy

    @property
    def sandbox(self) -> str:
        return self._ctx.sandbox

    @property
    def model(self) -> str:
        return self._ctx.model

    @property
    def session_approvals(self) -> set[str]:
        return self._ctx.session_approvals

    def new_item_id(self) -> str:
        return self._ctx.new_item_id()

    async def item_started(self, item: dict[str, Any]) -> None:
        await self._ctx.item_started(item)

    async def item_completed(self, item: dict[str, Any]) -> None:
        self.item = item
        await self._ctx.item_completed(item)

    async def agent_message_delta(self, item_id: str, delta: str) -> None:
        await self._ctx.agent_message_delta(item_id, delta)

    async def reasoning_summary_delta(
        self, item_id: str, delta: str, summary_index: int = 0
    ) -> None:
        await self._ctx.reasoning_summary_delta(item_id, delta, summary_index)

    async def command_output_delta(self, item_id: str, delta: str) -> None:
        await self._ctx.command_output_delta(item_id, delta)

    async def file_change_output_delta(self, item_id: str, delta: str) -> None:
        await self._ctx.file_change_output_delta(item_id, delta)

    async def request_approval(
        self, kind: ApprovalKind, params: dict[str, Any]
    ) -> ApprovalDecision:
        return await self._ctx.request_approval(kind, params)

    async def history(self) -> list[dict[str, Any]]:
        return await self._ctx.history()

    async def retrying(self, message: str) -> None:
        await self._ctx.retrying(message)


async def run_tool(ctx: TurnContext, call: ToolCall) -> str:
    """Run one tool call; returns what the model is told. Problems with the call itself are
    reported to the model, not raised."""
    if call.name != "shell":
        return f"Error: unknown tool {call.name!r}; the only tool is `shell`."
    try:
        arguments = json.loads("".join(call.arguments) or "{}")
    except ValueError:
        return "Error: the tool arguments are not valid JSON."
    if not isinstance(arguments, dict):
        return "Error: the tool arguments must be a JSON object."
    command = arguments.get("command")
    if not isinstance(command, str) or not command.strip():
        return "Error: `command` must be a non-empty string."
    workdir = arguments.get("workdir")
    cwd = ctx.cwd
    if workdir is not None:
        if not isinstance(workdir, str):
            return "Error: `workdir` must be a string."
        path = trio.Path(ctx.cwd, workdir)
        cwd = str(await path.resolve())
        if not await path.is_dir():
            return f"Error: `workdir` is not a directory: {cwd}"
    capture = _CommandContext(ctx, cwd)
    await run_command(capture, command)
    assert capture.item is not None
    return describe(capture.item)


# --- the backend --------------------------------------------------------------------------


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
        key = self.settings.api_key
        return text.replace(key, "[redacted]") if key else text

    async def _run(self, ctx: TurnContext, user_input: Sequence[dict[str, Any]]) -> None:
        messages = [system_message(ctx), *history_messages(await ctx.history())]
        messages.append({"role": "user", "content": user_content(user_input)})
        headers = {"Accept": "text/event-stream"}
        if self.settings.api_key:
            headers["Authorization"] = f"Bearer {self.settings.api_key}"
        timeout = httpx.Timeout(self.settings.timeout)
        async with httpx.AsyncClient(headers=headers, timeout=timeout) as client:
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
        attempt = 1
        while True:
            outcome = await self._attempt(ctx, client, body)
            if isinstance(outcome, Reply):
                return outcome
            if attempt >= settings.max_attempts:
                raise TurnFailed(f"{outcome.message} (gave up after {attempt} attempts)")
            delay = outcome.retry_after
            if delay is None:
                delay = settings.retry_delay * 2 ** (attempt - 1)
            elif delay > settings.max_retry_after:
                raise TurnFailed(f"{outcome.message}; the endpoint asks to retry after {delay:g} s")
            attempt += 1
            await ctx.retrying(
                self._scrub(
                    f"{outcome.message}; retrying in {delay:g} s "
                    f"(attempt {attempt} of {settings.max_attempts})"
                )
            )
            await trio.sleep(delay)

    async def _attempt(
        self, ctx: TurnContext, client: httpx.AsyncClient, body: dict[str, Any]
    ) -> Reply | _Retryable:
        url = self.settings.completions_url
        log.debug("POST %s (model %s, %d messages)", url, body["model"], len(body["messages"]))
        try:
            async with client.stream("POST", url, json=body) as response:
                status = response.status_code
                if status != 200:
                    detail = await _error_detail(response)
                    message = f"the model endpoint answered HTTP {status}: {detail}"
                    if status == 429 or status >= 500:
                        return _Retryable(message, _retry_after(response))
                    if status in (401, 403):
                        message += " (check the API key: --api-key-file or OPENAI_API_KEY)"
                    raise TurnFailed(message)
                content_type = response.headers.get("content-type", "")
                if "json" in content_type:
                    raise TurnFailed(
                        "malformed response from the model endpoint: expected a server-sent "
                        f"event stream, got {content_type}"
                    )
                return await self._read(ctx, response)
        except httpx.ConnectTimeout:
            raise TurnFailed(
                f"timed out after {self.settings.timeout:g} s connecting to the model "
                f"endpoint {url}"
            ) from None
        except httpx.ConnectError as exc:
            raise TurnFailed(f"cannot connect to the model endpoint {url}: {exc}") from None
        except httpx.TimeoutException:
            raise TurnFailed(
                f"the model endpoint {url} sent nothing for {self.settings.timeout:g} s"
            ) from None
        except httpx.RemoteProtocolError as exc:
            raise TurnFailed(
                f"the model endpoint {url} broke off the response: {exc or 'connection closed'}"
            ) from None
        except httpx.HTTPError as exc:
            raise TurnFailed(
                f"request to the model endpoint {url} failed: {type(exc).__name__}: {exc}"
            ) from None

    async def _read(self, ctx: TurnContext, response: httpx.Response) -> Reply:
        """Consume the event stream. The body is read by a separate task that only ever
        waits inside httpx (it hands lines over without blocking), so stopping early, on
        `[DONE]`, an error or an interrupt, cancels it inside httpx's own generators and
        they finish cleanly instead of being abandoned half-way."""
        send, receive = trio.open_memory_channel[str](math.inf)
        failure: list[httpx.HTTPError] = []

        async def pump() -> None:
            with send:
                try:
                    async for line in response.aiter_lines():
                        send.send_nowait(line)
                except httpx.HTTPError as exc:  # reaches the reader after the lines before it
                    failure.append(exc)

        outcome: Reply | Exception
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pump)
            try:
                outcome = await self._consume(ctx, receive, failure)
            except Exception as exc:  # raised below, outside the nursery (no group)
                outcome = exc
            nursery.cancel_scope.cancel()
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def _consume(
        self,
        ctx: TurnContext,
        lines: trio.MemoryReceiveChannel[str],
        failure: list[httpx.HTTPError],
    ) -> Reply:
        decoder = SSEDecoder()
        stream = _Stream(ctx)

        async def handle(data: str) -> bool:
            """Feed one event's data; True at the `[DONE]` sentinel."""
            if data.strip() == "[DONE]":
                return True
            try:
                chunk = json.loads(data)
            except ValueError:
                raise _Malformed(f"an event is not JSON: {data[:80]!r}") from None
            await stream.feed(chunk)
            return False

        done = False
        try:
            async for line in lines:
                event = decoder.feed(line)
                if event is not None and await handle(event.data):
                    done = True
                    break
            else:
                if failure:
                    raise failure[0]
                pending = decoder.flush()  # a last event without its blank line
                done = pending is not None and await handle(pending.data)
        except _Malformed as exc:
            raise TurnFailed(f"malformed response from the model endpoint: {exc}") from None
        if not done and stream.finish_reason is None:
            raise TurnFailed("the model endpoint ended the stream before the answer was complete")
        await stream.close_item()
        return stream.reply()
