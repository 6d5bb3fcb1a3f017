"""A fake OpenAI-compatible endpoint for the openai backend tests: a real HTTP/1.1 server
on loopback (trio + h11) answering `POST /v1/chat/completions` (or `/v1/responses`: any
path) with scripted replies; builders for both APIs' streams are below.

Each request takes the next scripted `Reply` (a 500 when none is left). A reply's `parts`
are sent in order; a `trio.Event` among them is waited for first, so a test decides exactly
when the rest of a stream goes out (or never: a stalled stream). Every request is recorded
with events telling whether its reply was sent in full or the client hung up first.
Every response carries `Connection: close`, so one request is one connection.
"""

from __future__ import annotations

import contextlib
import json
from collections import deque
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import h11
import trio

Part = bytes | trio.Event


@dataclass
class Reply:
    status: int = 200
    parts: list[Part] = field(default_factory=list)
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    raw: bytes
    body: Any
    finished: trio.Event = field(default_factory=trio.Event)  # the reply went out in full
    disconnected: trio.Event = field(default_factory=trio.Event)  # client left before that


class FakeOpenAI:
    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.requests: list[Received] = []
        self.port = 0
        self._changed = trio.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    async def request(self, number: int) -> Received:
        """The `number`-th request (1-based), waiting for it to arrive."""
        while len(self.requests) < number:
            await self._changed.wait()
        return self.requests[number - 1]

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(
                partial(trio.serve_tcp, self._handle, 0, host="127.0.0.1")
            )
            self.port = listeners[0].socket.getsockname()[1]
            task_status.started()

    async def _handle(self, stream: trio.SocketStream) -> None:
        async with stream:
            with contextlib.suppress(
                trio.BrokenResourceError, trio.ClosedResourceError, h11.RemoteProtocolError
            ):
                await self._exchange(stream)

    async def _exchange(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        request: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(65536))
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                return  # closed before a whole request
        assert request is not None
        try:
            parsed: Any = json.loads(body)
        except ValueError:
            parsed = None
        received = Received(
            method=request.method.decode(),
            path=request.target.decode(),
            headers={k.decode().lower(): v.decode() for k, v in request.headers},
            raw=bytes(body),
            body=parsed,
        )
        self.requests.append(received)
        self._changed.set()
        self._changed = trio.Event()
        reply = self.replies.popleft() if self.replies else error_reply(500, "no scripted reply")

        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                """The client sends nothing more on this connection: any read that ends
                means it hung up."""
                with contextlib.suppress(
                    trio.BrokenResourceError, trio.ClosedResourceError, OSError
                ):
                    await stream.receive_some(65536)
                received.disconnected.set()
                nursery.cancel_scope.cancel()

            nursery.start_soon(watch)
            try:
                await self._respond(stream, conn, reply)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                received.disconnected.set()
                return
            received.finished.set()
            nursery.cancel_scope.cancel()

    async def _respond(self, stream: trio.SocketStream, conn: h11.Connection, reply: Reply) -> None:
        headers = [("connection", "close"), *reply.headers]
        await stream.send_all(conn.send(h11.Response(status_code=reply.status, headers=headers)))
        for part in reply.parts:
            if isinstance(part, trio.Event):
                await part.wait()
            elif part:
                await stream.send_all(conn.send(h11.Data(data=part)))
        await stream.send_all(conn.send(h11.EndOfMessage()))


# --- building replies -----------------------------------------------------------------------


def event(data: dict[str, Any] | str) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data)
    return f"data: {text}\n\n".encode()


DONE = event("[DONE]")


