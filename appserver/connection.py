"""One client connection: its nursery, inbound and outbound tasks, in-flight requests.

The connection knows JSON-RPC, not threads: it is handed a `RequestHandler`. Its cancel
scope *is* disconnect. Everything written to the peer goes through one FIFO (a deque)
drained by the single outbound task (PROTOCOL.md §2.3), which coalesces a notification
stream into few socket writes and never holds back a reply.
"""

from __future__ import annotations

import collections
import itertools
import logging
import math
from typing import Any

import attrs
import trio

from appserver import jsonrpc, logs
from appserver.jsonrpc import (
    ErrorResponse,
    Invalid,
    Notification,
    Outbound,
    Request,
    Response,
)
from appserver.metrics import NO_METRICS, Metrics
from appserver.protocol import errors
from appserver.protocol.converter import structure_params, unstructure
from appserver.protocol.methods import CLIENT_NOTIFICATIONS, METHODS
from appserver.protocol.types import InitializeParams
from appserver.requests import (
    RequestContext,
    RequestHandler,
    answer,
    answer_now,
    error_from_exception,
)
from appserver.transports.base import FrameTooLarge, Transport, TransportClosed

log = logging.getLogger("appserver.connection")

KNOWN_METHODS = frozenset(METHODS)
MAX_BATCH = 512  # frames written per outbound wake-up, in one transport write
# While a stream goes on (a write ended less than COALESCE_SECONDS ago), the outbound task
# waits up to COALESCE_SECONDS for COALESCE_FRAMES frames before it writes: one socket
# write per few events instead of one per event. A reply never waits (`reply`). The
# producers still reach a checkpoint after every event, so readers sharing the process
# keep their fair share.
COALESCE_FRAMES = 16
COALESCE_SECONDS = 0.002
EOF_DRAIN_SECONDS = 5.0
# A websocket write that has not completed for this long means the peer stopped reading:
# producers stop pacing themselves to it, its queue fills and it is dropped (§2.3). This
# is also the longest pause one stalled peer can cause the others, once.
STALL_SECONDS = 0.5
# While waiting delays nobody (`alone`: no other subscriber is hungry) a peer is waited
# for this long (§2.3): a reader slower than its kernel's refill cadence (over loopback a
# whole receive buffer is freed at once: 128 KiB at 100 KB/s is a 1.3 s pause) is not
# stalled.
LONE_STALL_SECONDS = 10.0
# When a connection ends, a write in progress may still finish for this long, so the peer
# never sees a cut-off frame and can get a proper close frame (e.g. 1008 slow consumer).
CLOSE_GRACE_SECONDS = 5.0

_connection_ids = itertools.count(1)

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008


