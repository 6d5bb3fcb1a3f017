"""Every write a running turn makes, through one retrying helper (PROTOCOL.md §8.6).

A turn never announces what is not stored: `item/completed` and `turn/completed` are
published only after `StoreRetry.write` returned. When the store fails (disk full, locked
past the busy timeout, I/O error) the write is retried with backoff:

- the turn's subscribers are told at once, by one `error` notification with the store's
  reason and `willRetry: true` per outage (an outage ends at the next write that works);
- after `seconds` of failing (`STORE_RETRY_SECONDS`) the turn gives up: the write raises
  `StoreUnavailable` into the agent, and the turn ends `failed` with the store's reason;
- the end of a turn (its last items and final state) is then retried for as long as the
  thread stays loaded: `turn/completed` goes out once it is stored, so what a client is
  told is what `thread/read` returns, after a restart too. A thread closed (or a server
  shut down) while the store is still failing leaves the turn stored `inProgress` and
  untold; it reads `interrupted` when loaded again.

Every turn write is idempotent (an upsert of an item, the turn's final state), so a write
that failed, or that is unknown to have worked, is simply made again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import attrs
import trio

from appserver.store.errors import StoreUnavailable
from appserver.threads import objects
from appserver.threads.loaded import ActiveTurn, LoadedThread

log = logging.getLogger("appserver.turn")

#: How long a running turn waits for a failing store before it ends `failed`.
STORE_RETRY_SECONDS = 30.0
#: The first pause between two tries; each next pause doubles, up to STORE_RETRY_MAX_BACKOFF.
STORE_RETRY_FIRST_BACKOFF = 0.1
STORE_RETRY_MAX_BACKOFF = 2.0

Write = Callable[[], Awaitable[None]]


@attrs.frozen
class StoreRetry:
    """The retry policy of turn writes (see the module doc)."""

    seconds: float = STORE_RETRY_SECONDS
    first_backoff: float = STORE_RETRY_FIRST_BACKOFF
    max_backoff: float = STORE_RETRY_MAX_BACKOFF

    def failed(self, thread: LoadedThread, turn: ActiveTurn, reason: str) -> None:
        """A write of `turn` failed: an outage starts (or goes on) and, when it starts,
        the turn's subscribers are told at once (`error`, willRetry)."""
        turn.store_reason = reason
        if turn.store_failing_since is not None:
            return
        turn.store_failing_since = trio.current_time()
        log.warning(
            "thread %s turn %s: a store write failed, retrying for up to %g s: %s",
            thread.id,
            turn.id,
            self.seconds,
            reason,
        )
        error = objects.turn_error(reason)
        params = {"error": error, "willRetry": True, "threadId": thread.id}
        thread.publish("error", {**params, "turnId": turn.id})

    async def write(
        self, thread: LoadedThread, turn: ActiveTurn, write: Write, *, until_stored: bool = False
    ) -> None:
        """Make one write of `turn`, retrying while the store fails.

        Raises StoreUnavailable once the turn has given up (`turn.store_failure` set), at
        once for every later write without `until_stored`. With `until_stored` (the end
        of the turn, inside `turn.finish_scope`) it retries until the write works; if the
        thread is closing once the turn has given up, it cancels `turn.finish_scope`."""
        if turn.store_failure is not None and not until_stored:
            raise StoreUnavailable(turn.store_failure)
        delay = self.first_backoff
        while True:
            try:
                await write()
            except StoreUnavailable as exc:
                reason = exc.reason
            else:
                if turn.store_failing_since is not None:
                    log.info("thread %s turn %s: the store works again", thread.id, turn.id)
                    turn.store_failing_since = None
                return
            self.failed(thread, turn, reason)
            since = turn.store_failing_since
            assert since is not None
            if turn.store_failure is None and trio.current_time() - since >= self.seconds:
                turn.store_failure = reason
                log.error(
                    "thread %s turn %s: the store failed for %g s, the turn fails: %s",
                    thread.id,
                    turn.id,
                    self.seconds,
                    reason,
                )
                if not until_stored:
                    raise StoreUnavailable(reason)
            if until_stored and thread.closing and turn.store_failure is not None:
                # The thread is closing and the store still fails: give up the end of
                # the turn (untold, stored inProgress: it reads interrupted when loaded).
                log.error(
                    "thread %s turn %s: closed before its end could be stored", thread.id, turn.id
                )
                turn.finish_scope.cancel()
            await trio.sleep(delay)
            delay = min(delay * 2, self.max_backoff)
