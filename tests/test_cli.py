"""The real CLI as a subprocess (PROTOCOL.md §2.1, §8.8)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from appserver._version import __version__
from appserver.cli import build_parser, config_from_args
from appserver.client import connect_websocket, spawn_stdio

from support import SchemaChecker, appserver_argv, run_ws_server

TIMEOUT = 30


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        appserver_argv(*args),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )


def test_version() -> None:
    done = run_cli("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"appserver {__version__}"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--bogus"], "unrecognized arguments"),
        (["--listen", "tcp://x:1"], "--listen"),
        (["--listen", "ws://example.com:1"], "IP literal or localhost"),
        (["--listen", "ws://0.0.0.0:0"], "without --ws-token-file"),
        (["--max-inflight", "0"], "positive integer"),
        (["--log-level", "loud"], "--log-level"),
        (["--data-dir", "/x", "--in-memory"], "not allowed with"),
        (["--ws-token-file", "/nonexistent/token"], "cannot read"),
        (["--listen", "off"], "no transport configured"),
        (["--listen", "ws://0.0.0.0:0", "--ws-issuer", "x"], "require --ws-auth signed"),
        (["--ws-auth", "capability-token"], "--ws-token-sha256 is required"),
        (["--ws-auth", "bogus"], "--ws-auth"),
        (["--ws-token-sha256", "zz"], "64-character hex"),
        (["--ws-auth", "signed-bearer-token"], "--ws-shared-secret-file is required"),
        (["--ws-max-clock-skew-seconds", "-1"], "non-negative"),
    ],
)
def test_bad_flags_exit_2_with_one_line(args: list[str], needle: str) -> None:
    done = run_cli(*args)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], done.stderr
    assert done.stdout == ""


def test_help_lists_schema_listeners_and_every_default() -> None:
    done = run_cli("--help")
    assert done.returncode == 0
    for needle in ("appserver schema --out DIR", "unix://PATH", "--ws-auth MODE", "off "):
        assert needle in done.stdout, needle
    for action in build_parser()._actions:
        if action.dest not in ("help", "version"):
            assert action.help and "default" in action.help, action.option_strings


def test_non_loopback_host_with_auth_is_accepted() -> None:
    digest = "ab" * 32
    args = ["--listen", "ws://0.0.0.0:0", "--ws-auth", "capability-token"]
    config = config_from_args([*args, "--ws-token-sha256", digest])
    assert config.ws_auth == "capability-token" and config.ws_token_sha256 == digest


def test_unusable_socket_path_exits_2(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a dir")
    done = run_cli("--in-memory", "--listen", f"unix://{blocker}/s.sock")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"cannot listen on unix://{blocker}/s.sock" in lines[0]


def test_unusable_data_dir_exits_2(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a dir")
    done = run_cli("--listen", "ws://127.0.0.1:0", "--data-dir", str(blocker / "sub"))
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert "unusable data dir" in done.stderr


def test_port_in_use_exits_2() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        done = run_cli("--in-memory", "--listen", f"ws://127.0.0.1:{port}")
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr


def test_missing_data_dir_is_created(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "data"
    proc = subprocess.Popen(
        appserver_argv("--data-dir", str(target)),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, _ = proc.communicate(b"", timeout=TIMEOUT)  # immediate EOF: clean exit
    assert proc.returncode == 0 and out == b""
    assert target.is_dir()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_banner_two_clients_and_signal_exit_0(
    signum: signal.Signals, schema_checker: SchemaChecker
) -> None:
    with trio.fail_after(TIMEOUT):
        async with run_ws_server("--in-memory") as server:
            assert server.url.startswith("ws://127.0.0.1:")
            assert int(server.url.rsplit(":", 1)[1]) > 0
            async with connect_websocket(server.url) as one, connect_websocket(server.url) as two:
                one.observer = two.observer = schema_checker.check
                assert (await one.initialize("one"))["userAgent"].endswith("(one/0)")
                assert (await two.initialize("two"))["userAgent"].endswith("(two/0)")
                server.process.send_signal(signum)
                await one.wait_closed()
                await two.wait_closed()
                assert one.close_code == 1001
            assert await server.process.wait() == 0
        banner = [ln for ln in server.stderr_lines if ln.startswith("appserver listening")]
        assert banner == [f"appserver listening on {server.url}"]


async def test_banner_is_plain_text_with_log_json() -> None:
    with trio.fail_after(TIMEOUT):
        async with (
            run_ws_server("--in-memory", "--log-json", "--log-level", "debug") as server,
            connect_websocket(server.url) as client,
        ):
            await client.initialize("j")
        assert server.process.returncode == 0
        records = [
            json.loads(line)  # every other stderr line is a JSON log record
            for line in server.stderr_lines
            if not line.startswith("appserver listening on ")
        ]
        assert records and all(r["level"] in ("debug", "info") for r in records)


async def test_stdio_writes_only_protocol_to_stdout_and_exits_on_eof() -> None:
    with trio.fail_after(TIMEOUT):
        async with spawn_stdio(["--in-memory", "--log-level", "debug"]) as client:
            await client.initialize("stdio")
            await client.send_raw("{oops")
            err = await client.next_notification()
            assert err["error"]["code"] == -32700
        assert client.process is not None and client.process.returncode == 0


def test_stdio_answers_requests_before_eof() -> None:
    lines = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {"clientInfo": {"name": "pipe", "version": "1"}},
        },
        {"jsonrpc": "2.0", "method": "initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "nope"},
    ]
    done = subprocess.run(
        appserver_argv("--in-memory"),
        input="".join(json.dumps(m) + "\n" for m in lines),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, done.stderr
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert [a["id"] for a in answers] == [1, 2]
    assert answers[0]["result"]["userAgent"] == f"appserver/{__version__} (pipe/1)"
    assert answers[1]["error"]["code"] == -32601


def test_layering_is_kept() -> None:
    """protocol/ and jsonrpc/ import no trio; threads/ never imports connection.py;
    transports/ know no methods (ARCHITECTURE.md)."""
    rules = {
        "appserver.protocol": {"trio", "appserver.connection", "appserver.jsonrpc"},
        "appserver.jsonrpc": {"trio", "appserver.connection"},
        "appserver.transports": {
            "appserver.connection",
            "appserver.handlers",
            "appserver.protocol.methods",
        },
        "appserver.store": {"appserver.connection", "appserver.handlers", "appserver.threads"},
        "appserver.agents": {"appserver.connection", "appserver.handlers", "appserver.store"},
        "appserver.threads": {"appserver.connection", "appserver.handlers", "appserver.server"},
    }
    for package, forbidden in rules.items():
        code = (
            "import importlib, pkgutil, sys\n"
            f"pkg = importlib.import_module({package!r})\n"
            "for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
            "    importlib.import_module(m.name)\n"
            "print('\\n'.join(sorted(sys.modules)))\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        loaded = set(done.stdout.split())
        bad = {m for m in loaded for f in forbidden if m == f or m.startswith(f + ".")}
        assert not bad, f"{package} imports {sorted(bad)}"


def test_data_dir_with_a_corrupt_store_exits_2(tmp_path: Path) -> None:
    (tmp_path / "appserver.sqlite3").write_bytes(b"this is not a database" * 100)
    done = run_cli("--listen", "ws://127.0.0.1:0", "--data-dir", str(tmp_path))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "unusable data dir" in lines[0]
    assert "appserver.sqlite3" in lines[0]


async def test_overloaded_carries_retry_after_ms() -> None:
    """PROTOCOL.md §1.1, §2.4: -32001 tells an SDK when to retry (data.retryAfterMs)."""
    from appserver.protocol.errors import RETRY_AFTER_MS

    with trio.fail_after(TIMEOUT):
        async with spawn_stdio(["--in-memory", "--max-inflight", "1"]) as client:
            await client.initialize("busy")
            lines = [
                json.dumps({"jsonrpc": "2.0", "id": 100 + i, "method": "thread/list"})
                for i in range(2)
            ]
            await client.send_raw("\n".join(lines))  # one write: both arrive together
            answers = {a["id"]: a for a in [await client.next_notification() for _ in range(2)]}
    assert "result" in answers[100]
    error = answers[101]["error"]
    assert error["code"] == -32001
    assert error["data"] == {"kind": "overloaded", "retryAfterMs": RETRY_AFTER_MS}
    assert 100 <= RETRY_AFTER_MS <= 1000