@attrs.define(eq=False)
class Connection:
    transport: Transport
    handler: RequestHandler
    max_inflight: int = 128
    outbound_limit: int = 1024
    metrics: Metrics = NO_METRICS  # the server's (metrics.py); hooks cost one call each
    id: int = attrs.field(factory=lambda: next(_connection_ids))
    initialized: bool = False
    client_name: str | None = None
    opt_out: frozenset[str] = frozenset()
    experimental_api: bool = False  # initialize capabilities.experimentalApi (§3)
    event_seq: bool = False  # capabilities.appserverEventSeq (§13)
    close_code: int = CLOSE_NORMAL
    close_reason: str = ""
    inflight: int = 0
    _cancel_scope: trio.CancelScope = attrs.Factory(trio.CancelScope)
    # The outbound FIFO (§2.3): filled by send_nowait, drained only by the outbound
    # task. A plain deque, not a memory channel: one append per delivery is the whole
    # enqueue cost, and the outbound task takes everything queued at once.
    _queue: collections.deque[Outbound] = attrs.Factory(collections.deque)
    _capacity: float = attrs.field(init=False)
    _pace_at: int = attrs.field(init=False)  # producers wait for a queue longer than this
    _wakeup: trio.Event | None = None  # set when the outbound task waits for frames
    _urgent: bool = False  # a reply is queued: write without waiting to coalesce
    _wake_at: int = 1  # queue length at which send_nowait wakes the outbound task
    _drained: trio.Event = attrs.Factory(trio.Event)
    _idle: trio.Event = attrs.Factory(trio.Event)
    _closed: bool = False
    _enqueued: int = 0  # messages accepted into the outbound channel
    _written: int = 0  # messages the transport has finished writing
    _write_started: float | None = None  # trio time the write in progress began
    _write_progress: int = 0  # transport.progress when _write_started was taken
    _write_scope: trio.CancelScope | None = None  # shields the write in progress
    finished: trio.Event = attrs.Factory(trio.Event)  # run() has returned
    transport_broken: bool = False  # a write was cut off: no close handshake is possible

    def __attrs_post_init__(self) -> None:
        backpressure = self.transport.applies_backpressure
        self._capacity = math.inf if backpressure else self.outbound_limit
        self._pace_at = self.outbound_limit if backpressure else self.outbound_limit // 2
        self._idle.set()

    # --- outbound -----------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def queued(self) -> int:
        return len(self._queue)

    def send_nowait(self, text: str | Outbound) -> bool:
        """Queue one encoded message. Never waits. On a websocket whose queue is full the
        connection is a slow consumer: it is closed (1008) and False is returned."""
        if self._closed:
            return False
        queue = self._queue
        if len(queue) >= self._capacity:
            logs.slow_consumer(self.id, self.client_name, self.queued)
            self.close(CLOSE_POLICY, "slow consumer")
            self.metrics.slow_consumer_dropped()
            return False
        queue.append(text if isinstance(text, Outbound) else Outbound(text))
        self._enqueued += 1
        wakeup = self._wakeup
        if wakeup is not None and (len(queue) >= self._wake_at or self._urgent):
            self._wakeup = None
            wakeup.set()
        return True

    def reply(self, text: str) -> bool:
        """Queue a response or an error response: written at once, never held back to
        coalesce a stream with it (a request's round trip is not a stream)."""
        self._urgent = True
        return self.send_nowait(text)

    def stalled(self, seconds: float = STALL_SECONDS) -> bool:
        """The peer has stopped draining: the write in progress has moved nothing for
        `seconds` (§2.3). A big write that keeps moving, to a slow reader that keeps
        reading, is not stalled: its clock restarts whenever the transport's `progress`
        has moved since it was last looked at."""
        started = self._write_started
        if started is None:
            return False
        now = trio.current_time()
        if now - started <= seconds:
            return False
        progress = self.transport.progress
        if progress != self._write_progress:
            self._write_started, self._write_progress = now, progress
            return False
        return True

    @property
    def hungry(self) -> bool:
        """Would take more now: nothing queued, no write in progress (a producer waiting
        for another subscriber delays this one)."""
        return not self._queue and self._write_started is None and not self._closed

    def needs_wait(self, *, alone: bool = False) -> bool:
        """Whether `wait_writable` would wait now (checked without a coroutine per event;
        a producer asks after every event, so the common case is one comparison).
        `alone`: waiting delays nobody else (no other subscriber is `hungry`), so a
        websocket is waited for until it has taken nothing for LONE_STALL_SECONDS."""
        if len(self._queue) <= self._pace_at or self._closed:
            return False
        if self._capacity == math.inf:
            return True
        return not self.stalled(LONE_STALL_SECONDS if alone else STALL_SECONDS)

    async def wait_writable(self, *, alone: bool = False, recheck: float = STALL_SECONDS) -> None:
        """Where producers pace themselves after each event (§2.3).

        stdio (backpressure): wait while more than the outbound limit is queued.
        websocket: enqueueing never waits, but while this peer's socket is draining and
        its queue is over half full, wait for the outbound task to catch up, so a client
        that keeps reading is never a slow consumer. A stalled peer is never waited for:
        its queue fills and it is dropped. With `alone` this returns after at most
        `recheck` seconds: the producer looks again whether it is still alone."""
        while self.needs_wait(alone=alone):
            if self._capacity == math.inf:
                await self._drained.wait()
            else:  # re-check for a stall at least every STALL_SECONDS
                with trio.move_on_after(recheck if alone else STALL_SECONDS):
                    await self._drained.wait()
                if alone:
                    return

    def wants(self, method: str) -> bool:
        """Whether a notification `method` may be sent to this connection (§3)."""
        return self.initialized and not self._closed and method not in self.opt_out

    def notify(self, method: str, params: Any) -> bool:
        if not self.wants(method):
            return False
        return self.send_nowait(jsonrpc.encode_notification(method, params))

    def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """End the connection: cancel its scope (its tasks end) and close the transport."""
        if not self._closed:
            self._closed = True
            self.close_code, self.close_reason = code, reason
        if self._write_scope is not None:  # let it finish a little while, never forever
            self._write_scope.deadline = min(
                self._write_scope.deadline, trio.current_time() + CLOSE_GRACE_SECONDS
            )
        self._cancel_scope.cancel()

    async def _outbound(self) -> None:
        queue = self._queue
        last_write = -math.inf  # trio time the last write ended
        while True:
            if not queue:
                self._wake_at = 1
                self._wakeup = wakeup = trio.Event()
                await wakeup.wait()
                continue
            if (
                len(queue) < COALESCE_FRAMES
                and not self._urgent
                and self._capacity != math.inf
                and trio.current_time() - last_write < COALESCE_SECONDS
            ):
                # websocket: a stream is going on (the last write ended less than
                # COALESCE_SECONDS ago): sleep until its producers have queued
                # COALESCE_FRAMES, a reply is queued, or COALESCE_SECONDS pass, and write
                # them all at once. Asleep, not polling: K subscribers cost nothing per
                # event until their batch is full. (stdio writes at once: its writes are
                # its backpressure.)
                self._wake_at = COALESCE_FRAMES
                self._wakeup = wakeup = trio.Event()
                with trio.move_on_after(COALESCE_SECONDS):
                    await wakeup.wait()
                self._wakeup = None
            if len(queue) <= MAX_BATCH:
                batch = list(queue)
                queue.clear()
            else:
                batch = [queue.popleft() for _ in range(MAX_BATCH)]
            self._urgent = self._urgent and bool(queue)
            self._write_started = trio.current_time()
            self._write_progress = self.transport.progress
            # A write is never cut off by the connection ending (a partial frame would
            # garble the stream); close() gives it CLOSE_GRACE_SECONDS instead.
            self._write_scope = trio.CancelScope(shield=True)
            if self._closed:
                self._write_scope.deadline = trio.current_time() + CLOSE_GRACE_SECONDS
            try:
                with self._write_scope:
                    await self.transport.send_all(batch)
            except TransportClosed:
                self.close(CLOSE_GOING_AWAY, "peer gone")
                return
            finally:
                cut_off = self._write_scope.cancelled_caught
                self._write_scope = None
            if cut_off:
                self.transport_broken = True
                return
            self._write_started = None
            last_write = trio.current_time()
            self._written += len(batch)
            self.metrics.delivered(len(batch))
            self._drained.set()
            self._drained = trio.Event()

    async def _flush(self) -> None:
        """Wait until everything queued so far has been written by the transport."""
        target = self._enqueued
        while self._written < target and not self._closed:
            await self._drained.wait()

    # --- inbound ------------------------------------------------------------------------

    async def _inbound(self, nursery: trio.Nursery) -> None:
        while True:
            try:
                text = await self.transport.receive()
            except FrameTooLarge as exc:
                self.reply(
                    jsonrpc.encode_error(None, errors.message_too_large(exc.size, exc.limit))
                )
                continue
            except TransportClosed:
                break
            self._on_frame(text, nursery)
            # websocket: a pipelining peer's answers must not overflow its queue in one
            # read; take its next request as they drain (stdio queues without a bound).
            if self._capacity != math.inf and self.needs_wait():
                await self.wait_writable()
        # End of input. Where the write side still works (stdio), answer what is in
        # flight and flush before ending; otherwise the peer is gone.
        if self.transport.half_close:
            with trio.move_on_after(EOF_DRAIN_SECONDS):
                await self._idle.wait()
                await self._flush()
        self.close(CLOSE_NORMAL, "end of input")

    def _on_frame(self, text: str | bytes, nursery: trio.Nursery) -> None:
        event = jsonrpc.decode(text, KNOWN_METHODS)
        if isinstance(event, Request):
            self._on_request(event, nursery)
        elif isinstance(event, Notification):
            if event.method not in CLIENT_NOTIFICATIONS:
                log.info("ignoring notification %r from connection %d", event.method, self.id)
        elif isinstance(event, Response | ErrorResponse):
            if event.id is None:
                log.info("connection %d sent an error without id: %r", self.id, event.error)
            else:
                self.handler.on_client_response(self, event)
        else:
            assert isinstance(event, Invalid)
            self.reply(jsonrpc.encode_error(event.id, event.error))

    def _on_request(self, req: Request, nursery: trio.Nursery) -> None:
        spec = METHODS[req.method]
        if req.method == "initialize":
            self._initialize(req)
            return
        if spec.needs_init and not self.initialized:
            self.reply(jsonrpc.encode_error(req.id, errors.not_initialized()))
            return
        if self.inflight >= self.max_inflight:  # §2.4, even for one that would not wait
            self.reply(jsonrpc.encode_error(req.id, errors.overloaded()))
            return
        if self.handler.answers_now(req.method):
            self._answer_now(req, spec.params)
            return
        self.inflight += 1
        self._idle = trio.Event() if self.inflight == 1 else self._idle
        nursery.start_soon(self._run_request, req, spec.params, name=f"request {req.method}")

    def _initialize(self, req: Request) -> None:
        try:
            if self.initialized:
                raise errors.already_initialized()
            params = structure_params(req.params, InitializeParams)
            result = self.handler.initialize(self, params)
        except BaseException as exc:
            self.reply(jsonrpc.encode_error(req.id, error_from_exception(exc, "initialize")))
            return
        caps = params.capabilities
        self.opt_out = frozenset(caps.opt_out_notification_methods if caps else ())
        self.experimental_api = bool(caps and caps.experimental_api)
        self.event_seq = bool(caps and caps.appserver_event_seq)
        self.client_name = params.client_info.name
        # Marked initialized and answered in one step: no notification can come first.
        self.reply(jsonrpc.encode_response(req.id, unstructure(result)))
        self.initialized = True
        logs.connection_initialized(self.id, params.client_info.name, params.client_info.version)

    def _answer_now(self, req: Request, params_type: type) -> None:
        """A request answered from live state in this (the inbound) task: no task, no
        scheduler round of its own (handlers/common.py `Immediate`)."""
        started = trio.current_time()
        ctx = RequestContext(self, req.id)
        text = answer_now(self.handler, ctx, req, params_type, self.experimental_api)
        if text is not None:
            self.reply(text)
        self.metrics.request_done(req.method, trio.current_time() - started)

    async def _run_request(self, req: Request, params_type: type) -> None:
        started = trio.current_time()
        ctx = RequestContext(self, req.id)
        try:
            text = await answer(self.handler, ctx, req, params_type, self.experimental_api)
            if text is not None:
                if self.needs_wait():
                    await self.wait_writable()
                self.reply(text)
        finally:
            self.metrics.request_done(req.method, trio.current_time() - started)
            self.inflight -= 1
            if self.inflight == 0:
                self._idle.set()

    # --- life ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve this connection until the peer goes or `close()` is called."""
        try:
            with self._cancel_scope:
                if self._closed:
                    return
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._outbound, name=f"outbound {self.id}")
                    nursery.start_soon(self._inbound, nursery, name=f"inbound {self.id}")
                    nursery.start_soon(self._keepalive, name=f"keepalive {self.id}")
        finally:
            self._closed = True
            self._queue.clear()
            self.handler.on_disconnect(self)
            with trio.CancelScope(shield=True), trio.move_on_after(2):
                await self.transport.aclose(
                    self.close_code, self.close_reason, abort=self.transport_broken
                )
            self.finished.set()

    async def _keepalive(self) -> None:
        try:
            await self.transport.keepalive()
        except TransportClosed:
            self.close(CLOSE_GOING_AWAY, "peer gone")

    async def aclose(self, code: int, reason: str, flush_timeout: float = 2.0) -> None:
        """Close after writing what is already queued (e.g. at shutdown, §8.8)."""
        with trio.move_on_after(flush_timeout):
            await self._flush()
        self.close(code, reason)

    def statistics(self) -> dict[str, int]:
        return {"inflight": self.inflight, "queued": self.queued}
