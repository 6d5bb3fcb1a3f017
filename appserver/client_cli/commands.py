"""The subcommands: send, watch, threads, read."""

from __future__ import annotations

import argparse
import contextlib
import shlex
import signal
import sys
import time

import trio
from rich.table import Table
from rich.text import Text

from appserver.client import Client, RpcError
from appserver.client_cli.approvals import Approver
from appserver.client_cli.common import EXIT_OK, EXIT_TURN_FAILED, Message
from appserver.client_cli.connect import connect, continue_command
from appserver.client_cli.events import Events, thread_of
from appserver.client_cli.render import (
    Output,
    Renderer,
    Spinner,
    color_enabled,
    human_time,
    print_json,
    render_event,
    status_text,
)
from appserver.client_cli.watch import cmd_watch


async def cmd_send(args: argparse.Namespace) -> int:
    words: list[str] = args.message
    if words == ["-"]:
        text = await trio.to_thread.run_sync(sys.stdin.read, abandon_on_cancel=True)
    else:
        text = " ".join(words)
    color = color_enabled(sys.stdout, args.no_color) and not args.json
    spinner = Spinner(enabled=not args.json and sys.stderr.isatty())
    out = Output(color, spinner=spinner)
    renderer = Renderer(out, echo_user=False)
    async with connect(args) as client:
        events = Events.attach(client, json_out=args.json)
        notes = Output(color_enabled(sys.stderr, args.no_color), sys.stderr) if args.json else out
        approver = Approver(client, renderer, notes, args.yes, args.approve_from_stdin)
        if args.thread is not None:
            result = await client.request("thread/resume", {"threadId": args.thread})
        else:
            result = await client.request("thread/start", {"cwd": args.cwd})
        thread_id = str(result["thread"]["id"])
        if not args.json:
            how = "resumed" if args.thread is not None else "new"
            out.line(f"thread {thread_id} ({how})", "dim")
        started = await client.request(
            "turn/start", {"threadId": thread_id, "input": [{"type": "text", "text": text}]}
        )
        turn_id = str(started["turn"]["id"])
        spinner.running = True
        status = "failed"
        async with trio.open_nursery() as nursery:
            nursery.start_soon(spinner.run, lambda: out.at_line_start)
            nursery.start_soon(_interrupt_on_sigint, client, thread_id, turn_id)
            while True:
                message = await events.next()
                if "id" in message:
                    if thread_of(message.get("params") or {}) == thread_id:
                        nursery.start_soon(approver.handle, message)
                    continue
                method = str(message["method"])
                params: Message = message.get("params") or {}
                if thread_of(params) != thread_id:
                    continue
                if method == "item/started":
                    renderer.items[str(params["item"].get("id"))] = params["item"]
                if method == "serverRequest/resolved":
                    approver.resolved(params["requestId"])
                elif method == "turn/completed" and params["turn"].get("id") == turn_id:
                    status = str(params["turn"].get("status"))
                    if not args.json:
                        renderer.turn_completed(params["turn"])
                    break
                if not args.json:
                    render_event(renderer, method, params, verbose=False)
            spinner.running = False
            spinner.clear()
            nursery.cancel_scope.cancel()
    hint = continue_command(args, thread_id)
    if not args.json and hint is not None:
        print(f"continue with: {hint}", file=sys.stderr, flush=True)
    return EXIT_OK if status == "completed" else EXIT_TURN_FAILED


async def _interrupt_on_sigint(client: Client, thread_id: str, turn_id: str) -> None:
    with trio.open_signal_receiver(signal.SIGINT) as signals:
        async for _ in signals:
            sys.stderr.write("\ninterrupting the turn… (Ctrl-C again to quit)\n")
            sys.stderr.flush()
            break
        async with trio.open_nursery() as nursery:

            async def interrupt() -> None:
                with contextlib.suppress(RpcError):  # it may have ended already
                    await client.request(
                        "turn/interrupt", {"threadId": thread_id, "turnId": turn_id}
                    )

            nursery.start_soon(interrupt)
            async for _ in signals:
                raise KeyboardInterrupt


async def cmd_threads(args: argparse.Namespace) -> int:
    params: Message = {"limit": args.limit, "sortKey": "updated_at", "archived": args.archived}
    if args.search:
        params["searchTerm"] = args.search
    if args.cursor is not None:
        params["cursor"] = args.cursor
    out = Output(color_enabled(sys.stdout, args.no_color))
    async with connect(args) as client:
        first = True
        while True:
            result = await client.request("thread/list", params)
            if args.json:
                print_json(result)
            else:
                _thread_table(out, result.get("data") or [], first=first)
            cursor = result.get("nextCursor")
            if not args.all or not cursor:
                break
            params["cursor"] = cursor
            first = False
    if cursor and not args.all and not args.json:
        print(
            f"more threads: run again with --cursor {shlex.quote(str(cursor))} (or --all)",
            file=sys.stderr,
            flush=True,
        )
    return EXIT_OK


def _thread_table(out: Output, threads: list[Message], *, first: bool) -> None:
    if not threads:
        if first:
            out.line("no threads", "dim")
        return
    table = Table(box=None, show_header=first, header_style="bold", pad_edge=False)
    table.add_column("ID", no_wrap=True)
    table.add_column("STATUS", no_wrap=True)
    table.add_column("UPDATED", no_wrap=True)
    table.add_column("NAME / PREVIEW", no_wrap=True, overflow="ellipsis")
    for th in threads:
        status = status_text(th.get("status") or {})
        name = th.get("name")
        label = Text(" ".join(str(name or th.get("preview") or "").split()))
        if name:
            label.stylize("bold")
        table.add_row(
            str(th["id"]),
            Text(status, style=_status_style(status)),
            human_time(int(th.get("updatedAt") or 0)),
            label,
        )
    out.table(table)


def _status_style(status: str) -> str:
    if status.startswith("active"):
        return "green"
    if status == "systemError":
        return "red"
    return "dim" if status == "notLoaded" else "blue"


async def cmd_read(args: argparse.Namespace) -> int:
    async with connect(args) as client:
        result = await client.request(
            "thread/read", {"threadId": args.thread_id, "includeTurns": True}
        )
    if args.json:
        print_json(result)
        return EXIT_OK
    out = Output(color_enabled(sys.stdout, args.no_color))
    thread = result["thread"]
    out.line(f"thread {thread['id']}", "bold")
    if thread.get("name"):
        out.line(f"name:    {thread['name']}")
    out.line(f"status:  {status_text(thread.get('status') or {})}")
    out.line(f"cwd:     {thread.get('cwd')}")
    created, updated = int(thread.get("createdAt") or 0), int(thread.get("updatedAt") or 0)
    out.line(f"created: {_timestamp(created)} ({human_time(created)})")
    out.line(f"updated: {_timestamp(updated)} ({human_time(updated)})")
    renderer = Renderer(out)
    turns = thread.get("turns") or []
    if not turns:
        out.line("(no turns)", "dim")
    for turn in turns:
        out.line()
        renderer.turn_started(turn)
        for item in turn.get("items") or []:
            renderer.item(item)
        if turn.get("status") != "inProgress":
            renderer.turn_completed(turn)
    return EXIT_OK


def _timestamp(ts: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


COMMANDS = {"send": cmd_send, "watch": cmd_watch, "threads": cmd_threads, "read": cmd_read}
