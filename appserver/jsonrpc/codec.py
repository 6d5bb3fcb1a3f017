"""Sans-IO JSON-RPC 2.0 codec: text in -> typed events out; values in -> text out.

No trio, no I/O. `decode` never raises: anything that is not a well-formed message becomes
an `Invalid` event carrying the error to answer with (PROTOCOL.md §1, §1.1).
"""

from __future__ import annotations

import json
import json.encoder
from typing import Any

import attrs

from appserver.protocol.errors import InvalidRequest, JsonRpcError, ParseError
from appserver.protocol.not_hosted import method_not_found

RequestId = str | int


@attrs.frozen
class Request:
    id: RequestId
    method: str
    params: Any


@attrs.frozen
class Notification:
    method: str
    params: Any


@attrs.frozen
class Response:
    id: RequestId
    result: Any


@attrs.frozen
class ErrorResponse:
    id: RequestId | None
    error: dict[str, Any]


@attrs.frozen
class Invalid:
    """A message that must be answered with `error` (to `id`, or null when unknown)."""

    id: RequestId | None
    error: JsonRpcError


Event = Request | Notification | Response | ErrorResponse | Invalid


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_decoder = json.JSONDecoder(parse_constant=_reject_constant)
_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_ascii_encoder = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), allow_nan=False)
_encode_string = json.encoder.encode_basestring  # the C version when available


def is_request_id(value: object) -> bool:
    return type(value) is str or type(value) is int


def decode(text: str | bytes, known_methods: frozenset[str] | None = None) -> Event:
    """Decode one message. Requests for methods outside `known_methods` (when given)
    become `Invalid` with -32601 (naming the Codex feature for one appserver does not
    host)."""
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        msg = _decoder.decode(text)
    except UnicodeDecodeError as exc:
        return Invalid(None, ParseError(f"Parse error: invalid UTF-8 ({exc.reason})"))
    except RecursionError:
        return Invalid(None, ParseError("Parse error: nesting too deep"))
    except ValueError as exc:
        return Invalid(None, ParseError(f"Parse error: {exc}"))
    if type(msg) is list:
        return Invalid(None, InvalidRequest("Invalid request: batches are not supported"))
    if type(msg) is not dict:
        return Invalid(None, InvalidRequest("Invalid request: a message must be a JSON object"))
    return decode_object(msg, known_methods)


def decode_object(msg: dict[str, Any], known_methods: frozenset[str] | None = None) -> Event:
    has_id = "id" in msg
    msg_id = msg.get("id")
    reply_id = msg_id if is_request_id(msg_id) else None
    version = msg.get("jsonrpc", "2.0")
    if version != "2.0":
        return Invalid(
            reply_id, InvalidRequest(f'Invalid request: jsonrpc must be "2.0", got {version!r}')
        )
    if "method" in msg:
        method = msg["method"]
        if type(method) is not str:
            return Invalid(reply_id, InvalidRequest("Invalid request: method must be a string"))
        params = msg.get("params")
        if not has_id:
            return Notification(method, params)
        if reply_id is None:
            return Invalid(
                None, InvalidRequest("Invalid request: id must be a string or an integer")
            )
        if known_methods is not None and method not in known_methods:
            return Invalid(reply_id, method_not_found(method))
        return Request(reply_id, method, params)
    if "result" in msg and has_id:
        if reply_id is None:
            return Invalid(
                None, InvalidRequest("Invalid response: id must be a string or an integer")
            )
        return Response(reply_id, msg["result"])
    if "error" in msg and has_id:
        error = msg["error"]
        if type(error) is not dict:
            return Invalid(reply_id, InvalidRequest("Invalid response: error must be an object"))
        return ErrorResponse(reply_id, error)
    return Invalid(
        reply_id,
        InvalidRequest("Invalid request: not a request, notification or response"),
    )


def dumps(obj: Any) -> str:
    """Compact JSON whose text always encodes to valid UTF-8 (lone surrogates escaped)."""
    text = _encoder.encode(obj)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return _ascii_encoder.encode(obj)
    return text


class Outbound:
    """One encoded message on its way to one or more peers. Its UTF-8 bytes and its
    websocket frame are computed once, however many subscribers it is written to."""

    __slots__ = ("_frame", "_utf8", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._utf8: bytes | None = None
        self._frame: bytes | None = None

    @property
    def utf8(self) -> bytes:
        if self._utf8 is None:
            self._utf8 = self.text.encode("utf-8")
        return self._utf8

    @property
    def ws_frame(self) -> bytes:
        """RFC 6455 single unmasked text frame (what a server sends, no extensions)."""
        if self._frame is None:
            payload = self.utf8
            size = len(payload)
            if size < 126:
                header = bytes((0x81, size))
            elif size < 65536:
                header = bytes((0x81, 126)) + size.to_bytes(2, "big")
            else:
                header = bytes((0x81, 127)) + size.to_bytes(8, "big")
            self._frame = header + payload
        return self._frame


def encode_request(request_id: RequestId, method: str, params: Any) -> str:
    return dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})


def encode_notification(method: str, params: Any) -> str:
    return dumps({"jsonrpc": "2.0", "method": method, "params": params})


def string_json(value: str) -> str | None:
    """One JSON string as `dumps` writes it inside a message; None when the value holds
    a lone surrogate (then `dumps` writes the whole message in ASCII: use it)."""
    text = _encode_string(value)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return None
    return text


def notification_prefix(method: str, params: dict[str, Any], last: str) -> str:
    """The text of `encode_notification(method, {**params, last: ...})` up to the value of
    its last params member: `prefix + string_json(value) + "}}"` is the whole message,
    the same text `encode_notification` gives, for a notification sent many times with
    one field changing (a stream of deltas)."""
    head = dumps({"jsonrpc": "2.0", "method": method, "params": {**params, last: None}})
    return head[: -len("null}}")]


def with_seq(text: str, seq: int) -> str:
    """An encoded notification or request with a top-level `"seq"` (PROTOCOL.md §13)
    appended after its other members: the same text, no re-encoding."""
    return f'{text[:-1]},"seq":{seq}}}'


def encode_response(request_id: RequestId, result: Any) -> str:
    return dumps({"jsonrpc": "2.0", "id": request_id, "result": result})


def encode_error(request_id: RequestId | None, error: JsonRpcError | dict[str, Any]) -> str:
    wire = error.to_wire() if isinstance(error, JsonRpcError) else error
    return dumps({"jsonrpc": "2.0", "id": request_id, "error": wire})
