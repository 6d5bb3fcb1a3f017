"""Issue 16 step 3 from the outside: three real `appserver` node processes on one real
PostgreSQL, real websocket clients on each node. A client sees the single-node contract
whichever node it is connected to: one thread's stream is the owner's stream on every
node (same order, same seq), a client rejoins through another node without gap or
duplicate, and an approval asked on the owner is answered from another node, first answer
wins, once. (Failover and fencing: test_cluster_failover.py; lifecycle:
test_cluster_lifecycle.py.)"""

from __future__ import annotations

from pathlib import Path

import trio
from cluster_support import (
    STEADY_LEASE_SECONDS,
    Message,
    NodeClient,
    agent_texts,
    assert_contiguous,
    completed_agent_messages,
    is_notification,
    is_turn_completed,
    open_client,
    open_cluster,
    read_thread,
    start_turn,
    step,
    thread_stream,
)
from multiclient_support import stream_text

from support import SchemaChecker

TIMEOUT = 90
# The stream scenarios give each connection room for a whole turn's events: the test
# client shares this 2-core machine with three nodes and PostgreSQL (and other test runs)
# and can be off the CPU for over a second, which the single-node slow-consumer policy
# (§2.3, tested in test_flow_control.py) rightly punishes; these scenarios are about the
# cluster's order and numbering, not about that policy.
ROOMY = ("--outbound-queue", "50000")


def numbered(stream: list[Message]) -> list[int]:
    assert all("seq" in m for m in stream), "a subscriber event without seq"
    return [m["seq"] for m in stream]


def from_turn_start(stream: list[Message], turn_id: str) -> list[Message]:
    start = next(
        i
        for i, m in enumerate(stream)
        if m["method"] == "turn/started" and m["params"]["turn"]["id"] == turn_id
    )
    return stream[start:]


async def test_three_nodes_see_one_stream_in_the_same_order_with_the_same_seq(
    pg_url: str, tmp_path: Path, schema_checker: SchemaChecker
) -> None:
    count = 2000
    with trio.fail_after(TIMEOUT):
        async with (
            open_cluster(
                pg_url, tmp_path, lease_seconds=STEADY_LEASE_SECONDS, extra=ROOMY
            ) as nodes,
            open_client(nodes["a"], schema_checker, "on-a", seq=True) as a,
            open_client(nodes["b"], schema_checker, "on-b", seq=True) as b,
            open_client(nodes["c"], schema_checker, "on-c", seq=True) as c,
            open_client(nodes["c"], schema_checker, "plain-on-c") as plain,
        ):
            peers = (a, b, c)
            started = await a.request("thread/start", {"approvalPolicy": "never"})
            thread_id = started["thread"]["id"]
            for peer in (b, c, plain):
                resumed = await peer.request("thread/resume", {"threadId": thread_id})
                assert resumed["thread"]["id"] == thread_id
                assert resumed["thread"]["status"]["type"] == "idle"
            marks = {p.name: len(p.log.messages) for p in (*peers, plain)}
            turn_id = await start_turn(b, thread_id, f"/stream {count} 8")
            step("turn started from b")
            for peer in (*peers, plain):
                turn = await peer.turn_completed(thread_id, turn_id)
                step(f"{peer.name}: turn/completed")
                assert turn["status"] == "completed", (peer.name, turn)
            for peer in (*peers, plain):  # the status goes back to idle everywhere
                await peer.status_change(thread_id, lambda s: s["type"] == "idle", marks[peer.name])
            stored = await read_thread(c, thread_id)

    streams = {
        p.name: from_turn_start(thread_stream(p.log.messages, thread_id), turn_id) for p in peers
    }
    reference = streams["on-a"]
    assert_contiguous(numbered(reference))
    assert reference[-1]["method"] == "turn/completed"
    for name, stream in streams.items():
        assert len(stream) == len(reference), f"{name}: {len(stream)} events, a: {len(reference)}"
        for mine, theirs in zip(stream, reference, strict=True):
            assert mine == theirs, f"{name} differs from a at seq {theirs['seq']}: {mine}"
    # A client that did not opt in gets the same events without seq (§13).
    plain_stream = from_turn_start(thread_stream(plain.log.messages, thread_id), turn_id)
    assert all("seq" not in m for m in plain_stream)
    assert plain_stream == [{k: v for k, v in m.items() if k != "seq"} for m in reference]
    [message] = completed_agent_messages(reference)
    expected = stream_text(count)
    assert message["text"] == expected
    assert agent_texts(reference)[message["id"]] == expected
    deltas = [m for m in reference if m["method"] == "item/agentMessage/delta"]
    assert len(deltas) == count
    # thread/read on C shows it stored.
    last = stored["turns"][-1]
    assert (last["id"], last["status"]) == (turn_id, "completed")
    texts = [i["text"] for i in last["items"] if i["type"] == "agentMessage"]
    assert texts == [expected]


