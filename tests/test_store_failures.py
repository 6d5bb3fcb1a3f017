"""A store that fails (PROTOCOL.md §8.6, issue #13 defect 3): a write that fails is never
reported as done, and what a client is told about a turn is what `thread/read` returns,
after a restart too.

- Injection (tests/failing_store.py): writes of a real SQLite store fail at random while
  turns run (/say, /stream, /run and /write under `never`, interrupts); every
  `item/completed` and `turn/completed` a client receives must already be stored when it
  arrives, and `thread/read` (then after reopening the store) returns exactly what was told.
- Real failures over a real websocket connection to a real server with a data dir: the
  database locked by another connection (`BEGIN EXCLUSIVE`) past the busy timeout, and a
  full disk (a 3 MB tmpfs, when running as root).
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import attrs
import pytest
import trio
from failing_store import FailingStore, install
from threads_support import (
    Message,
    assert_well_ordered,
    collect_turn,
    new_thread,
    of_thread,
    rpc_error,
    start_turn,
    stored_thread,
    text_input,
)

from appserver.client import Client, RpcError, connect_websocket
from appserver.server import Server, ServerConfig, open_server
from appserver.threads.persist import StoreRetry

T = TypeVar("T")
TIMEOUT = 60
DB = "appserver.sqlite3"
NEVER = {"approvalPolicy": "never", "sandbox": "workspace-write"}


def retry(seconds: float) -> StoreRetry:
    return StoreRetry(seconds=seconds, first_backoff=0.02, max_backoff=0.1)


@pytest.fixture(autouse=True)
def short_busy_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """A locked database fails a write after 0.2 s instead of the default."""
    monkeypatch.setattr("appserver.store.sqlite.BUSY_TIMEOUT_SECONDS", 0.2)


@asynccontextmanager
async def ws_server(
    data_dir: Path, policy: StoreRetry, *, shutdown_timeout: float = 5.0
) -> AsyncIterator[tuple[Server, str]]:
    """A real server with a data dir, served on a real websocket."""
    config = ServerConfig(data_dir=data_dir, shutdown_timeout=shutdown_timeout)
    async with open_server(config) as server:
        server.registry.store_retry = policy
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.serve_websocket, "127.0.0.1", 0)
            yield server, f"ws://127.0.0.1:{port}"
            nursery.cancel_scope.cancel()


@asynccontextmanager
async def client_of(url: str, told: Told) -> AsyncIterator[Client]:
    async with connect_websocket(url) as client:
        told.watch(client)
        await client.initialize("store-failures")
        yield client


@attrs.define
class Told:
    """Everything clients were told about turns. With `store`, each `*/completed` is
    checked on arrival against what the store had acknowledged by then."""

    store: FailingStore | None = None
    items: dict[tuple[str, str], list[Message]] = attrs.Factory(dict)
    turns: dict[tuple[str, str], Message] = attrs.Factory(dict)
    errors: list[Message] = attrs.Factory(list)
    violations: list[str] = attrs.Factory(list)

    def watch(self, client: Client) -> None:
        inner = client.observer

        def observe(message: Message, method: str | None) -> None:
            if inner is not None:
                inner(message, method)
            if "method" in message and "id" not in message:
                self.note(message["method"], message.get("params") or {})

        client.observer = observe

    def note(self, method: str, params: Message) -> None:
        if method == "item/completed":
            item = params["item"]
            key = (params["threadId"], params["turnId"])
            if self.store is not None and self.store.items.get((*key, item["id"])) != item:
                self.violations.append(f"item/completed before it was stored: {item}")
            self.items.setdefault(key, []).append(item)
        elif method == "turn/completed":
            turn = params["turn"]
            key = (params["threadId"], turn["id"])
            assert key not in self.turns, f"turn/completed twice: {turn}"
            if self.store is not None:
                stored = self.store.finished.get(key)
                if stored != (turn["status"], turn["error"]):
                    self.violations.append(f"turn/completed {turn} but stored {stored}")
            self.turns[key] = turn
        elif method == "error":
            self.errors.append(params)

    def store_errors(self, thread_id: str, *, will_retry: bool) -> list[str]:
        return [
            e["error"]["message"]
            for e in self.errors
            if e["threadId"] == thread_id and e["willRetry"] is will_retry
        ]

    def check(
        self, thread_id: str, thread: Message, started: list[str], *, restarted: bool
    ) -> None:
        """`thread` (read with its turns) holds exactly the turns that were started, each
        with exactly the items and the final state its clients were told."""
        turns = thread["turns"]
        assert [t["id"] for t in turns] == started
        for turn in turns:
            key = (thread_id, turn["id"])
            assert turn["items"] == self.items.get(key, []), turn["id"]
            done = self.turns.get(key)
            if done is None:  # never told how it ended: it did not end, as far as stored
                assert turn["status"] == ("interrupted" if restarted else "inProgress"), turn
                continue
            view = {k: v for k, v in turn.items() if k not in ("items", "itemsView")}
            assert view == {k: v for k, v in done.items() if k not in ("items", "itemsView")}


def store_error_of(error: RpcError) -> str:
    assert error.code == -32603, error
    assert error.data == {"kind": "storeUnavailable"}, error.data
    return error.message


async def read_all(client: Client, thread_ids: list[str]) -> dict[str, Message]:
    return {t: await stored_thread(client, t) for t in thread_ids}


# --- injection: random write failures --------------------------------------------------------


SCRIPTS = [
    "/say the quick brown fox",
    "/stream 30 5",
    "/stream 300 3",
    "/sleep 0.2\n/say after a pause",
    "/say a\n/sleep 0.3\n/stream 20 4\n/run echo done",
    "/run echo hello",
    "/write notes.txt some notes",
    "plain words\n/think a thought",
    "/say one\n/run printf two\n/write two.txt two",
    "/fail on purpose",
    "/say before the sleep\n/sleep 5",  # interrupted
]


async def outages(store: FailingStore, rng: random.Random, stop: trio.Event) -> None:
    """The store goes down now and then, sometimes for longer than the retry policy."""
    while not stop.is_set():
        with trio.move_on_after(rng.uniform(0.05, 0.5)):
            await stop.wait()
        store.down = not stop.is_set()
        await trio.sleep(rng.uniform(0.05, 1.0))
        store.down = False


async def retried(attempt: Callable[[], Awaitable[T]]) -> T:
    """The first attempt not refused for a failing store (each refusal is checked)."""
    while True:
        try:
            return await attempt()
        except RpcError as exc:
            store_error_of(exc)
            await trio.sleep(0.05)


async def long_outage(
    url: str, told: Told, cwd: Path, store: FailingStore, started: dict[str, list[str]]
) -> None:
    """One outage that surely outlasts the retry policy while a turn runs: that turn ends
    failed with the store's reason."""
    async with client_of(url, told) as client:
        thread_id = await retried(lambda: new_thread(client, cwd=str(cwd), **NEVER))
        ids = started[thread_id] = []
        script = "/say held\n/sleep 0.2\n/say up"
        while True:  # until a turn is seen running (the random failures may end it early)
            turn_id = await retried(lambda: start_turn(client, thread_id, script))
            ids.append(turn_id)
            event = await client.next_notification(where=of_thread(thread_id))
            while not (
                event["method"] == "turn/completed"
                or (event["method"] == "item/completed" and event["params"]["item"].get("text"))
            ):
                event = await client.next_notification(where=of_thread(thread_id))
            if event["method"] == "item/completed":
                break
            await client.next_notification("thread/status/changed", where=of_thread(thread_id))
        store.held = True
        await trio.sleep(1.0)
        store.held = False
        await collect_turn(client, thread_id, turn_id)
        done = told.turns[(thread_id, turn_id)]
        assert done["status"] == "failed" and "store at" in done["error"]["message"], done


