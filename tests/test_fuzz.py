"""Fuzzing the wire (PROTOCOL.md §1, §1.1, §9): hypothesis generates JSON-RPC frames from
the METHODS table — valid, mutated, truncated, wrong types, huge numbers, deep nesting,
invalid UTF-8, NUL bytes, lone surrogates — and sends them to one long-lived real server
over stdio and one over websocket (both with a real --data-dir). After every example the
fuzzing connection still answers a valid request, a bystander connection is unaffected,
and the SQLite store passes `PRAGMA integrity_check` (checked periodically and at the end
through a separate read-only connection)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_support import (
    INIT_PARAMS,
    TIMEOUT,
    CliProcess,
    FuzzContext,
    Message,
    RawPeer,
    RawStdio,
    TrioPortal,
    cli_server,
    deep_nesting,
    fuzz_batch,
    integrity_check,
    raw_stdio,
    raw_websocket,
    read_until,
    text_input,
)

from appserver.client import Client, connect_websocket

CI_EXAMPLES = 200
SLOW_EXAMPLES = 2500
INTEGRITY_EVERY = 50

# Figures for docs/reliability.md (printed with -s).
TRIED: dict[str, int] = {}


@attrs.define(eq=False)
class FuzzEnv:
    portal: TrioPortal
    data_dir: Path
    ctx: FuzzContext
    peer: RawPeer | None  # the stdio peer (one connection for the whole test)
    ws: CliProcess | None
    bystander: Client | None
    bystander_thread: str = ""
    examples: int = 0
    internal_errors: int = 0  # -32603 answers seen (must stay 0)
    log: Path | None = None  # the stdio server's stderr
    probe_ids: Iterator[int] = attrs.Factory(itertools.count)


async def _seed(peer: RawPeer, cwd: Path) -> tuple[str, ...]:
    ids = []
    for i in range(3):
        result = await peer.result(f"seed-{i}", "thread/start", {"cwd": str(cwd)})
        ids.append(result["thread"]["id"])
    await peer.result("seed-turn", "turn/start", {"threadId": ids[0], "input": text_input("hi")})
    return tuple(ids)


def _make_env(tmp: Path, transport: str) -> FuzzEnv:
    portal = TrioPortal()
    data_dir, cwd = tmp / "data", tmp / "cwd"
    cwd.mkdir()
    args = ("--data-dir", str(data_dir), "--log-level", "error")
    if transport == "stdio":
        log = tmp / "server.log"
        peer: RawPeer = portal.enter(raw_stdio(*args, cwd=cwd, stderr_path=log))

        async def setup_stdio() -> tuple[str, ...]:
            with trio.fail_after(TIMEOUT):
                await peer.result("init", "initialize", INIT_PARAMS)
                return await _seed(peer, cwd)

        ids = portal.run(setup_stdio)
        env = FuzzEnv(portal, data_dir, FuzzContext(ids, str(cwd)), peer, None, None)
        env.log = log
        return env
    server = portal.enter(cli_server(*args, cwd=cwd))
    bystander = portal.enter(connect_websocket(server.url))

    async def setup_ws() -> tuple[tuple[str, ...], str]:
        with trio.fail_after(TIMEOUT):
            await bystander.initialize("bystander")
            mine = (await bystander.request("thread/start", {"cwd": str(cwd)}))["thread"]["id"]
            async with raw_websocket(server.url) as seeder:
                await seeder.result("init", "initialize", INIT_PARAMS)
                ids = await _seed(seeder, cwd)
            return ids, mine

    ids, mine = portal.run(setup_ws)
    return FuzzEnv(portal, data_dir, FuzzContext(ids, str(cwd)), None, server, bystander, mine)


@pytest.fixture(scope="module")
def stdio_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzEnv]:
    env = _make_env(tmp_path_factory.mktemp("fuzz-stdio"), "stdio")
    yield env
    env.portal.close()


@pytest.fixture(scope="module")
def ws_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzEnv]:
    env = _make_env(tmp_path_factory.mktemp("fuzz-ws"), "websocket")
    yield env
    env.portal.close()


async def _probe(peer: RawPeer, env: FuzzEnv) -> None:
    """The connection still answers a valid request correctly."""
    probe_id = f"probe-{next(env.probe_ids)}"
    answer = await peer.call(probe_id, "thread/read", {"threadId": env.ctx.thread_ids[0]})
    assert answer.get("result", {}).get("thread", {}).get("id") == env.ctx.thread_ids[0], answer


async def _bystander_ok(env: FuzzEnv) -> None:
    assert env.bystander is not None
    result = await env.bystander.request("thread/read", {"threadId": env.bystander_thread})
    assert result["thread"]["id"] == env.bystander_thread
    assert not env.bystander.closed
    # Subscription isolation: only broadcasts of other threads reach the bystander.
    for note in env.bystander.drain_notifications():
        params = note.get("params") or {}
        if params.get("threadId") not in (None, env.bystander_thread):
            assert note["method"].startswith("thread/"), note


def _after_example(env: FuzzEnv) -> None:
    env.examples += 1
    if env.examples % INTEGRITY_EVERY == 0:
        assert integrity_check(env.data_dir) == "ok"


def run_stdio_example(env: FuzzEnv, frames: list[bytes]) -> None:
    peer = env.peer
    assert isinstance(peer, RawStdio)

    async def example() -> None:
        with trio.fail_after(TIMEOUT):
            for frame in frames:
                await peer.send_frame(frame)
            await _probe(peer, env)
            peer.received.clear()
            env.internal_errors = peer.internal_errors

    env.portal.run(example)
    _after_example(env)


def run_ws_example(env: FuzzEnv, frames: list[bytes]) -> None:
    ws = env.ws
    assert ws is not None

    async def example() -> None:
        with trio.fail_after(TIMEOUT):
            async with raw_websocket(ws.url) as peer:
                await peer.result("init", "initialize", INIT_PARAMS)
                for frame in frames:
                    try:
                        text = frame.decode("utf-8")
                    except UnicodeDecodeError:
                        await peer.send_frame(frame)  # binary frame: ignored (§1)
                        await peer.send_frame(frame.decode("utf-8", "replace"))
                    else:
                        await peer.send_frame(text)
                await _probe(peer, env)
                env.internal_errors += peer.internal_errors
            await _bystander_ok(env)

    env.portal.run(example)
    _after_example(env)


def _finish(env: FuzzEnv, name: str) -> None:
    TRIED[name] = TRIED.get(name, 0) + env.examples
    print(f"\n[fuzz] {name}: {env.examples} examples, -32603 answers: {env.internal_errors}")

    async def last_turn() -> None:
        if env.bystander is None:
            return
        with trio.fail_after(TIMEOUT):
            started = await env.bystander.request(
                "turn/start",
                {"threadId": env.bystander_thread, "input": text_input("/say still here")},
            )
            turn_id = started["turn"]["id"]
            done = await env.bystander.next_notification(
                "turn/completed", where=lambda p: p["turn"]["id"] == turn_id
            )
            assert done["params"]["turn"]["status"] == "completed"

    env.portal.run(last_turn)
    assert integrity_check(env.data_dir) == "ok"
    assert env.internal_errors == 0, f"{env.internal_errors} internal errors (-32603)"


FUZZ_SETTINGS: dict[str, Any] = dict(
    deadline=None,
    database=None,
    derandomize=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# Hypothesis warns when a composite's draws were all trivial (e.g. sampled_from a single
# key); harmless here, and an error under filterwarnings=error.
IGNORE_TRIVIAL_COMPOSITE = pytest.mark.filterwarnings(
    "ignore::hypothesis.errors.HypothesisDeprecationWarning"
)


def _frames(env: FuzzEnv, data: st.DataObject) -> list[bytes]:
    frames: list[bytes] = data.draw(fuzz_batch(env.ctx), label="frames")
    return frames


@IGNORE_TRIVIAL_COMPOSITE
@settings(max_examples=CI_EXAMPLES, **FUZZ_SETTINGS)
@given(data=st.data())
def test_fuzz_stdio(stdio_env: FuzzEnv, data: st.DataObject) -> None:
    run_stdio_example(stdio_env, _frames(stdio_env, data))


@IGNORE_TRIVIAL_COMPOSITE
@settings(max_examples=CI_EXAMPLES, **FUZZ_SETTINGS)
@given(data=st.data())
def test_fuzz_websocket(ws_env: FuzzEnv, data: st.DataObject) -> None:
    run_ws_example(ws_env, _frames(ws_env, data))


@pytest.mark.slow
@IGNORE_TRIVIAL_COMPOSITE
@settings(max_examples=SLOW_EXAMPLES, **FUZZ_SETTINGS)
@given(data=st.data())
def test_fuzz_stdio_long(stdio_env: FuzzEnv, data: st.DataObject) -> None:
    run_stdio_example(stdio_env, _frames(stdio_env, data))


@pytest.mark.slow
@IGNORE_TRIVIAL_COMPOSITE
@settings(max_examples=SLOW_EXAMPLES, **FUZZ_SETTINGS)
@given(data=st.data())
def test_fuzz_websocket_long(ws_env: FuzzEnv, data: st.DataObject) -> None:
    run_ws_example(ws_env, _frames(ws_env, data))


def test_fuzz_stores_stay_intact_and_serving(stdio_env: FuzzEnv, ws_env: FuzzEnv) -> None:
    """Runs after the fuzz tests of this module: a final turn and integrity check."""
    _finish(stdio_env, "stdio")
    _finish(ws_env, "websocket")


@pytest.mark.slow
def test_fuzz_stores_stay_intact_and_serving_long(stdio_env: FuzzEnv, ws_env: FuzzEnv) -> None:
    _finish(stdio_env, "stdio")
    _finish(ws_env, "websocket")


# --- deterministic extremes: deep nesting and huge documents ------------------------------


async def test_deep_nesting_and_huge_documents_do_not_blow_up(tmp_path: Path) -> None:
    """Nesting 100,000 deep and documents just under the 8 MiB limit are answered with an
    error (or a result), never a crash: the same connection answers right after."""
    data_dir = tmp_path / "data"
    async with raw_stdio("--data-dir", str(data_dir), "--log-level", "error", cwd=tmp_path) as p:
        with trio.fail_after(TIMEOUT * 2):
            await p.result("i", "initialize", INIT_PARAMS)
            thread = (await p.result("t", "thread/start", {"cwd": str(tmp_path)}))["thread"]
            for depth in (1_000, 10_000, 100_000, 1_000_000):
                for kind in ("list", "dict"):
                    await p.send_frame(deep_nesting(depth, kind))
                    answer = await read_until(p, lambda m: "method" not in m)
                    # Too deep to parse: -32700 with id null; else answered by id.
                    assert answer.get("id") in ("deep", None), answer
                    assert "error" in answer or "result" in answer, answer
                    await p.result(f"after-{depth}-{kind}", "thread/list")
            for raw in (b"[" * 7_000_000, b'{"a":' * 1_500_000):
                await p.send_frame(raw)
                msg: Message = await read_until(p, lambda m: "method" not in m)
                assert msg["id"] is None and msg["error"]["code"] in (-32700, -32600), msg
                await p.result("after-raw", "thread/list")
            # A 1,048,577-character text input: inputTooLarge, nothing stored.
            big = "x" * 1_048_577
            answer = await p.call(
                "big", "turn/start", {"threadId": thread["id"], "input": text_input(big)}
            )
            assert answer["error"]["data"]["kind"] == "inputTooLarge", answer["error"]
            # An 8 MB document of many small values: answered (an error), not a crash.
            many = {"threadId": thread["id"], "input": [text_input("y")[0]] * 150_000}
            answer = await p.call("many", "turn/start", many)
            assert "error" in answer or "result" in answer
            read = await p.result("r", "thread/read", {"threadId": thread["id"]})
            assert read["thread"]["id"] == thread["id"]
    assert integrity_check(data_dir) == "ok"


# --- found by the long stdio fuzz run -------------------------------------------------------


async def test_stdio_invalid_utf8_inside_a_string_is_a_parse_error(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    async with raw_stdio("--data-dir", str(data_dir), "--log-level", "error", cwd=tmp_path) as p:
        with trio.fail_after(TIMEOUT):
            await p.result("i", "initialize", INIT_PARAMS)
            thread = (await p.result("t", "thread/start", {"cwd": str(tmp_path)}))["thread"]
            # A lone surrogate written raw (CESU-8 bytes ED A0 80): not valid UTF-8 (§1).
            line = (
                b'{"jsonrpc":"2.0","id":0,"method":"thread/name/set","params":{"threadId":"'
                + thread["id"].encode()
                + b'","name":"\xed\xa0\x80"}}'
            )
            await p.send_frame(line)
            answer = await read_until(p, lambda m: "method" not in m)
            assert answer["id"] is None, answer
            assert answer["error"]["code"] == -32700, answer
            assert answer["error"]["data"]["kind"] == "parseError", answer


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("thread/start", {"model": "\ud800"}),
        ("thread/name/set", {"name": "x\ud83d"}),
        ("turn/start", {"input": [{"type": "text", "text": "\ud800"}]}),
    ],
)
async def test_lone_surrogates_in_stored_strings_are_not_internal_errors(
    tmp_path: Path, method: str, params: dict[str, Any]
) -> None:
    data_dir = tmp_path / "data"
    async with raw_stdio("--data-dir", str(data_dir), "--log-level", "error", cwd=tmp_path) as p:
        with trio.fail_after(TIMEOUT):
            await p.result("i", "initialize", INIT_PARAMS)
            thread = (await p.result("t", "thread/start", {"cwd": str(tmp_path)}))["thread"]
            if method != "thread/start":
                params = {"threadId": thread["id"], **params}
            else:
                params = {"cwd": str(tmp_path), **params}
            # ensure_ascii: the frame is valid UTF-8 carrying the escape \ud800
            await p.send_frame(json.dumps({"id": "s", "method": method, "params": params}))
            answer = await p.answer_to("s")
            assert "result" in answer or answer["error"]["code"] == -32602, answer
            await p.result("after", "thread/read", {"threadId": thread["id"]})
    assert integrity_check(data_dir) == "ok"
