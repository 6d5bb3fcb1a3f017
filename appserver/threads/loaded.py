"""One loaded thread: its record, running turn, subscribers, pending approvals, status.

Every state change and the choice of who receives the resulting message happen in one
synchronous step (ARCHITECTURE.md invariant 1); callers persist *before* calling in.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import attrs
import trio

from appserver import jsonrpc
from appserver.jsonrpc import RequestId
from appserver.jsonrpc.codec import with_seq
from appserver.store.base import LoggedEvent, ThreadRecord, ThreadStore
from appserver.threads import objects
from appserver.threads.event_log import EventLog
from appserver.threads.subscriber import Subscriber, needs_pace, pace

_generations = itertools.count(1)

Broadcast = Callable[[str, Any], None]

USER_INPUT_METHOD = "item/tool/requestUserInput"
# The producer reaches a checkpoint once per this many events (after_publish).
CHECKPOINT_EVERY = 16


def wants_seq(sub: Subscriber) -> bool:
    """Whether a subscriber opted in to numbered events (`appserverEventSeq`, §13)."""
    return bool(getattr(sub, "event_seq", False))  # the thread is waitingOnUserInput


# Item fields that accumulate deltas while an item is in progress.
TEXT_FIELDS = {
    "agentMessage": "text",
    "commandExecution": "aggregatedOutput",
}


@attrs.define(eq=False, kw_only=True)
class PendingApproval(jsonrpc.PendingRequest[int]):
    """An approval request awaiting an answer; `recipients` are subscriber ids."""

    thread: LoadedThread
    text: str  # the encoded request, re-sent verbatim on rejoin
    seq_text: str = ""  # the same with its "seq" (§13), for opted-in connections
    turn_id: str
    item_id: str
    done: trio.Event = attrs.Factory(trio.Event)
    # The answer: `result` of a response, `error` for a JSON-RPC error answer; neither
    # when settled with no answer (§7.4).
    answered: bool = False
    error: bool = False
    result: Any = None


@attrs.define(eq=False)
class ActiveTurn:
    id: str
    input: list[dict[str, Any]]
    cwd: str
    approval_policy: str
    sandbox: str
    model: str
    started_at_ms: int = attrs.Factory(objects.now_ms)
    cancel_scope: trio.CancelScope = attrs.Factory(trio.CancelScope)
    done: trio.Event = attrs.Factory(trio.Event)
    # Items in the order they started; the latest known state of each.
    items: dict[str, dict[str, Any]] = attrs.Factory(dict)
    # Streamed text of in-progress items (joined on demand: no quadratic concatenation).
    parts: dict[str, list[str]] = attrs.Factory(dict)
    summary_parts: dict[str, dict[int, list[str]]] = attrs.Factory(dict)
    completed: set[str] = attrs.Factory(set)
    # Items the agent completed whose write has not worked yet (threads/persist.py): the
    # end of the turn stores and announces them as the agent left them.
    unstored: dict[str, dict[str, Any]] = attrs.Factory(dict)
    # A store outage (persist.py): since when (trio time) writes fail, the last reason,
    # and the reason the turn gave up with (it then ends failed).
    store_failing_since: float | None = None
    store_reason: str | None = None
    store_failure: str | None = None
    # Shields the end of the turn (storing it); cancelled only to abandon a store that
    # keeps failing when the thread closes.
    finish_scope: trio.CancelScope = attrs.Factory(lambda: trio.CancelScope(shield=True))
    # turn/steer (threads/steering.py): whether the agent takes steered input (until it
    # returns), the steered userMessage items it has not taken yet, and the scope a steer
    # cancels (the agent's work in `until_steered`).
    steerable: bool = False
    steered: list[dict[str, Any]] = attrs.Factory(list)
    steer_scope: trio.CancelScope | None = None

    def live_item(self, item_id: str) -> dict[str, Any]:
        """An item as it stands now, streamed text included."""
        item = self.items[item_id]
        if item_id in self.completed:
            return item
        current = dict(item)
        field = TEXT_FIELDS.get(item.get("type", ""))
        parts = self.parts.get(item_id)
        if field is not None and parts:
            current[field] = (item.get(field) or "") + "".join(parts)
        summaries = self.summary_parts.get(item_id)
        if summaries:
            summary = list(item.get("summary") or [])
            for index, chunks in sorted(summaries.items()):
                while len(summary) <= index:
                    summary.append("")
                summary[index] += "".join(chunks)
            current["summary"] = summary
        return current

    def snapshot(self) -> dict[str, Any]:
        items = [self.live_item(item_id) for item_id in self.items]
        return objects.turn_object(
            self.id, "inProgress", None, items, started_at_ms=self.started_at_ms
        )


@attrs.define(eq=False)
class LoadedThread:
    record: ThreadRecord
    store: ThreadStore
    broadcast: Broadcast
    ephemeral: bool = False
    generation: int = attrs.Factory(lambda: next(_generations))
    subscribers: dict[int, Subscriber] = attrs.Factory(dict)
    turn: ActiveTurn | None = None
    pending: dict[RequestId, PendingApproval] = attrs.Factory(dict)
    last_failed: bool = False
    status_sent: dict[str, Any] = attrs.Factory(lambda: dict(objects.IDLE))
    closing: bool = False
    closed: trio.Event = attrs.Factory(trio.Event)
    session_approvals: set[str] = attrs.Factory(set)
    finished_turns: int = 0  # bumps when a turn's final state is stored
    unchecked: int = 0  # events published since the producer's last checkpoint
    # thread/tokenUsage/updated's running total while loaded (threads/talkback.py).
    token_total: dict[str, int] | None = None
    idle_scope: trio.CancelScope | None = None
    # The numbered event log (§13, threads/event_log.py).
    events: EventLog = attrs.Factory(
        lambda self: EventLog(self.record.id, self.store), takes_self=True
    )

    @property
    def id(self) -> str:
        return self.record.id

    # --- status (§4.2) ------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        if self.turn is not None or self.pending:
            methods = [p.method for p in self.pending.values()]
            return objects.active(
                waiting_on_approval=any(m.endswith("/requestApproval") for m in methods),
                waiting_on_user_input=USER_INPUT_METHOD in methods,
            )
        if self.last_failed:
            return dict(objects.SYSTEM_ERROR)
        return dict(objects.IDLE)

    def refresh_status(self) -> None:
        """Broadcast `thread/status/changed` if, and only if, the status really changed."""
        if self.closing:
            return  # closing ends with one notLoaded change (§8.4)
        status = self.status()
        if status != self.status_sent:
            self.status_sent = status
            self.broadcast("thread/status/changed", {"threadId": self.id, "status": status})

    def thread_object(self, turns: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        return objects.thread_object(
            self.record, self.status(), ephemeral=self.ephemeral, turns=turns
        )

    # --- fan-out (§8.1) -----------------------------------------------------------------

    def publish(self, method: str, params: Any) -> None:
        """Send a notification to this thread's subscribers: numbered and logged (§13),
        encoded once per variant (with and without "seq"), each only if needed."""
        self.publish_text(method, jsonrpc.encode_notification(method, params))

    def publish_text(self, method: str, text: str) -> None:
        """`publish` of an already encoded notification (`encode_notification`'s layout)."""
        seq = self.events.number()
        seq_text = with_seq(text, seq)
        self.events.keep(LoggedEvent(seq=seq, text=seq_text))
        plain: jsonrpc.Outbound | None = None
        numbered: jsonrpc.Outbound | None = None
        for sub in list(self.subscribers.values()):
            if sub.wants(method):
                if wants_seq(sub):
                    if numbered is None:
                        numbered = jsonrpc.Outbound(seq_text)
                    sub.send_nowait(numbered)
                else:
                    if plain is None:
                        plain = jsonrpc.Outbound(text)
                    sub.send_nowait(plain)

    def send_request(self, pending: PendingApproval) -> None:
        """Number, log and send a server request to every subscriber (never suppressed)."""
        seq = self.events.number()
        pending.seq_text = with_seq(pending.text, seq)
        self.events.keep(LoggedEvent(seq=seq, text=pending.seq_text))
        for sub in list(self.subscribers.values()):
            sub.send_nowait(pending.seq_text if wants_seq(sub) else pending.text)

    def resend_request(self, pending: PendingApproval, sub: Subscriber) -> None:
        """A pending request again to one rejoining subscriber, as first sent."""
        sub.send_nowait(pending.seq_text if wants_seq(sub) and pending.seq_text else pending.text)

    async def after_publish(self) -> None:
        """What a producer does after every event (§2.3): keep the seq reservation ahead
        (§13), wait for subscribers that need it (stdio backpressure, a draining
        websocket over half full), and reach a checkpoint every CHECKPOINT_EVERY events
        (the scheduler work of one per event was a quarter of a one-subscriber stream's
        CPU). A reader sharing this process (the Python API, tests) then falls behind by
        up to that many events per round; it is paced, not dropped: the producer waits
        for its queue while its socket keeps moving (Connection.stalled counts bytes
        written, not the time a write takes). The outbound tasks coalesce the events of
        a stream into fewer socket writes themselves (connection.py)."""
        if self.events.needs_reserve:
            await self.events.reserve()
        if needs_pace(self.subscribers):  # rare
            await pace(self.subscribers)
        self.unchecked += 1
        if self.unchecked >= CHECKPOINT_EVERY:
            self.unchecked = 0
            await trio.sleep(0)  # noqa: ASYNC115 - the high-level checkpoint

    def subscribe(self, sub: Subscriber) -> None:
        self.subscribers[sub.id] = sub

    def unsubscribe(self, sub_id: int) -> bool:
        removed = self.subscribers.pop(sub_id, None) is not None
        for pending in self.pending.values():
            pending.recipients.discard(sub_id)
        return removed

    @property
    def unloadable(self) -> bool:
        """No subscriber, no running turn, no pending request (§8.3)."""
        return not self.subscribers and self.turn is None and not self.pending
