"""The server requests of every loaded thread (PROTOCOL.md §7): sending a request to a
thread's subscribers, taking the one answer that counts, settling. Approvals and the
requests of threads/talkback.py (user input, dynamic tool calls, permissions) all go
through `request`."""

from __future__ import annotations

import logging
from typing import Any

import attrs

from appserver import jsonrpc
from appserver.agents.base import ApprovalKind
from appserver.jsonrpc import ErrorResponse, Response
from appserver.threads import audit, objects
from appserver.threads.loaded import ActiveTurn, LoadedThread, PendingApproval
from appserver.threads.subscriber import Subscriber

log = logging.getLogger("appserver.registry")

DECISIONS = frozenset({"accept", "acceptForSession", "decline", "cancel"})


@attrs.frozen
class Answer:
    """How a server request ended: `result` of a response; `error` for a JSON-RPC error
    answer; `settled` when it was settled with no answer (§7.4)."""

    result: Any = None
    error: bool = False
    settled: bool = False


@attrs.define(eq=False)
class ServerRequests:
    # Every pending server request, by id: claim() lets only a recipient answer, once.
    _pending: jsonrpc.PendingTable[int] = attrs.Factory(jsonrpc.PendingTable)

    def __len__(self) -> int:
        return len(self._pending)

    def forget_recipient(self, sub_id: int) -> None:
        for pending in self._pending:
            pending.recipients.discard(sub_id)

    async def request(
        self,
        thread: LoadedThread,
        turn: ActiveTurn,
        method: str,
        params: dict[str, Any],
        item_id: str,
    ) -> Answer:
        """Send `method` with `params` (threadId / turnId added first) to every subscriber
        (§7.2), and wait for the answer that counts or the settlement."""
        request_id = jsonrpc.next_server_request_id()
        full = {"threadId": thread.id, "turnId": turn.id, **params}
        pending = PendingApproval(
            thread=thread,
            id=request_id,
            method=method,
            params=full,
            text=jsonrpc.encode_request(request_id, method, full),
            turn_id=turn.id,
            item_id=item_id,
            recipients=set(thread.subscribers),
        )
        thread.pending[request_id] = pending
        self._pending.add(pending)
        thread.send_request(pending)  # numbered (§13); never suppressed
        audit.request_asked(pending)
        thread.refresh_status()
        await pending.done.wait()
        if not pending.answered:
            return Answer(settled=True)
        return Answer(result=pending.result, error=pending.error)

    async def ask(
        self, thread: LoadedThread, turn: ActiveTurn, kind: ApprovalKind, params: dict[str, Any]
    ) -> str:
        """An approval (§7.1): the decision, "error" for an error answer, "decline" for an
        answer that is not a decision or a settlement."""
        method = f"item/{kind}/requestApproval"
        # startedAtMs: when this request started (one item may ask several times, §10).
        full = {**params, "startedAtMs": objects.now_ms()}
        if kind == "commandExecution":
            full["kind"] = "command"
        answer = await self.request(thread, turn, method, full, params["itemId"])
        if answer.error:
            return "error"
        value = answer.result.get("decision") if isinstance(answer.result, dict) else None
        return value if isinstance(value, str) and value in DECISIONS else "decline"

    def on_client_response(self, sub: Subscriber, message: Response | ErrorResponse) -> None:
        """§7.2: only a recipient may answer; the first answer wins; others are ignored."""
        assert message.id is not None  # the connection passes only answers with an id
        pending = self._pending.claim(message.id, sub.id)
        if not isinstance(pending, PendingApproval):
            log.info(
                "ignoring answer %r from connection %d: not pending for it", message.id, sub.id
            )
            return
        pending.answered = True
        if isinstance(message, ErrorResponse):
            pending.error = True
        else:
            pending.result = message.result
        audit.request_answered(pending, sub.id)
        self.settle(pending.thread, pending)

    def settle(self, thread: LoadedThread, pending: PendingApproval) -> None:
        """End a pending request (answered, or with no answer: §7.4)."""
        if not pending.answered and not pending.done.is_set():
            audit.request_settled(pending)
        thread.pending.pop(pending.id, None)
        self._pending.discard(pending.id)
        thread.publish("serverRequest/resolved", {"threadId": thread.id, "requestId": pending.id})
        thread.refresh_status()
        pending.done.set()

    def settle_turn(self, thread: LoadedThread, turn: ActiveTurn) -> set[str]:
        """§7.4: settle a turn's still-pending requests with no answer; returns the ids
        of their items."""
        items = set()
        for pending in list(thread.pending.values()):
            if pending.turn_id == turn.id:
                self.settle(thread, pending)
                items.add(pending.item_id)
        return items
