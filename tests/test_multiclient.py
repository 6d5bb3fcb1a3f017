"""Several real websocket clients sharing threads: fan-out, opt-out, rejoin, approvals.

PROTOCOL.md §3 (opt-out), §5.2 (rejoin), §6, §7 (approvals), §8.1-§8.2.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import trio
from multiclient_support import (
    WAITING_ON_APPROVAL,
    Message,
    Peer,
    is_notification,
    is_server_request,
    open_peer,
    open_peers,
    params_of,
    read_thread,
    start_thread,
    start_turn,
    status_change,
    stream_text,
    turn_completed,
    turn_status,
)

from appserver.server import ServerConfig

from support import SUBSCRIBER_METHODS, SchemaChecker

TIMEOUT = 20


@pytest.fixture
def server_config() -> ServerConfig:
    # A failing test may leave a turn waiting; do not let teardown wait 30 s for it.
    return ServerConfig(data_dir=None, shutdown_timeout=0.5)


def subscriber_traffic(peer: Peer, thread_id: str) -> list[Message]:
    return [m for m in peer.log.notifications(thread_id) if m["method"] in SUBSCRIBER_METHODS]


def unmatched_answers(peer: Peer) -> list[Message]:
    """Answers the server sent that match none of this client's requests (the client
    keeps them with the notifications). An ignored answer must never be answered."""
    return [m for m in peer.client.notifications if "method" not in m]


def item_events(peer: Peer, item_id: str) -> list[str]:
    return [
        m["method"]
        for m in peer.log.notifications()
        if params_of(m).get("itemId") == item_id
        or (params_of(m).get("item") or {}).get("id") == item_id
    ]


def resolved_before_completed(peer: Peer, request_id: int | str, item_id: str) -> None:
    """§7.2: `serverRequest/resolved` reaches the subscriber, once, before the item's
    `item/completed`."""
    resolved = peer.log.indexes(is_notification("serverRequest/resolved", requestId=request_id))
    assert len(resolved) == 1, f"{peer.name}: resolved {len(resolved)} times"
    completed = peer.log.indexes(
        lambda m: m.get("method") == "item/completed" and params_of(m)["item"]["id"] == item_id
    )
    assert len(completed) == 1, f"{peer.name}: item completed {len(completed)} times"
    assert resolved[0] < completed[0], f"{peer.name}: item/completed before serverRequest/resolved"


def completed_item(peer: Peer, item_id: str) -> dict[str, Any]:
    for m in peer.log.notifications():
        if m["method"] == "item/completed" and params_of(m)["item"]["id"] == item_id:
            item: dict[str, Any] = params_of(m)["item"]
            return item
    raise AssertionError(f"{peer.name}: no item/completed for {item_id}")


# --- fan-out and opt-out (§3, §6, §8.1) ------------------------------------------------------


async def test_turn_and_item_traffic_reaches_only_subscribers(
    ws_url: str, schema_checker: SchemaChecker, tmp_path: Path
) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_peers(ws_url, schema_checker, "a", "b", "c") as (a, b, c):
            thread_id = await start_thread(a.client, approvalPolicy="never", cwd=str(tmp_path))
            started = await c.client.next_notification("thread/started")
            assert params_of(started)["thread"]["id"] == thread_id
            await b.client.request("thread/resume", {"threadId": thread_id})

            turn_id = await start_turn(
                a.client, thread_id, "hello\n/say hi there\n/think hmm\n/run echo out"
            )
            for peer in (a, b):
                assert await turn_status(peer.client, thread_id, turn_id) == "completed"
            await status_change(c.client, thread_id, "idle")
            await a.client.request("thread/name/set", {"threadId": thread_id, "name": "shared"})
            await c.client.next_notification("thread/name/updated")
            # Barrier: anything sent to c before this answer has arrived.
            await c.client.request("thread/loaded/list")

        # Both subscribers saw the whole turn, identically.
        a_traffic = subscriber_traffic(a, thread_id)
        assert a_traffic == subscriber_traffic(b, thread_id)
        assert {m["method"] for m in a_traffic} >= {
            "turn/started",
            "item/started",
            "item/agentMessage/delta",
            "item/reasoning/summaryTextDelta",
            "item/commandExecution/outputDelta",
            "item/completed",
            "turn/completed",
        }
        # c, initialized but never subscribed, got the broadcasts and nothing else.
        assert [m["method"] for m in c.log.notifications()] == [
            "thread/started",
            "thread/status/changed",
            "thread/status/changed",
            "thread/name/updated",
        ]
        statuses = [
            params_of(m)["status"]
            for m in c.log.notifications(thread_id)
            if m["method"] == "thread/status/changed"
        ]
        assert statuses == [{"type": "active", "activeFlags": []}, {"type": "idle"}]
        assert c.log.server_requests() == []


async def test_opt_out_suppresses_exactly_that_method(
    ws_url: str, schema_checker: SchemaChecker, tmp_path: Path
) -> None:
    with trio.fail_after(TIMEOUT):
        async with (
            open_peer(ws_url, schema_checker, "a") as a,
            open_peer(ws_url, schema_checker, "b", opt_out=["thread/started"]) as b,
            open_peer(ws_url, schema_checker, "c") as c,
            open_peer(
                ws_url,
                schema_checker,
                "d",
                # Server requests are never suppressed, even when named (§3).
                opt_out=["item/agentMessage/delta", "item/commandExecution/requestApproval"],
            ) as d,
        ):
            thread_id = await start_thread(a.client, cwd=str(tmp_path))
            await d.client.request("thread/resume", {"threadId": thread_id})
            turn_id = await start_turn(a.client, thread_id, "/say one two three\n/run echo ok")
            request = await a.client.next_server_request()
            d_request = await d.client.next_server_request()
            assert (d_request.id, d_request.params) == (request.id, request.params)
            await d.client.respond(d_request.id, {"decision": "accept"})
            for peer in (a, d):
                await turn_completed(peer.client, thread_id, turn_id)
            await a.client.request("thread/name/set", {"threadId": thread_id, "name": "opt"})
            for peer in (b, c):
                await peer.client.next_notification("thread/name/updated")
                await status_change(peer.client, thread_id, "idle")
                await peer.client.request("thread/loaded/list")  # barrier

    c_methods = [m["method"] for m in c.log.notifications()]
    b_methods = [m["method"] for m in b.log.notifications()]
    assert "thread/started" in c_methods
    assert b_methods == [m for m in c_methods if m != "thread/started"]
    assert "thread/name/updated" in b_methods and "thread/status/changed" in b_methods

    a_events = a.log.notifications(thread_id)
    assert any(m["method"] == "item/agentMessage/delta" for m in a_events)
    assert any(m["method"] == "item/commandExecution/outputDelta" for m in a_events)
    assert d.log.notifications(thread_id) == [
        m for m in a_events if m["method"] != "item/agentMessage/delta"
    ]


# --- rejoin (§5.2, §8.2) -------------------------------------------------------------------


async def test_rejoin_mid_turn_has_no_gap_and_no_duplicate_and_survives_starter_leaving(
    ws_url: str, schema_checker: SchemaChecker
) -> None:
    count = 5000
    expected = stream_text(count)
    with trio.fail_after(TIMEOUT):
        async with open_peer(ws_url, schema_checker, "b") as b:
            async with open_peer(ws_url, schema_checker, "a") as a:
                thread_id = await start_thread(a.client, approvalPolicy="never")
                turn_id = await start_turn(a.client, thread_id, f"/stream {count} 8")
                for _ in range(200):
                    await a.client.next_notification("item/agentMessage/delta")
                resumed = await b.client.request("thread/resume", {"threadId": thread_id})
            # a has disconnected, mid-turn: the turn goes on (§8.2).
            final = await turn_completed(b.client, thread_id, turn_id)
            assert final["status"] == "completed"
            stored = await read_thread(b.client, thread_id)

    assert not any(m.get("method") == "turn/completed" for m in a.log.messages), (
        "a was meant to leave mid-turn"
    )

    # The snapshot: the running turn with every item so far, text streamed so far.
    thread = resumed["thread"]
    assert thread["status"] == {"type": "active", "activeFlags": []}
    snapshot = thread["turns"][-1]
    assert (snapshot["id"], snapshot["status"]) == (turn_id, "inProgress")
    assert [i["type"] for i in snapshot["items"]] == ["userMessage", "agentMessage"]
    message = snapshot["items"][1]
    assert 200 * 8 <= len(message["text"]) < len(expected)

    # Everything after the response: from the next event on, nothing again.
    answer_at = b.log.index(lambda m: "method" not in m and m.get("result") is resumed)
    before = [m for m in b.log.messages[:answer_at] if params_of(m).get("threadId") == thread_id]
    assert not [m for m in before if m.get("method") in SUBSCRIBER_METHODS]
    after = [
        m
        for m in b.log.messages[answer_at + 1 :]
        if "id" not in m and params_of(m).get("threadId") == thread_id
    ]
    methods = [m["method"] for m in after]
    assert "turn/started" not in methods
    deltas = [
        params_of(m)["delta"]
        for m in after
        if m["method"] == "item/agentMessage/delta" and params_of(m)["itemId"] == message["id"]
    ]
    assert message["text"] + "".join(deltas) == expected
    snapshot_ids = {i["id"] for i in snapshot["items"]}
    started_later = [params_of(m)["item"]["id"] for m in after if m["method"] == "item/started"]
    assert not snapshot_ids & set(started_later), "an item was sent twice"
    completed_later = [params_of(m)["item"] for m in after if m["method"] == "item/completed"]
    assert [i["id"] for i in completed_later] == [message["id"], *started_later]
    assert completed_later[0]["text"] == expected
    assert [m for m in methods if m in SUBSCRIBER_METHODS][-1] == "turn/completed"

    stored_turn = stored["turns"][-1]
    assert stored_turn["status"] == "completed"
    assert [i["id"] for i in stored_turn["items"]] == [i["id"] for i in snapshot["items"]]
    assert stored_turn["items"][1]["text"] == expected


# --- approvals (§7) -----------------------------------------------------------------------


async def test_approval_goes_to_every_subscriber_and_the_first_recipient_answer_wins(
    ws_url: str, schema_checker: SchemaChecker, tmp_path: Path
) -> None:
    marker = tmp_path / "count.txt"
    with trio.fail_after(TIMEOUT):
        async with open_peers(ws_url, schema_checker, "a", "b", "c") as (a, b, c):
            thread_id = await start_thread(a.client, cwd=str(tmp_path))
            await b.client.request("thread/resume", {"threadId": thread_id})
            turn_id = await start_turn(a.client, thread_id, "/run echo ran >> count.txt")
            ra = await a.client.next_server_request()
            rb = await b.client.next_server_request()
            assert ra.method == "item/commandExecution/requestApproval"
            assert (rb.id, rb.method, rb.params) == (ra.id, ra.method, ra.params)
            assert isinstance(ra.id, int)
            item_id = ra.params["itemId"]
            assert ra.params["threadId"] == thread_id and ra.params["turnId"] == turn_id
            assert ra.params["command"] == "echo ran >> count.txt"
            assert "approvalId" not in ra.params
            for peer in (a, b):
                started = peer.log.index(
                    lambda m: (
                        m.get("method") == "item/started" and params_of(m)["item"]["id"] == item_id
                    )
                )
                assert started < peer.log.index(is_server_request(ra.id))

            # c never received the request: its answer is ignored, the turn still waits.
            await c.client.respond(ra.id, {"decision": "accept"})
            thread = await read_thread(c.client, thread_id)
            assert thread["status"] == WAITING_ON_APPROVAL
            assert thread["turns"][-1]["status"] == "inProgress"
            await a.client.request("thread/loaded/list")  # barrier on a
            assert not a.log.indexes(is_notification("serverRequest/resolved"))
            assert not marker.exists()

            # a answers first; b's later, contrary answer is ignored.
            await a.client.respond(ra.id, {"decision": "accept"})
            await b.client.next_notification("serverRequest/resolved")
            await b.client.respond(rb.id, {"decision": "decline"})
            await b.client.request("thread/loaded/list")  # barrier on b
            for peer in (a, b):
                assert await turn_status(peer.client, thread_id, turn_id) == "completed"
            await c.client.request("thread/loaded/list")  # barrier on c

    assert marker.read_text() == "ran\n", "the command must run exactly once"
    for peer in (a, b):
        resolved_before_completed(peer, ra.id, item_id)
        item = completed_item(peer, item_id)
        assert (item["status"], item["exitCode"]) == ("completed", 0)
        assert unmatched_answers(peer) == []
    assert c.log.server_requests() == [] and unmatched_answers(c) == []


async def test_simultaneous_answers_run_the_item_once(
    ws_url: str, schema_checker: SchemaChecker, tmp_path: Path
) -> None:
    marker = tmp_path / "count.txt"
    with trio.fail_after(TIMEOUT):
        async with open_peers(ws_url, schema_checker, "a", "b") as (a, b):
            thread_id = await start_thread(a.client, cwd=str(tmp_path))
            await b.client.request("thread/resume", {"threadId": thread_id})
            turn_id = await start_turn(a.client, thread_id, "/run echo ran >> count.txt")
            ra = await a.client.next_server_request()
            rb = await b.client.next_server_request()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(a.client.respond, ra.id, {"decision": "accept"})
                nursery.start_soon(b.client.respond, rb.id, {"decision": "acceptForSession"})
            for peer in (a, b):
                assert await turn_status(peer.client, thread_id, turn_id) == "completed"
                await peer.client.request("thread/loaded/list")  # barrier

    assert marker.read_text() == "ran\n"
    for peer in (a, b):
        resolved_before_completed(peer, ra.id, ra.params["itemId"])
        assert unmatched_answers(peer) == []


async def test_approval_answered_by_second_subscriber_after_first_disconnected(
    ws_url: str, schema_checker: SchemaChecker, tmp_path: Path
) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_peer(ws_url, schema_checker, "b") as b:
            async with open_peer(ws_url, schema_checker, "a") as a:
                thread_id = await start_thread(a.client, cwd=str(tmp_path))
                await b.client.request("thread/resume", {"threadId": thread_id})
                turn_id = await start_turn(a.client, thread_id, "/run echo second")
                ra = await a.client.next_server_request()
            # a is gone without answering; b, also a recipient, answers.
            rb = await b.client.next_server_request()
            assert (rb.id, rb.params) == (ra.id, ra.params)
            await b.client.respond(rb.id, {"decision": "accept"})
            assert await turn_status(b.client, thread_id, turn_id) == "completed"

    item_id = ra.params["itemId"]
    resolved_before_completed(b, rb.id, item_id)
    item = completed_item(b, item_id)
    assert (item["status"], item["aggregatedOutput"]) == ("completed", "second\n")


async def test_pending_request_is_resent_with_same_id_and_params_to_a_resuming_client(
    ws_url: str, schema_checker: SchemaChecker, tmp_path: Path
) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_peer(ws_url, schema_checker, "observer") as o:
            async with open_peer(ws_url, schema_checker, "a") as a:
                thread_id = await start_thread(a.client, cwd=str(tmp_path))
                turn_id = await start_turn(a.client, thread_id, "/run echo resent")
                ra = await a.client.next_server_request()
            # Every recipient has gone: the request stays pending, the turn waits (§7.2).
            await status_change(o.client, thread_id, "active", activeFlags=["waitingOnApproval"])
            thread = await read_thread(o.client, thread_id)
            assert thread["status"] == WAITING_ON_APPROVAL
            assert thread["turns"][-1]["status"] == "inProgress"

            async with open_peer(ws_url, schema_checker, "c") as c:
                resumed = await c.client.request("thread/resume", {"threadId": thread_id})
                assert resumed["thread"]["status"] == WAITING_ON_APPROVAL
                snapshot = resumed["thread"]["turns"][-1]
                assert (snapshot["id"], snapshot["status"]) == (turn_id, "inProgress")
                command = snapshot["items"][-1]
                assert command["type"] == "commandExecution"
                assert (command["id"], command["status"]) == (ra.params["itemId"], "inProgress")
                rc = await c.client.next_server_request()
                assert (rc.id, rc.method, rc.params) == (ra.id, ra.method, ra.params)
                assert c.log.index(lambda m: m.get("result") is resumed) < c.log.index(
                    is_server_request(rc.id)
                )
                # Resuming again behaves the same: the request comes again, same id.
                await c.client.request("thread/resume", {"threadId": thread_id})
                again = await c.client.next_server_request()
                assert (again.id, again.params) == (ra.id, ra.params)

                await c.client.respond(rc.id, {"decision": "accept"})
                await c.client.respond(again.id, {"decision": "decline"})  # ignored
                final = await turn_completed(c.client, thread_id, turn_id)
                assert final["status"] == "completed"
                await status_change(o.client, thread_id, "idle")
                await c.client.request("thread/loaded/list")  # barrier

    item_id = ra.params["itemId"]
    resolved_before_completed(c, rc.id, item_id)
    item = completed_item(c, item_id)
    assert (item["status"], item["aggregatedOutput"]) == ("completed", "resent\n")
    assert unmatched_answers(c) == []


async def test_accept_for_session_is_not_asked_again_for_the_same_command(
    ws_url: str, schema_checker: SchemaChecker, tmp_path: Path
) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_peers(ws_url, schema_checker, "a", "b") as (a, b):
            thread_id = await start_thread(a.client, cwd=str(tmp_path))
            await b.client.request("thread/resume", {"threadId": thread_id})
            first = await start_turn(a.client, thread_id, "/run echo same")
            request = await a.client.next_server_request()
            assert (await b.client.next_server_request()).id == request.id
            await a.client.respond(request.id, {"decision": "acceptForSession"})
            assert await turn_status(a.client, thread_id, first) == "completed"

            second = await start_turn(b.client, thread_id, "/run echo same")
            assert await turn_status(a.client, thread_id, second) == "completed"
            await turn_completed(b.client, thread_id, second)

            third = await start_turn(a.client, thread_id, "/run echo other")
            other = await b.client.next_server_request()
            assert other.params["command"] == "echo other"
            await b.client.respond(other.id, {"decision": "decline"})
            assert await turn_status(a.client, thread_id, third) == "completed"

    for peer in (a, b):
        asked = [r["params"]["command"] for r in peer.log.server_requests()]
        assert asked == ["echo same", "echo other"]
    second_items = [
        params_of(m)["item"]
        for m in a.log.notifications(thread_id)
        if m["method"] == "item/completed"
        and params_of(m)["turnId"] == second
        and params_of(m)["item"]["type"] == "commandExecution"
    ]
    assert [(i["status"], i["aggregatedOutput"]) for i in second_items] == [("completed", "same\n")]
    assert completed_item(a, other.params["itemId"])["status"] == "declined"


async def test_interrupt_while_waiting_on_approval_settles_the_request(
    ws_url: str, schema_checker: SchemaChecker, tmp_path: Path
) -> None:
    marker = tmp_path / "never.txt"
    with trio.fail_after(TIMEOUT):
        async with open_peers(ws_url, schema_checker, "a", "b") as (a, b):
            thread_id = await start_thread(a.client, cwd=str(tmp_path))
            await b.client.request("thread/resume", {"threadId": thread_id})
            turn_id = await start_turn(a.client, thread_id, "/run echo x > never.txt")
            request = await a.client.next_server_request()
            await b.client.next_server_request()
            assert (
                await b.client.request("turn/interrupt", {"threadId": thread_id, "turnId": turn_id})
                == {}
            )
            for peer in (a, b):
                assert await turn_status(peer.client, thread_id, turn_id) == "interrupted"
            await a.client.respond(request.id, {"decision": "accept"})  # too late: ignored
            await a.client.request("thread/loaded/list")  # barrier
            thread = await read_thread(a.client, thread_id)

    item_id = request.params["itemId"]
    for peer in (a, b):
        resolved_before_completed(peer, request.id, item_id)
        assert completed_item(peer, item_id)["status"] == "declined"
        completed_at = peer.log.index(is_notification("turn/completed", threadId=thread_id))
        assert peer.log.index(is_notification("serverRequest/resolved")) < completed_at
    interrupt_answer = b.log.index(lambda m: "method" not in m and m.get("result") == {})
    assert interrupt_answer > b.log.index(is_notification("turn/completed", threadId=thread_id))
    assert unmatched_answers(a) == []
    assert not marker.exists()
    assert thread["status"] == {"type": "idle"}
    stored = thread["turns"][-1]
    assert stored["status"] == "interrupted"
    assert [i["status"] for i in stored["items"] if i["type"] == "commandExecution"] == ["declined"]


async def test_and_commands_get_one_approval_per_part(
    ws_url: str, schema_checker: SchemaChecker, tmp_path: Path
) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_peers(ws_url, schema_checker, "a", "b") as (a, b):
            thread_id = await start_thread(a.client, cwd=str(tmp_path))
            await b.client.request("thread/resume", {"threadId": thread_id})

            turn_id = await start_turn(a.client, thread_id, "/run echo one && echo two")
            first = await a.client.next_server_request()
            assert (await b.client.next_server_request()).id == first.id
            await a.client.respond(first.id, {"decision": "accept"})
            second = await b.client.next_server_request()
            assert (await a.client.next_server_request()).id == second.id
            await b.client.respond(second.id, {"decision": "accept"})
            assert await turn_status(a.client, thread_id, turn_id) == "completed"

            declined_turn = await start_turn(a.client, thread_id, "/run echo three && echo four")
            third = await a.client.next_server_request()
            await a.client.respond(third.id, {"decision": "accept"})
            fourth = await a.client.next_server_request()
            await a.client.respond(fourth.id, {"decision": "decline"})
            await turn_completed(a.client, thread_id, declined_turn)
            await turn_completed(b.client, thread_id, declined_turn)

    requests = [first, second, third, fourth]
    assert [r.params["command"] for r in requests] == [
        "echo one",
        "echo two",
        "echo three",
        "echo four",
    ]
    approval_ids = [r.params["approvalId"] for r in requests]
    for approval_id in approval_ids:
        uuid.UUID(approval_id)
    assert len(set(approval_ids)) == 4
    assert len({r.id for r in requests}) == 4
    assert first.params["itemId"] == second.params["itemId"]
    assert third.params["itemId"] == fourth.params["itemId"] != first.params["itemId"]
    # Each part is asked for just before it runs: the first part's output comes first.
    one_output = a.log.index(
        lambda m: (
            m.get("method") == "item/commandExecution/outputDelta"
            and "one" in params_of(m)["delta"]
        )
    )
    assert one_output < a.log.index(is_server_request(second.id))
    for peer in (a, b):
        done = completed_item(peer, first.params["itemId"])
        assert (done["status"], done["aggregatedOutput"]) == ("completed", "one\ntwo\n")
        declined = completed_item(peer, third.params["itemId"])
        assert (declined["status"], declined["aggregatedOutput"]) == ("declined", "three\n")
        for request in requests:
            resolved_before_completed(peer, request.id, request.params["itemId"])