def chunk(
    content: str | None = None,
    *,
    reasoning: str | None = None,
    reasoning_field: str = "reasoning_content",
    tool_calls: list[dict[str, Any]] | None = None,
    finish: str | None = None,
) -> bytes:
    delta: dict[str, Any] = {}
    if content is not None:
        delta["content"] = content
    if reasoning is not None:
        delta[reasoning_field] = reasoning
    if tool_calls is not None:
        delta["tool_calls"] = tool_calls
    return event(
        {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
    )


def stream_reply(*parts: Part, headers: list[tuple[str, str]] | None = None) -> Reply:
    sse = [("content-type", "text/event-stream"), ("transfer-encoding", "chunked")]
    return Reply(200, list(parts), sse + (headers or []))


def answer(*pieces: str, reasoning: tuple[str, ...] = ()) -> Reply:
    """A streamed plain answer: reasoning pieces, then text pieces, stop, [DONE]."""
    parts: list[Part] = [chunk("")]  # the usual role-only first chunk
    parts += [chunk(reasoning=r) for r in reasoning]
    parts += [chunk(p) for p in pieces]
    parts += [chunk(finish="stop"), DONE]
    return stream_reply(*parts)


def shell_call(
    command: str,
    *,
    call_id: str = "call_1",
    workdir: str | None = None,
    text: str = "",
    pieces: int = 3,
) -> Reply:
    """A streamed `shell` tool call whose arguments arrive split across `pieces` chunks."""
    args: dict[str, Any] = {"command": command}
    if workdir is not None:
        args["workdir"] = workdir
    encoded = json.dumps(args)
    size = -(-len(encoded) // pieces)
    split = [encoded[i : i + size] for i in range(0, len(encoded), size)]
    parts: list[Part] = [chunk(text)] if text else []
    first = {"index": 0, "id": call_id, "type": "function", "function": {"name": "shell"}}
    parts.append(chunk(tool_calls=[{**first, "function": {"name": "shell", "arguments": ""}}]))
    parts += [chunk(tool_calls=[{"index": 0, "function": {"arguments": s}}]) for s in split]
    parts += [chunk(finish="tool_calls"), DONE]
    return stream_reply(*parts)


def error_reply(status: int, message: str, headers: list[tuple[str, str]] | None = None) -> Reply:
    body = json.dumps({"error": {"message": message, "type": "fake_error"}}).encode()
    return Reply(
        status,
        [body],
        [
            ("content-type", "application/json"),
            ("content-length", str(len(body))),
            *(headers or []),
        ],
    )


def usage_chunk(prompt: int, completion: int, *, cached: int = 0, reasoning: int = 0) -> bytes:
    """The last chunk of a stream asked for with `stream_options.include_usage`."""
    return event(
        {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "choices": [],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
                "prompt_tokens_details": {"cached_tokens": cached},
                "completion_tokens_details": {"reasoning_tokens": reasoning},
            },
        }
    )


def tool_call(name: str, arguments: dict[str, Any], *, call_id: str = "call_1") -> Reply:
    """A streamed call of any tool, its arguments in one chunk."""
    function = {"name": name, "arguments": json.dumps(arguments)}
    parts: list[Part] = [
        chunk(tool_calls=[{"index": 0, "id": call_id, "type": "function", "function": function}]),
        chunk(finish="tool_calls"),
        DONE,
    ]
    return stream_reply(*parts)


# --- Responses API replies (`POST /v1/responses`) ---------------------------------------------


def response_event(data: dict[str, Any]) -> bytes:
    return f"event: {data['type']}\ndata: {json.dumps(data)}\n\n".encode()


def response_completed(input_tokens: int = 7, output_tokens: int = 3) -> bytes:
    usage = {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 2},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 1},
        "total_tokens": input_tokens + output_tokens,
    }
    return response_event({"type": "response.completed", "response": {"id": "r", "usage": usage}})


def response_text(*pieces: str, index: int = 0) -> list[Part]:
    """One assistant message output item streamed in `pieces`."""
    item = {"type": "message", "id": f"msg_{index}", "role": "assistant", "content": []}
    parts: list[Part] = [
        response_event({"type": "response.output_item.added", "output_index": index, "item": item})
    ]
    parts += [
        response_event(
            {"type": "response.output_text.delta", "output_index": index, "delta": piece}
        )
        for piece in pieces
    ]
    done = {**item, "content": [{"type": "output_text", "text": "".join(pieces)}]}
    parts.append(
        response_event({"type": "response.output_item.done", "output_index": index, "item": done})
    )
    return parts


def response_call(
    name: str, arguments: dict[str, Any], *, call_id: str, index: int = 0
) -> list[Part]:
    """One function_call output item, its arguments streamed as two deltas."""
    encoded = json.dumps(arguments)
    item = {"type": "function_call", "id": "fc", "call_id": call_id, "name": name, "arguments": ""}
    half = len(encoded) // 2
    return [
        response_event({"type": "response.output_item.added", "output_index": index, "item": item}),
        *(
            response_event(
                {
                    "type": "response.function_call_arguments.delta",
                    "output_index": index,
                    "delta": d,
                }
            )
            for d in (encoded[:half], encoded[half:])
        ),
        response_event(
            {
                "type": "response.output_item.done",
                "output_index": index,
                "item": {**item, "arguments": encoded},
            }
        ),
    ]


def responses_reply(*parts: Part | list[Part], completed: bool = True) -> Reply:
    flat: list[Part] = [response_event({"type": "response.created", "response": {"id": "r"}})]
    for part in parts:
        flat += part if isinstance(part, list) else [part]
    if completed:
        flat.append(response_completed())
    return stream_reply(*flat)