async def fuzz_worker(
    url: str, told: Told, cwd: Path, rng: random.Random, turns: int, started: dict[str, list[str]]
) -> None:
    async with client_of(url, told) as client:
        thread_id = await retried(lambda: new_thread(client, cwd=str(cwd), **NEVER))
        ids = started[thread_id] = []
        while len(ids) < turns:
            script = rng.choice(SCRIPTS)
            try:
                turn_id = await start_turn(client, thread_id, script)
            except RpcError as exc:
                store_error_of(exc)  # nothing was stored: no turn (checked at the end)
                await trio.sleep(0.05)
                continue
            ids.append(turn_id)
            if "/sleep 5" in script:
                await trio.sleep(rng.uniform(0.0, 0.3))
                params = {"threadId": thread_id, "turnId": turn_id}
                try:
                    await client.request("turn/interrupt", params)
                except RpcError as exc:
                    if exc.data.get("kind") != "turnNotActive":
                        store_error_of(exc)  # stopped; its end is stored later
            events = await collect_turn(client, thread_id, turn_id)
            assert_well_ordered([e for e in events if e["method"] != "error"])


async def fuzz_round(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int, threads: int, turns: int
) -> tuple[Told, FailingStore]:
    opened = install(monkeypatch)
    data = tmp_path / f"data-{seed}"
    cwd = tmp_path / f"cwd-{seed}"
    cwd.mkdir()
    started: dict[str, list[str]] = {}
    with trio.fail_after(TIMEOUT * 2):
        async with ws_server(data, retry(0.3)) as (_, url):
            store = opened[-1]
            store.rng, store.rate = random.Random(seed + 1), 0.12
            told = Told(store)
            stop = trio.Event()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(outages, store, random.Random(seed + 2), stop)
                nursery.start_soon(long_outage, url, told, cwd, store, started)
                async with trio.open_nursery() as workers:
                    for n in range(threads):
                        worker_rng = random.Random(seed * 100 + n)
                        workers.start_soon(fuzz_worker, url, told, cwd, worker_rng, turns, started)
                stop.set()
            store.rate, store.down = 0.0, False
            assert not told.violations, told.violations[:5]
            async with client_of(url, told) as client:
                before = await read_all(client, list(started))
            for thread_id, thread in before.items():
                told.check(thread_id, thread, started[thread_id], restarted=False)
        told.store = None  # the store reopened below is checked against what was told
        async with ws_server(data, retry(0.3)) as (_, url), client_of(url, told) as client:
            after = await read_all(client, list(started))
    for thread_id, thread in after.items():
        told.check(thread_id, thread, started[thread_id], restarted=True)
        assert thread["turns"] == before[thread_id]["turns"]
    # Every turn ended and was told (the store recovered by itself).
    assert len(told.turns) == sum(len(ids) for ids in started.values())
    return told, store