async def test_rejoin_through_another_node_mid_stream_with_after_seq(
    pg_url: str, tmp_path: Path, schema_checker: SchemaChecker
) -> None:
    count = 3000
    script = f"/stream {count} 8\n/sleep 1\n/stream {count} 8"
    with trio.fail_after(TIMEOUT):
        async with open_cluster(
            pg_url, tmp_path, lease_seconds=STEADY_LEASE_SECONDS, extra=ROOMY
        ) as nodes:
            async with open_client(nodes["a"], schema_checker, "wanderer", seq=True) as first:
                started = await first.request("thread/start", {"approvalPolicy": "never"})
                thread_id = started["thread"]["id"]
                turn_id = await start_turn(first, thread_id, script)
                # Leave after a few hundred deltas, mid-turn.
                seen_deltas = 0

                def enough(m: Message) -> bool:
                    nonlocal seen_deltas
                    seen_deltas += m.get("method") == "item/agentMessage/delta"
                    return seen_deltas >= 300

                await first.wait_for(enough)
            before = thread_stream(first.log.messages, thread_id)
            assert not any(is_turn_completed(thread_id, turn_id)(m) for m in before)
            last = numbered(before)[-1]
            async with open_client(nodes["c"], schema_checker, "wanderer-again", seq=True) as again:
                resumed = await again.request(
                    "thread/resume", {"threadId": thread_id, "afterSeq": last}
                )
                assert resumed["replay"] is not None, "the log holds it: a replay, not a snapshot"
                assert resumed["replay"]["fromSeq"] == last + 1
                turn = await again.turn_completed(thread_id, turn_id)
                assert turn["status"] == "completed"
                stored = await read_thread(again, thread_id)
            after = thread_stream(again.log.messages, thread_id)

    whole = before + after
    assert_contiguous(numbered(whole))
    messages = completed_agent_messages(whole)
    assert [m["text"] for m in messages] == [stream_text(count)] * 2
    texts = agent_texts(whole)
    for message in messages:  # no delta lost or repeated across the two nodes
        assert texts[message["id"]] == message["text"]
    assert sum(m["method"] == "item/agentMessage/delta" for m in whole) == 2 * count
    assert stored["turns"][-1]["status"] == "completed"


async def test_snapshot_rejoin_on_another_node_mid_stream(
    pg_url: str, tmp_path: Path, schema_checker: SchemaChecker
) -> None:
    """thread/resume without afterSeq on a node that does not own the thread, mid-turn:
    the snapshot's partial text plus the deltas that follow is the whole text."""
    count = 8000
    with trio.fail_after(TIMEOUT):
        async with (
            open_cluster(
                pg_url, tmp_path, ("a", "b"), lease_seconds=STEADY_LEASE_SECONDS, extra=ROOMY
            ) as nodes,
            open_client(nodes["a"], schema_checker, "owner", seq=True) as owner,
        ):
            started = await owner.request("thread/start", {"approvalPolicy": "never"})
            thread_id = started["thread"]["id"]
            turn_id = await start_turn(owner, thread_id, f"/stream {count} 8\n/sleep 0.5")
            await owner.wait_for(is_notification("item/agentMessage/delta"))
            async with open_client(nodes["b"], schema_checker, "joiner", seq=True) as joiner:
                resumed = await joiner.request("thread/resume", {"threadId": thread_id})
                snapshot_turn = resumed["thread"]["turns"][-1]
                assert snapshot_turn["id"] == turn_id
                await joiner.turn_completed(thread_id, turn_id)
            await owner.turn_completed(thread_id, turn_id)

    assert resumed.get("replay") is None
    partial = {i["id"]: i["text"] for i in snapshot_turn["items"] if i["type"] == "agentMessage"}
    reference = thread_stream(owner.log.messages, thread_id)
    [message] = completed_agent_messages(reference)
    assert message["text"] == stream_text(count)
    live = thread_stream(joiner.log.messages, thread_id)
    assert_contiguous(numbered(live))
    assert (
        partial.get(message["id"], "") + agent_texts(live).get(message["id"], "")
        == (message["text"])
    )
    # The joiner's events are exactly the owner's from where it joined.
    first = live[0]["seq"]
    assert [m for m in reference if m["seq"] >= first] == live


