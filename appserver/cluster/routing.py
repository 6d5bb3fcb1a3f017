"""The handlers' side of the cluster: a thread-scoped method for a thread loaded on
another node goes to that node (calls.py), in this one place (Handlers.handle routes
ROUTED methods here). thread/resume of such a thread follows it (follow.py):

- without afterSeq: the owner answers the resume (snapshot) with the thread's last seq
  taken in the same step and its pending requests; here the response goes out, then
  the pending requests, then the events after that seq from the log;
- with afterSeq: when the owner's log reaches back that far, the response says so
  (`replay`) and the subscriber follows the log from afterSeq; else the snapshot.

thread/unsubscribe of a followed thread leaves the follower; answers to server requests
a follower delivered go to the owner.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from appserver.cluster import leases
from appserver.cluster.calls import CallTimeout, RemoteError
from appserver.cluster.node import Node
from appserver.connection import Connection
from appserver.handlers.common import thread_id_of
from appserver.handlers.threads import _after_seq
from appserver.jsonrpc import ErrorResponse, Response
from appserver.protocol.converter import unstructure
from appserver.protocol.errors import InternalError
from appserver.requests import RequestContext
from appserver.store.errors import StoreUnavailable
from appserver.threads.ownership import LeaseLost, OwnedElsewhere

log = logging.getLogger("appserver.cluster")

Local = Callable[[], Awaitable[Any]]

# Thread-scoped methods that need the loaded thread (they run on its owner).
ROUTED = frozenset(
    {
        "thread/resume",
        "thread/unsubscribe",
        "thread/read",
        "thread/archive",
        "thread/name/set",
        "thread/delete",
        "thread/revert",
        "thread/metadata/update",
        "thread/inject_items",
        "thread/compact/start",
        "thread/shellCommand",
        "review/start",
        "turn/start",
        "turn/steer",
        "turn/interrupt",
    }
)


def _wire(params: Any) -> dict[str, Any]:
    raw = unstructure(params)
    return {k: v for k, v in raw.items() if v is not None}


async def owner_of(node: Node, thread_id: str) -> str | None:
    """The node that holds a live lease of the thread, if not this one. A thread
    followed here that nobody else runs (this node fenced itself out of it) is taken
    over first: a request needs its owner now."""
    follower = node.followers.get(thread_id)
    if follower is not None and follower.owner and follower.owner != node.node_id:
        return follower.owner
    owners = await node.db.run(lambda c, s: leases.owners(c, s, [thread_id]))
    owner = owners.get(thread_id)
    if owner is not None and owner != node.node_id:
        if follower is not None:
            follower.owner = owner
        return owner
    if follower is not None:
        await node.take_over(follower)
        if node.registry.get(thread_id) is None and follower.owner != node.node_id:
            return follower.owner  # taken elsewhere meanwhile (None: run it here)
    return None


async def here_or_owner(node: Node, thread_id: str, local: Local) -> tuple[str | None, Any]:
    """Run `local` when this node runs the thread or may take it: (None, its result);
    else (the owner node, None) for the caller to forward to."""
    if node.registry.get(thread_id) is not None:
        return None, await local()
    owner = await owner_of(node, thread_id)
    if owner is None:
        try:
            return None, await local()
        except OwnedElsewhere as exc:
            owner = exc.node_id
    return owner, None


async def route(node: Node, ctx: RequestContext, method: str, params: Any, local: Local) -> Any:
    if method == "thread/resume":
        return await resume(node, ctx, params, local)
    if method == "thread/unsubscribe":
        return await unsubscribe(node, ctx, params, local)
    thread_id = getattr(params, "thread_id", None)
    if not isinstance(thread_id, str):
        return await local()
    owner, result = await here_or_owner(node, thread_id, local)
    if owner is None:
        return result
    _, reply = await forward(node, ctx, owner, thread_id, method, _wire(params), local)
    return reply["result"] if isinstance(reply, dict) and "result" in reply else reply


async def forward(
    node: Node,
    ctx: RequestContext,
    owner: str,
    thread_id: str,
    method: str,
    raw: dict[str, Any],
    local: Local | None = None,
) -> tuple[str, Any]:
    """Run the request on `owner`; (the node that ran it, its reply). A node that does
    not answer in time: its lease is taken over if it expired (then `local` runs), else
    -32603 `clusterNodeUnavailable`."""
    body = {"method": method, "params": raw, "client": ctx.connection.client_name}
    for _ in range(3):
        try:
            reply = await node.calls.call(owner, thread_id, "request", body, node.call_timeout)
        except CallTimeout:
            moved = await live_owner(node, thread_id)
            if moved is not None and moved not in (owner, node.node_id):
                owner = moved  # taken over meanwhile: ask the new owner
                follower = node.followers.get(thread_id)
                if follower is not None:
                    follower.owner = moved
                    node.nursery.start_soon(node.register_with, follower)
                continue
            if local is not None and (
                node.registry.get(thread_id) is not None or await failover(node, thread_id)
            ):
                return node.node_id, {"result": await local()}
            raise InternalError(
                f"node {owner}, which runs thread {thread_id}, does not answer",
                kind="clusterNodeUnavailable",
            ) from None
        if "moved" in reply:
            owner = str(reply["moved"])
            continue
        if "error" in reply:
            raise RemoteError(reply["error"])
        return owner, reply
    raise InternalError(f"thread {thread_id} keeps moving between nodes", kind="clusterBusy")


async def live_owner(node: Node, thread_id: str) -> str | None:
    try:
        owners = await node.db.run(lambda c, s: leases.owners(c, s, [thread_id]))
    except StoreUnavailable:
        return None
    return owners.get(thread_id)


async def failover(node: Node, thread_id: str) -> bool:
    """The owner did not answer: take the thread over if its lease expired."""
    try:
        owners = await node.db.run(lambda c, s: leases.owners(c, s, [thread_id]))
    except StoreUnavailable:
        return False
    if thread_id in owners:
        return False
    follower = node.followers.get(thread_id)
    if follower is not None:
        return await node.take_over(follower) is not None
    try:
        await node.registry.load(thread_id)
    except OwnedElsewhere:
        return False
    return True


async def resume(node: Node, ctx: RequestContext, p: Any, local: Local) -> Any:
    thread_id = thread_id_of(p.thread_id)
    owner, result = await here_or_owner(node, thread_id, local)
    if owner is None:
        return result
    after = _after_seq(ctx, p)
    raw = _wire(p)
    raw.pop("afterSeq", None)
    sub = ctx.connection
    if after is not None:
        owner, reply = await forward(
            node, ctx, owner, thread_id, "thread/resume", {**raw, "excludeTurns": True}
        )
        if reply["floor"] <= after <= reply["seq"]:
            replay = {"fromSeq": after + 1, "toSeq": reply["seq"]}
            _join(node, thread_id, owner, ctx, {**reply["result"], "replay": replay}, after, [])
            return None
    owner, reply = await forward(node, ctx, owner, thread_id, "thread/resume", raw)
    result = reply["result"]
    if after is not None:
        result["replay"] = None  # the log does not reach back: the snapshot (§13)
    _join(node, thread_id, owner, ctx, result, reply["seq"], reply["pending"])
    del sub
    return None


def _join(
    node: Node,
    thread_id: str,
    owner: str,
    ctx: RequestContext,
    result: dict[str, Any],
    after_seq: int,
    pending: list[str],
) -> None:
    """One synchronous step: the response, the pending requests, the subscription."""
    follower = node.follower(thread_id, owner)
    sub = ctx.connection
    follower.remove(sub.id)
    ctx.respond(result)
    follower.send_pending(sub, pending)
    node.follow(follower, sub, after_seq)


async def unsubscribe(node: Node, ctx: RequestContext, p: Any, local: Local) -> Any:
    thread_id = thread_id_of(p.thread_id)
    if node.registry.get(thread_id) is not None:
        return await local()
    if thread_id in node.followers:
        left = node.unfollow(thread_id, ctx.connection.id)
        return {"status": "unsubscribed" if left else "notSubscribed"}
    if await owner_of(node, thread_id) is not None:
        return {"status": "notSubscribed"}
    return await local()


def on_client_response(node: Node, conn: Connection, message: Response | ErrorResponse) -> bool:
    """An answer to a request a follower delivered: to the owner (True); else False."""
    for follower in node.followers.values():
        if follower.can_answer(message.id, conn.id) and follower.owner:
            follower.requests.pop(message.id or "", None)
            body: dict[str, Any] = {"id": message.id}
            if isinstance(message, ErrorResponse):
                body["error"] = message.error
            else:
                body["result"] = message.result
            node.nursery.start_soon(_answer, node, follower.owner, follower.thread_id, body)
            return True
    return False


async def _answer(node: Node, owner: str, thread_id: str, body: dict[str, Any]) -> None:
    try:
        await node.calls.call(owner, thread_id, "answer", body, node.call_timeout)
    except Exception as exc:
        log.warning("thread %s: forwarding an answer to node %s failed: %s", thread_id, owner, exc)


class Routing:
    """What Handlers calls (handlers.ClusterRouting)."""

    routed = ROUTED

    def __init__(self, node: Node) -> None:
        self.node = node

    async def route(self, ctx: RequestContext, method: str, params: Any, local: Local) -> Any:
        try:
            return await route(self.node, ctx, method, params, local)
        except LeaseLost as exc:  # the thread moved while this ran: stop running it here
            self.node.fence_thread(exc.thread_id, "a write was refused (lease lost)")
            raise InternalError(str(exc), kind="leaseLost") from None

    def on_client_response(self, conn: Connection, message: Response | ErrorResponse) -> bool:
        return on_client_response(self.node, conn, message)

    def on_disconnect(self, conn: Connection) -> None:
        self.node.on_disconnect(conn)
