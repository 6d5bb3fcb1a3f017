"""The owner's side of a forwarded call (calls.py): run it as if a connection of the
calling node had sent it, and reply.

- "request" {method, params, client}: the JSON-RPC request, through the ordinary
  handlers with a Relay as its connection; the reply holds its result or error, and
  for thread/resume the thread's last seq taken in the step that queued the response
  (invariant 2), its log floor and the pending requests the rejoin re-sent.
- "answer" {id, result | error}: a client's answer to a server request, given by the
  calling node's relay (a recipient of every request sent while it was subscribed):
  the first answer wins, once, whichever node it came from.
- "leave": the calling node has no subscriber of the thread left.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, cast

from appserver.cluster.calls import Relay
from appserver.connection import Connection
from appserver.jsonrpc import ErrorResponse, Response
from appserver.protocol.converter import structure_params, unstructure
from appserver.protocol.errors import InvalidRequest
from appserver.protocol.methods import METHODS
from appserver.requests import RequestContext, error_from_exception
from appserver.threads.event_log import is_server_request
from appserver.threads.ownership import OwnedElsewhere

if TYPE_CHECKING:
    from appserver.cluster.node import Node

log = logging.getLogger("appserver.cluster")


async def serve_call(
    node: Node, call_id: int, caller: str, thread_id: str | None, kind: str, body: Any
) -> None:
    relay = Relay(node.calls.relay_id(caller), caller)
    try:
        if kind == "request":
            reply = await _request(node, relay, thread_id, body)
        elif kind == "answer":
            request_id = body["id"]
            message: Response | ErrorResponse = (
                ErrorResponse(request_id, body["error"])
                if "error" in body
                else Response(request_id, body.get("result"))
            )
            node.registry.on_client_response(relay, message)
            reply = {}
        elif kind == "leave":
            reply = {"status": node.registry.unsubscribe(relay, thread_id or "")}
        else:
            reply = {"error": InvalidRequest(f"unknown cluster call {kind!r}").to_wire()}
    except OwnedElsewhere as exc:
        reply = {"moved": exc.node_id}
    except Exception as exc:
        reply = {"error": error_from_exception(exc, f"cluster {kind}").to_wire()}
    finally:
        relay.capturing = False
    try:
        await node.calls.answer(call_id, caller, reply)
    except Exception as exc:  # the caller times out
        log.warning("cluster: replying to call %d of node %s failed: %s", call_id, caller, exc)


async def _request(node: Node, relay: Relay, thread_id: str | None, body: Any) -> Any:
    method = str(body["method"])
    relay.client_name = body.get("client")
    spec = METHODS.get(method)
    if spec is None or thread_id is None:
        raise InvalidRequest(f"cannot forward {method!r}")

    def seq_now() -> int:
        thread = node.registry.get(thread_id)
        return thread.events.last_seq if thread is not None else 0

    relay.on_response = seq_now
    params: Any = structure_params(body.get("params"), spec.params)
    ctx = RequestContext(cast(Connection, relay), 0)
    result = await node.run_request(ctx, method, params)
    relay.capturing = False
    if ctx.responded:
        answer = json.loads(relay.captured[0])
        if "error" in answer:
            return {"error": answer["error"]}
        reply: dict[str, Any] = {"result": answer.get("result")}
    else:
        reply = {"result": unstructure(result)}
    if method == "thread/resume":
        thread = node.registry.get(thread_id)
        reply["seq"] = relay.seq_at_response if relay.seq_at_response is not None else seq_now()
        reply["floor"] = thread.events.floor if thread is not None else 0
        reply["pending"] = [t for t in relay.captured[1:] if is_server_request(t)]
    return reply