async def test_approval_asked_on_the_owner_answered_from_another_node_first_answer_wins(
    pg_url: str, tmp_path: Path, schema_checker: SchemaChecker
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    marker = work / "count.txt"
    with trio.fail_after(TIMEOUT):
        async with (
            open_cluster(pg_url, tmp_path, lease_seconds=STEADY_LEASE_SECONDS) as nodes,
            open_client(nodes["a"], schema_checker, "on-a") as a,
            open_client(nodes["b"], schema_checker, "on-b") as b,
            open_client(nodes["c"], schema_checker, "on-c") as c,
        ):
            peers = (a, b, c)
            started = await a.request(
                "thread/start", {"cwd": str(work), "approvalPolicy": "on-request"}
            )
            thread_id = started["thread"]["id"]
            for peer in (b, c):
                await peer.request("thread/resume", {"threadId": thread_id})
            turn_id = await start_turn(a, thread_id, "/run echo ran >> count.txt")
            asked = [await p.client.next_server_request() for p in peers]
            first = asked[0]
            assert first.method == "item/commandExecution/requestApproval"
            assert first.params["threadId"] == thread_id and first.params["turnId"] == turn_id
            for request in asked:  # one request, the same id and params on every node
                assert (request.id, request.method, request.params) == (
                    first.id,
                    first.method,
                    first.params,
                )
            item_id = first.params["itemId"]
            await c.client.respond(first.id, {"decision": "accept"})
            resolved = is_notification(
                "serverRequest/resolved", threadId=thread_id, requestId=first.id
            )
            for peer in peers:
                await peer.wait_for(resolved)
            # B answers after the request was settled: ignored, never answered.
            await b.client.respond(first.id, {"decision": "decline"})
            for peer in peers:
                turn = await peer.turn_completed(thread_id, turn_id)
                assert turn["status"] == "completed", (peer.name, turn)
            # A later turn forwarded from B: B's answer went before it.
            second = await start_turn(b, thread_id, "/say after the answers")
            for peer in peers:
                await peer.turn_completed(thread_id, second)
            stored = await read_thread(b, thread_id)

    assert marker.read_text() == "ran\n", "the command must run exactly once"
    for peer in peers:
        check_settled_once(peer, thread_id, first.id, item_id)
    [command] = [i for i in stored["turns"][0]["items"] if i["type"] == "commandExecution"]
    assert (command["status"], command["exitCode"]) == ("completed", 0)


def check_settled_once(
    peer: NodeClient, thread_id: str, request_id: int | str, item_id: str
) -> None:
    log = peer.log.messages
    resolved = [
        i
        for i, m in enumerate(log)
        if is_notification("serverRequest/resolved", threadId=thread_id, requestId=request_id)(m)
    ]
    assert len(resolved) == 1, f"{peer.name}: resolved {len(resolved)} times"
    done = [
        i
        for i, m in enumerate(log)
        if m.get("method") == "item/completed" and m["params"]["item"]["id"] == item_id
    ]
    assert len(done) == 1, f"{peer.name}: the command item completed {len(done)} times"
    assert resolved[0] < done[0], f"{peer.name}: item/completed before serverRequest/resolved"
    item = log[done[0]]["params"]["item"]
    assert (item["status"], item["exitCode"]) == ("completed", 0), item
    # An ignored answer is never answered: no answer the client did not ask for.
    stray = [m for m in peer.client.notifications if "method" not in m]
    assert stray == [], f"{peer.name}: unexpected answers {stray}"