async def test_random_write_failures_never_announce_what_is_not_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    told, store = await fuzz_round(tmp_path, monkeypatch, seed=13, threads=6, turns=12)
    assert store.injected > 20
    assert any(e["willRetry"] for e in told.errors)
    statuses = {t["status"] for t in told.turns.values()}
    assert {"completed", "failed"} <= statuses, statuses
    gave_up = [t for t in told.turns.values() if t["error"] and "store at" in t["error"]["message"]]
    assert gave_up, "no turn outlasted the retry policy"


@pytest.mark.slow
async def test_random_write_failures_many_rounds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for seed in range(20):
        await fuzz_round(tmp_path, monkeypatch, seed=seed, threads=6, turns=20)


async def test_chosen_failures_of_each_turn_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A single failure of each write a turn makes is retried and told once (`error`,
    willRetry); the turn then completes as if nothing had happened."""
    opened = install(monkeypatch)
    async with ws_server(tmp_path / "data", retry(5.0)) as (_, url):
        store = opened[-1]
        told = Told(store)
        async with client_of(url, told) as client:
            thread_id = await new_thread(client, cwd=str(tmp_path), **NEVER)
            ids = []
            for method in ("put_item", "finish_turn"):
                store.fail_next[method] = 1
                store.pass_first[method] = 1 if method == "put_item" else 0  # not the input
                turn_id = await start_turn(client, thread_id, "/say hi there")
                ids.append(turn_id)
                await collect_turn(client, thread_id, turn_id)
                assert told.turns[(thread_id, turn_id)]["status"] == "completed"
            # The input's write fails: the turn starts and stores it before it runs.
            store.fail_next["put_item"] = 1
            turn_id = await start_turn(client, thread_id, "/say after the input")
            ids.append(turn_id)
            await collect_turn(client, thread_id, turn_id)
            assert [i["type"] for i in told.items[(thread_id, turn_id)]] == [
                "userMessage",
                "agentMessage",
            ]
            # start_turn itself fails: the request is refused and nothing is stored.
            store.fail_next["start_turn"] = 1
            error = await rpc_error(
                client, "turn/start", {"threadId": thread_id, "input": text_input("/say no")}
            )
            assert "database or disk is full" in store_error_of(error)
            store.fail_next["create_thread"] = 1
            store_error_of(await rpc_error(client, "thread/start", {"cwd": str(tmp_path)}))
            assert len(told.store_errors(thread_id, will_retry=True)) == 3
            assert not told.store_errors(thread_id, will_retry=False)
            assert not told.violations
            thread = await stored_thread(client, thread_id)
            told.check(thread_id, thread, ids, restarted=False)
            listed = await client.request("thread/list", {})
            assert [t["id"] for t in listed["data"]] == [thread_id]


# --- a real lock: another connection holds the database past the busy timeout -------------


class WriteLock:
    """Another SQLite connection holding the write lock of the real file."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.conn: sqlite3.Connection | None = None

    async def acquire(self) -> None:
        def take() -> sqlite3.Connection:
            conn = sqlite3.connect(
                self.db, timeout=10, isolation_level=None, check_same_thread=False
            )
            conn.execute("BEGIN EXCLUSIVE")
            return conn

        self.conn = await trio.to_thread.run_sync(take)

    async def release(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:

            def give_back() -> None:
                conn.execute("ROLLBACK")
                conn.close()

            await trio.to_thread.run_sync(give_back)


async def next_store_error(client: Client, thread_id: str) -> Message:
    error = await client.next_notification("error", where=of_thread(thread_id))
    params: Message = error["params"]
    assert params["willRetry"] is True, params
    return params


async def test_locked_database_refuses_requests_and_keeps_serving(tmp_path: Path) -> None:
    data = tmp_path / "data"
    lock = WriteLock(data / DB)
    told = Told()
    with trio.fail_after(TIMEOUT):
        async with ws_server(data, retry(2.0)) as (_, url), client_of(url, told) as client:
            thread_id = await new_thread(client, cwd=str(tmp_path), **NEVER)
            await lock.acquire()
            try:
                start = {"cwd": str(tmp_path)}
                reason = store_error_of(await rpc_error(client, "thread/start", start))
                assert "database is locked" in reason and DB in reason
                turn = {"threadId": thread_id, "input": text_input("/say no")}
                store_error_of(await rpc_error(client, "turn/start", turn))
                name = {"threadId": thread_id, "name": "renamed"}
                store_error_of(await rpc_error(client, "thread/name/set", name))
                # Reads go on; nothing of the refused requests shows.
                listed = await client.request("thread/list", {})
                assert [t["id"] for t in listed["data"]] == [thread_id]
                thread = await stored_thread(client, thread_id)
                assert thread["turns"] == [] and thread["name"] is None
            finally:
                await lock.release()
            # The store works again: so does the server, by itself.
            other = await new_thread(client, cwd=str(tmp_path), **NEVER)
            turn_id = await start_turn(client, other, "/say back")
            await collect_turn(client, other, turn_id)
            assert told.turns[(other, turn_id)]["status"] == "completed"
        async with ws_server(data, retry(2.0)) as (_, url), client_of(url, told) as client:
            told.check(thread_id, await stored_thread(client, thread_id), [], restarted=True)
            told.check(other, await stored_thread(client, other), [turn_id], restarted=True)


async def test_locked_database_turn_waits_and_completes(tmp_path: Path) -> None:
    """A lock held for less than the retry policy allows: `error` (willRetry) at once,
    nothing completed while it lasts, then the turn completes as stored."""
    data = tmp_path / "data"
    lock = WriteLock(data / DB)
    told = Told()
    with trio.fail_after(TIMEOUT):
        async with ws_server(data, retry(5.0)) as (_, url), client_of(url, told) as client:
            thread_id = await new_thread(client, cwd=str(tmp_path), **NEVER)
            turn_id = await start_turn(client, thread_id, "/sleep 0.3\n/say after the lock")
            await lock.acquire()
            try:
                error = await next_store_error(client, thread_id)
                assert "database is locked" in error["error"]["message"]
                await trio.sleep(0.5)
                key = (thread_id, turn_id)
                assert [i["type"] for i in told.items[key]] == ["userMessage"]
                assert key not in told.turns
            finally:
                await lock.release()
            events = await collect_turn(client, thread_id, turn_id)
            assert_well_ordered([e for e in events if e["method"] != "error"])
            assert told.turns[key]["status"] == "completed"
            assert [i["type"] for i in told.items[key]] == ["userMessage", "agentMessage"]
            told.check(
                thread_id, await stored_thread(client, thread_id), [turn_id], restarted=False
            )
        async with ws_server(data, retry(5.0)) as (_, url), client_of(url, told) as client:
            told.check(thread_id, await stored_thread(client, thread_id), [turn_id], restarted=True)


async def test_locked_database_past_the_retry_policy_fails_the_turn(tmp_path: Path) -> None:
    """Held longer than the retry policy allows: the turn ends failed with the store's
    reason, announced (and stored) once the lock is gone."""
    data = tmp_path / "data"
    lock = WriteLock(data / DB)
    told = Told()
    with trio.fail_after(TIMEOUT):
        async with ws_server(data, retry(0.6)) as (_, url), client_of(url, told) as client:
            thread_id = await new_thread(client, cwd=str(tmp_path), **NEVER)
            turn_id = await start_turn(client, thread_id, "/sleep 0.3\n/say during the lock")
            key = (thread_id, turn_id)
            await lock.acquire()
            try:
                await next_store_error(client, thread_id)
                await trio.sleep(1.5)  # well past the retry policy
                assert key not in told.turns
                assert not told.store_errors(thread_id, will_retry=False)
                thread = await stored_thread(client, thread_id)  # reads still work
                assert thread["status"]["type"] == "active"
            finally:
                await lock.release()
            await collect_turn(client, thread_id, turn_id)
            done = told.turns[key]
            assert done["status"] == "failed"
            assert "database is locked" in done["error"]["message"]
            assert told.store_errors(thread_id, will_retry=False) == [done["error"]["message"]]
            # The agent's message was complete; it is stored and told as it was left.
            said = told.items[key][-1]
            assert (said["type"], said["text"]) == ("agentMessage", "during the lock")
            told.check(
                thread_id, await stored_thread(client, thread_id), [turn_id], restarted=False
            )
            # The server goes on.
            again = await start_turn(client, thread_id, "/say recovered")
            await collect_turn(client, thread_id, again)
            assert told.turns[(thread_id, again)]["status"] == "completed"
        async with ws_server(data, retry(0.6)) as (_, url), client_of(url, told) as client:
            thread = await stored_thread(client, thread_id)
            told.check(thread_id, thread, [turn_id, again], restarted=True)


async def test_shutdown_while_locked_tells_nothing_it_did_not_store(tmp_path: Path) -> None:
    """The store never works again before shutdown: no turn/completed was sent, and the
    restarted server reads the turn interrupted with exactly the items that were told."""
    data = tmp_path / "data"
    lock = WriteLock(data / DB)
    told = Told()
    with trio.fail_after(TIMEOUT):
        try:
            policy = retry(0.5)
            serving = ws_server(data, policy, shutdown_timeout=0.3)
            async with serving as (server, url), client_of(url, told) as client:
                thread_id = await new_thread(client, cwd=str(tmp_path), **NEVER)
                turn_id = await start_turn(client, thread_id, "/sleep 0.3\n/say never stored")
                await lock.acquire()
                await next_store_error(client, thread_id)
                with trio.fail_after(10):  # bounded, though the store never came back
                    await server.shutdown()
            assert (thread_id, turn_id) not in told.turns
            assert [i["type"] for i in told.items[(thread_id, turn_id)]] == ["userMessage"]
        finally:
            await lock.release()
        async with ws_server(data, retry(0.5)) as (_, url), client_of(url, told) as client:
            thread = await stored_thread(client, thread_id)
            told.check(thread_id, thread, [turn_id], restarted=True)
            assert thread["turns"][0]["status"] == "interrupted"


# --- a real full disk: the data dir on a 3 MB tmpfs ------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a 3 MB tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)]
    done = subprocess.run(mount, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path) -> Path:
    """Fill the disk to the last page; returns the filler file."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 16, 4096, 512):
            chunk = b"\0" * size
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, chunk)
        with pytest.raises(OSError) as full:
            os.write(fd, b"\0" * 4096)
        assert full.value.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


async def full_disk_turn(disk: Path, policy: StoreRetry, hold: float) -> tuple[Told, str, str]:
    """Run a turn whose big message meets a full disk for `hold` seconds; returns what
    was told, after checking it against the store and a restarted server."""
    data = disk / "data"
    told = Told()
    with trio.fail_after(TIMEOUT):
        async with ws_server(data, policy) as (_, url), client_of(url, told) as client:
            thread_id = await new_thread(client, cwd=str(disk), **NEVER)
            warm = await start_turn(client, thread_id, "/say before the disk filled")
            await collect_turn(client, thread_id, warm)
            turn_id = await start_turn(client, thread_id, "/sleep 0.3\n/stream 500 100")
            filler = await trio.to_thread.run_sync(fill, disk)
            try:
                error = await next_store_error(client, thread_id)
                assert "database or disk is full" in error["error"]["message"]
                big = {"cwd": str(disk), "baseInstructions": "x" * 200_000}
                reason = store_error_of(await rpc_error(client, "thread/start", big))
                assert "database or disk is full" in reason
                await trio.sleep(hold)
                assert (thread_id, turn_id) not in told.turns
            finally:
                filler.unlink()
            await collect_turn(client, thread_id, turn_id)
            thread = await stored_thread(client, thread_id)
            told.check(thread_id, thread, [warm, turn_id], restarted=False)
            listed = await client.request("thread/list", {})
            assert [t["id"] for t in listed["data"]] == [thread_id]
        async with ws_server(data, policy) as (_, url), client_of(url, told) as client:
            thread = await stored_thread(client, thread_id)
            told.check(thread_id, thread, [warm, turn_id], restarted=True)
    return told, thread_id, turn_id


async def test_full_disk_turn_waits_and_completes(small_disk: Path) -> None:
    told, thread_id, turn_id = await full_disk_turn(small_disk, retry(10.0), hold=0.5)
    assert told.turns[(thread_id, turn_id)]["status"] == "completed"
    streamed = told.items[(thread_id, turn_id)][-1]
    assert (streamed["type"], len(streamed["text"])) == ("agentMessage", 500 * 100)


async def test_full_disk_past_the_retry_policy_fails_the_turn(small_disk: Path) -> None:
    told, thread_id, turn_id = await full_disk_turn(small_disk, retry(0.5), hold=1.5)
    done = told.turns[(thread_id, turn_id)]
    assert done["status"] == "failed"
    assert "database or disk is full" in done["error"]["message"]
