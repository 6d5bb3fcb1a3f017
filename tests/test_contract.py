"""The handshake and error contract (PROTOCOL.md §1, §3, §9), over every transport."""

from __future__ import annotations

import pytest
import trio

from appserver._version import __version__
from appserver.client import RpcError

from conftest import ConnectFactory

TIMEOUT = 15


async def test_initialize_answers_server_info(connect: ConnectFactory) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            result = await client.initialize("tester", "1.2")
            assert result["userAgent"] == f"appserver/{__version__} (tester/1.2)"
            assert result["platformFamily"] == "unix"
            assert result["platformOs"] == "linux"
            assert result["codexHome"] == ":memory:"


async def test_requests_before_initialize_are_refused_then_initialize_works(
    connect: ConnectFactory,
) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            with pytest.raises(RpcError) as info:
                await client.request("thread/list")
            assert (info.value.code, info.value.message) == (-32600, "Not initialized")
            assert info.value.kind == "notInitialized"
            await client.initialize("late")
            with pytest.raises(RpcError) as again:
                await client.initialize("twice")
            assert (again.value.code, again.value.message) == (-32600, "Already initialized")
            assert again.value.kind == "alreadyInitialized"


async def test_garbage_batches_and_unknown_methods_get_errors_and_connection_lives(
    connect: ConnectFactory,
) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.initialize("robust")
            await client.send_raw("this is not json")
            err = await client.next_notification()
            assert err["id"] is None and err["error"]["code"] == -32700
            assert err["error"]["data"]["kind"] == "parseError"

            await client.send_raw('[{"jsonrpc":"2.0","id":1,"method":"initialize"}]')
            err = await client.next_notification()
            assert err["id"] is None and err["error"]["code"] == -32600
            assert "batch" in err["error"]["message"]

            await client.send_raw('{"jsonrpc":"2.0","id":true,"method":"thread/list"}')
            err = await client.next_notification()
            assert err["id"] is None and err["error"]["code"] == -32600

            answer = await client.request_raw("no/such/method", {})
            assert answer["error"]["code"] == -32601
            assert answer["error"]["data"]["kind"] == "methodNotFound"
            assert "no/such/method" in answer["error"]["message"]

            await client.send_raw('{"jsonrpc":"1.0","id":"x","method":"thread/list"}')
            err = await client.next_notification()
            assert err["id"] == "x" and err["error"]["code"] == -32600

            # A response to nothing pending and a client notification are not answered;
            # the connection still works afterwards.
            await client.send_raw('{"jsonrpc":"2.0","id":999,"result":{}}')
            await client.notify("initialized")
            await client.notify("some/unknown/notification", {"a": 1})
            with pytest.raises(RpcError) as info:
                await client.initialize("again")
            assert info.value.kind == "alreadyInitialized"
            assert client.notifications == []


async def test_invalid_initialize_params_name_the_field(connect: ConnectFactory) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            answer = await client.request_raw("initialize", {"clientInfo": {"version": 3}})
            error = answer["error"]
            assert error["code"] == -32602 and error["data"]["kind"] == "invalidParams"
            paths = {e["path"]: e["message"] for e in error["data"]["errors"]}
            assert paths == {
                "clientInfo.name": "required field missing",
                "clientInfo.version": "expected a string, got integer",
            }
            for bad in ["", "x" * 129, "tab\there"]:
                answer = await client.request_raw(
                    "initialize", {"clientInfo": {"name": bad, "version": "1"}}
                )
                assert answer["error"]["code"] == -32602
                assert answer["error"]["data"]["errors"][0]["path"] == "clientInfo.name"
            answer = await client.request_raw("initialize", [1, 2])
            assert answer["error"]["code"] == -32602
            # Still not initialized after failures; nulls mean "absent" (§9).
            result = await client.request(
                "initialize",
                {"clientInfo": {"name": "ok", "version": "1", "title": None}, "capabilities": None},
            )
            assert result["userAgent"].endswith("(ok/1)")


async def test_message_without_jsonrpc_member_is_accepted(connect: ConnectFactory) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect() as client:
            await client.send_raw(
                '{"id":"a","method":"initialize","params":{"clientInfo":{"name":"n","version":"1"}}}'
            )
            answer = await client.next_notification()  # unmatched by the client: raw answer
            assert answer["id"] == "a" and answer["jsonrpc"] == "2.0"
            assert answer["result"]["userAgent"].endswith("(n/1)")


async def test_same_id_on_two_connections_gets_two_answers(connect_shared: ConnectFactory) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect_shared() as one, connect_shared() as two:
            async with trio.open_nursery() as nursery:
                answers: dict[str, dict[str, object]] = {}

                async def init(name: str, client: object) -> None:
                    assert hasattr(client, "request_raw")
                    answers[name] = await client.request_raw(
                        "initialize", {"clientInfo": {"name": name, "version": "1"}}, id=7
                    )

                nursery.start_soon(init, "one", one)
                nursery.start_soon(init, "two", two)
            assert answers["one"]["id"] == answers["two"]["id"] == 7
            assert answers["one"]["result"]["userAgent"].endswith("(one/1)")  # type: ignore[index]
            assert answers["two"]["result"]["userAgent"].endswith("(two/1)")  # type: ignore[index]
            # Each connection's state is its own.
            answer = await two.request_raw(
                "initialize", {"clientInfo": {"name": "t", "version": "1"}}
            )
            assert answer["error"]["data"]["kind"] == "alreadyInitialized"
