"""The server requests of every loaded thread (PROTOCOL.md §7): sending an approval
request to a thread's subscribers, taking the one answer that counts, settling."""

from __future__ import annotations

import logging
from typing import Any

import attrs

from appserver import jsonrpc
from appserver.agents.base import ApprovalKind
from appserver.jsonrpc import ErrorResponse, Response
from appserver.threads import objects
from appserver.threads.loaded import ActiveTurn, LoadedThread, PendingApproval
from appserver.threads.subscriber import Subscriber

log = logging.getLogger("appserver.registry")

DECISIONS = frozenset({"accept", "acceptForSession", "decline", "cancel"})


@attrs.define(eq=False)
class ServerRequests:
    # Every pending server request, by id: claim() lets only a recipient answer, once.
    _pending: jsonrpc.PendingTable[int] = attrs.Factory(jsonrpc.PendingTable)

    def __len__(self) -> int:
        return len(self._pending)

    def forget_recipient(self, sub_id: int) -> None:
        for pending in self._pending:
            pending.recipients.discard(sub_id)

    async def ask(
        self, thread: LoadedThread, turn: ActiveTurn, kind: ApprovalKind, params: dict[str, Any]
    ) -> str:
        request_id = jsonrpc.next_server_request_id()
        method = f"item/{kind}/requestApproval"
        # startedAtMs: when this request started (one item may ask several times, §10).
        full = {"threadId": thread.id, "turnId": turn.id, **params, "startedAtMs": objects.now_ms()}
        if kind == "commandExecution":
            full["kind"] = "command"
        pending = PendingApproval(
            thread=thread,
            id=request_id,
            method=method,
            params=full,
            text=jsonrpc.encode_request(request_id, method, full),
            turn_id=turn.id,
            item_id=params["itemId"],
            recipients=set(thread.subscribers),
        )
        thread.pending[request_id] = pending
        self._pending.add(pending)
        for sub in list(thread.subscribers.values()):
            sub.send_nowait(pending.text)  # server requests are never suppressed
        thread.refresh_status()
        await pending.done.wait()
        return pending.decision or "decline"

    def on_client_response(self, sub: Subscriber, message: Response | ErrorResponse) -> None:
        """§7.2: only a recipient may answer; the first answer wins; others are ignored."""
        assert message.id is not None  # the connection passes only answers with an id
        pending = self._pending.claim(message.id, sub.id)
        if not isinstance(pending, PendingApproval):
            log.info(
                "ignoring answer %r from connection %d: not pending for it", message.id, sub.id
            )
            return
        if isinstance(message, ErrorResponse):
            decision = "error"
        else:
            result = message.result
            value = result.get("decision") if isinstance(result, dict) else None
            decision = value if isinstance(value, str) and value in DECISIONS else "decline"
        self.settle(pending.thread, pending, decision)

    def settle(self, thread: LoadedThread, pending: PendingApproval, decision: str | None) -> None:
        thread.pending.pop(pending.id, None)
        self._pending.discard(pending.id)
        pending.decision = decision
        thread.publish("serverRequest/resolved", {"threadId": thread.id, "requestId": pending.id})
        thread.refresh_status()
        pending.done.set()

    def settle_turn(self, thread: LoadedThread, turn: ActiveTurn) -> set[str]:
        """§7.4: settle a turn's still-pending requests with no decision."""
        items = set()
        for pending in list(thread.pending.values()):
            if pending.turn_id == turn.id:
                self.settle(thread, pending, None)
                items.add(pending.item_id)
        return items
