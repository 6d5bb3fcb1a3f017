"""Sans-IO codec and converter: synchronous, no trio (ARCHITECTURE.md)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from appserver.jsonrpc import (
    ErrorResponse,
    Invalid,
    Notification,
    PendingRequest,
    PendingTable,
    Request,
    Response,
    decode,
    dumps,
    encode_error,
    encode_notification,
    encode_request,
    encode_response,
    next_server_request_id,
)
from appserver.protocol import errors
from appserver.protocol.converter import structure_params
from appserver.protocol.types import ThreadListParams, TurnStartParams

METHODS = frozenset({"initialize", "thread/list"})


def test_decode_kinds() -> None:
    assert decode('{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}', METHODS) == Request(
        1, "initialize", {}
    )
    assert decode('{"method":"initialized"}', METHODS) == Notification("initialized", None)
    assert decode('{"id":"a","result":{"x":1}}') == Response("a", {"x": 1})
    assert decode('{"id":3,"error":{"code":1,"message":"m"}}') == ErrorResponse(
        3, {"code": 1, "message": "m"}
    )


def test_decode_errors_carry_codes_kinds_and_ids() -> None:
    cases: list[tuple[str | bytes, Any, int]] = [
        ("{", None, -32700),
        (b"\xff\xfe", None, -32700),
        ('{"a": NaN}', None, -32700),
        ("[" * 100_000, None, -32700),
        ("[]", None, -32600),
        ('"str"', None, -32600),
        ('{"id":1.5,"method":"initialize"}', None, -32600),
        ('{"id":null,"method":"initialize"}', None, -32600),
        ('{"id":1,"method":5}', 1, -32600),
        ('{"id":1,"method":"nope"}', 1, -32601),
        ('{"id":"x","jsonrpc":"3.0","method":"initialize"}', "x", -32600),
        ('{"id":1}', 1, -32600),
        ('{"id":1,"error":"boom"}', 1, -32600),
    ]
    for text, expected_id, code in cases:
        event = decode(text, METHODS)
        assert isinstance(event, Invalid), text
        assert (event.id, event.error.code) == (expected_id, code), text
        assert event.error.data["kind"]


@given(st.text())
@settings(max_examples=300)
def test_no_text_makes_decode_raise(text: str) -> None:
    event = decode(text, METHODS)
    assert isinstance(event, Request | Notification | Response | ErrorResponse | Invalid)


@given(st.binary())
@settings(max_examples=200)
def test_no_bytes_make_decode_raise(data: bytes) -> None:
    assert decode(data, METHODS) is not None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(
    st.dictionaries(
        st.sampled_from(["jsonrpc", "id", "method", "params", "result", "error", "x"]),
        json_values,
    )
)
@settings(max_examples=300)
def test_no_object_makes_decode_raise(message: dict[str, Any]) -> None:
    event = decode(json.dumps(message), METHODS)
    assert isinstance(event, Request | Notification | Response | ErrorResponse | Invalid)
    if isinstance(event, Invalid):
        assert event.error.code in (-32600, -32601, -32700)


@given(json_values)
@settings(max_examples=200)
def test_params_never_crash_the_converter(params: Any) -> None:
    for cls in (ThreadListParams, TurnStartParams):
        try:
            structure_params(params, cls)
        except errors.InvalidParams as exc:
            assert exc.data["errors"], exc
            for entry in exc.data["errors"]:
                assert set(entry) == {"path", "message"}


def test_encoders_round_trip_and_always_produce_utf8() -> None:
    for text in [
        encode_request(1, "m", {"a": "é"}),
        encode_notification("n", {"s": "\ud800 lone"}),
        encode_response("x", {"ok": True}),
        encode_error(None, errors.ParseError("bad")),
    ]:
        text.encode("utf-8")
        assert json.loads(text)["jsonrpc"] == "2.0"
    assert json.loads(dumps({"s": "\ud800"}))["s"] == "\ud800"
    assert json.loads(encode_error(5, errors.thread_not_found("abc")))["error"] == {
        "code": -32600,
        "message": "thread not found: abc",
        "data": {"kind": "threadNotFound"},
    }


def test_server_request_ids_come_from_one_counter() -> None:
    ids = [next_server_request_id() for _ in range(5)]
    assert ids == sorted(set(ids)) and all(isinstance(i, int) for i in ids)


def test_pending_table_first_answer_wins_and_only_recipients_answer() -> None:
    table: PendingTable[str] = PendingTable()
    table.add(PendingRequest(1, "m", {}, {"a", "b"}))
    assert table.claim(1, "c") is None  # not a recipient
    claimed = table.claim(1, "b")
    assert claimed is not None and claimed.method == "m"
    assert table.claim(1, "a") is None  # already answered
    assert len(table) == 0


def test_params_paths_are_dotted_wire_paths() -> None:
    try:
        structure_params(
            {"threadId": 1, "input": [{"type": "text", "text": 3}, {"type": "bogus"}]},
            TurnStartParams,
        )
    except errors.InvalidParams as exc:
        assert exc.data["errors"] == [
            {"path": "threadId", "message": "expected a string, got integer"},
            {"path": "input[0].text", "message": "expected a string, got integer"},
            {
                "path": "input[1]",
                "message": "unknown input type 'bogus'; expected one of 'text', "
                "'image', 'localImage', 'audio', 'localAudio', 'skill', 'mention'",
            },
        ]
    else:
        raise AssertionError("expected InvalidParams")
    parsed = structure_params({"sortKey": None, "limit": None, "extra": 1}, ThreadListParams)
    assert parsed.sort_key == "created_at" and parsed.limit is None
