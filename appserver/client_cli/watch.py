"""`appserver-client watch THREAD`: follow a thread's events, reconnecting by itself.

The watch runs on a `ResumingSession` (client_resume.py, PROTOCOL.md §13): when the
connection drops it reconnects and resumes the thread with `afterSeq`, so the events go on
with no gap and no duplicate; when the server's log no longer reaches back it says so and
shows the thread as it stands."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from appserver.client import Client
from appserver.client_cli.common import EXIT_OK
from appserver.client_cli.connect import connect
from appserver.client_cli.events import thread_of
from appserver.client_cli.render import (
    Output,
    Renderer,
    color_enabled,
    print_json,
    render_event,
    status_text,
)
from appserver.client_errors import ServerRequest, single_errors
from appserver.client_resume import Resynced, resuming_session


def _show_thread(out: Output, renderer: Renderer, thread: dict[str, Any], what: str) -> None:
    turns = thread.get("turns") or []
    out.line(
        f"{what} thread {thread['id']} ({status_text(thread['status'])}, "
        f"{len(turns)} turns) — Ctrl-C to stop",
        "dim",
    )
    for turn in turns:  # a turn in progress: what happened so far
        if turn.get("status") == "inProgress":
            renderer.turn_started(turn)
            for item in turn.get("items") or []:
                renderer.item(item)


def _print_raw(client: Client) -> None:
    """--json: every message the client receives, as it arrives (not initialize's)."""
    inner = client.observer

    def observe(message: dict[str, Any], method: str | None) -> None:
        if inner is not None:
            inner(message, method)
        if method != "initialize":
            print_json(message)

    client.observer = observe


async def cmd_watch(args: argparse.Namespace) -> int:
    out = Output(color_enabled(sys.stdout, args.no_color) and not args.json)
    renderer = Renderer(out)

    @asynccontextmanager
    async def connection() -> AsyncIterator[Client]:
        async with connect(args, event_seq=True) as client:
            if args.json:
                _print_raw(client)
            yield client

    with single_errors(), trio.open_signal_receiver(signal.SIGINT) as signals:
        async with (
            resuming_session(connection, initialized=True) as session,
            trio.open_nursery() as nursery,
        ):

            async def stop_on_signal() -> None:
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    return

            nursery.start_soon(stop_on_signal)
            result = await session.follow(args.thread_id)
            if not args.json:
                _show_thread(out, renderer, result["thread"], "watching")
            async for event in session:
                if isinstance(event, Resynced):
                    if event.thread_id == args.thread_id and not args.json:
                        out.line("reconnected; events were missed, so as it stands now:", "yellow")
                        _show_thread(out, renderer, event.result["thread"], "watching")
                    continue
                if isinstance(event, ServerRequest):
                    if thread_of(event.params or {}) == args.thread_id and not args.json:
                        what = renderer.approval_summary(event.method, event.params or {})
                        out.line(f"? approval requested: {what} (not answered here)", "yellow")
                    continue
                params = event.get("params") or {}
                if thread_of(params) != args.thread_id:
                    continue
                method = str(event.get("method"))
                if not args.json:
                    render_event(renderer, method, params, verbose=True)
                if method == "turn/completed" and args.until_turn_completed:
                    break
                if method in ("thread/archived", "thread/closed"):
                    break
            nursery.cancel_scope.cancel()
    return EXIT_OK
