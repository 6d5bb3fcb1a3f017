"""`appserver-client` as a subprocess against real servers (spawned stdio and websocket)."""

from __future__ import annotations

import fcntl
import json
import os
import select
import shlex
import socket
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

import attrs
import trio

from appserver.client import connect_websocket

from support import ServerProcess, run_ws_server

TIMEOUT = 30
CLIENT_ARGV = [sys.executable, "-m", "appserver.client_cli"]


@attrs.frozen
class Done:
    returncode: int
    stdout: str
    stderr: str


def base_env(env: dict[str, str] | None = None) -> dict[str, str]:
    out = {**os.environ, "NO_COLOR": "1", **(env or {})}
    out.pop("APPSERVER_URL", None)
    out.update(env or {})
    return out


async def cli(
    *args: str, stdin: bytes = b"", env: dict[str, str] | None = None, cwd: Path | None = None
) -> Done:
    with trio.fail_after(TIMEOUT):
        proc = await trio.run_process(
            [*CLIENT_ARGV, *args],
            stdin=stdin,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env=base_env(env),
            cwd=cwd,
            start_new_session=True,  # no controlling terminal: nothing to ask on
        )
    return Done(proc.returncode, proc.stdout.decode(), proc.stderr.decode())


def thread_id_in(done: Done) -> str:
    """`send` prints `thread <id> (new)` first."""
    first = done.stdout.splitlines()[0]
    assert first.startswith("thread "), done.stdout
    return first.split()[1]


async def test_send_yes_then_threads_and_read_over_stdio(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    sent = await cli("send", "--data-dir", data, "--yes", "/run echo hi")
    assert sent.returncode == 0, sent.stderr
    assert "hi" in sent.stdout.splitlines()
    assert "turn completed" in sent.stdout
    thread_id = thread_id_in(sent)
    assert f"--thread {thread_id}" in sent.stderr
    # Request ids are not shown to humans: neither the word nor a JSON-RPC id.
    shown = (sent.stdout + sent.stderr).lower()
    assert "request" not in shown and '"id"' not in shown and "id:" not in shown, shown

    again = await cli("send", "--data-dir", data, "--thread", thread_id, "second", "message")
    assert again.returncode == 0, again.stderr
    assert "You said: second message" in again.stdout

    listed = await cli("threads", "--data-dir", data)
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split()[:3] == ["ID", "STATUS", "UPDATED"]
    assert row.startswith(thread_id) and "notLoaded" in row and "/run echo hi" in row

    read = await cli("read", "--data-dir", data, thread_id)
    assert read.returncode == 0, read.stderr
    lines = read.stdout.splitlines()
    assert lines[0] == f"thread {thread_id}"
    for expected in ["> /run echo hi", "$ echo hi", "hi", "> second message"]:
        assert expected in lines, read.stdout
    assert read.stdout.count("── turn completed") == 2

    as_json = await cli("read", "--data-dir", data, "--json", thread_id)
    turns = json.loads(as_json.stdout)["thread"]["turns"]
    assert [turn["status"] for turn in turns] == ["completed", "completed"]


async def test_approvals_from_piped_stdin_over_websocket(tmp_path: Path) -> None:
    async with run_ws_server("--data-dir", str(tmp_path)) as server:
        url = ["--url", server.url]
        # Default with stdin not a terminal: declined, with a message saying why.
        plain = await cli("send", *url, "/run echo plain")
        assert plain.returncode == 0, plain.stderr
        assert "declined: no terminal to ask on" in plain.stderr
        assert "✗ declined" in plain.stdout and "plain" not in plain.stdout.splitlines()

        # --approve-from-stdin: one line per request, in order.
        piped = await cli(
            "send", *url, "--approve-from-stdin", "/run echo one && echo two", stdin=b"y\nn\n"
        )
        assert piped.returncode == 0, piped.stderr
        out = piped.stdout.splitlines()
        assert "one" in out and "two" not in out
        assert "approval: accept" in out and "approval: decline" in out
        thread_id = thread_id_in(piped)

        async with connect_websocket(server.url) as client:
            await client.initialize("test")
            read = await client.request(
                "thread/read", {"threadId": thread_id, "includeTurns": True}
            )
        command = read["thread"]["turns"][0]["items"][-1]
        assert command["type"] == "commandExecution" and command["status"] == "declined"
        assert command["aggregatedOutput"] == "one\n"

        # End of input declines too.
        eof = await cli("send", *url, "--approve-from-stdin", "/run echo never", stdin=b"")
        assert eof.returncode == 0 and "(end of input)" in eof.stderr
        assert "never" not in eof.stdout.splitlines()


async def test_json_lines_include_turn_completed() -> None:
    done = await cli("send", "--in-memory", "--json", "--yes", "/say hello json\n/run echo hi")
    assert done.returncode == 0, done.stderr
    messages = [json.loads(line) for line in done.stdout.splitlines()]
    methods = [m.get("method") for m in messages]
    assert "turn/completed" in methods
    assert "item/commandExecution/requestApproval" in methods
    deltas = [
        m["params"]["delta"] for m in messages if m.get("method") == "item/agentMessage/delta"
    ]
    assert "".join(deltas) == "hello json"
    assert any("result" in m and "thread" in m["result"] for m in messages)
    assert "accepted (--yes)" in done.stderr  # human notes go to stderr with --json

    listed = await cli("threads", "--in-memory", "--json")
    assert json.loads(listed.stdout) == {"data": [], "nextCursor": None, "backwardsCursor": None}


async def test_watch_sees_a_turn_started_by_another_client(tmp_path: Path) -> None:
    async with (
        run_ws_server("--data-dir", str(tmp_path)) as server,
        connect_websocket(server.url) as client,
    ):
        await client.initialize("test")
        thread_id = (await client.request("thread/start"))["thread"]["id"]
        argv = [*CLIENT_ARGV, "watch", "--url", server.url, thread_id, "--until-turn-completed"]
        with trio.fail_after(TIMEOUT):
            proc = await trio.lowlevel.open_process(
                argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "NO_COLOR": "1"},
            )
            assert proc.stdout is not None and proc.stderr is not None
            output = b""
            while b"watching thread" not in output:  # subscribed once this is printed
                chunk = await proc.stdout.receive_some()
                assert chunk, "watch exited early"
                output += chunk
            await client.request(
                "turn/start",
                {"threadId": thread_id, "input": [{"type": "text", "text": "/say from elsewhere"}]},
            )
            async for chunk in proc.stdout:
                output += chunk
            assert await proc.wait() == 0
    text = output.decode()
    assert "from elsewhere" in text.splitlines()
    assert "── turn completed" in text
    assert "· status active" in text


async def test_exit_codes() -> None:
    # The clients are independent processes: they run concurrently (each pays its own
    # start-up), and each result is checked as before.
    missing = "01a20280-49d5-7ad7-bc52-b1f1b13631e6"
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    usages = (["send"], ["threads", "--limit", "0"], ["read", "--url", "http://x", "id"])
    done: dict[str, Done] = {}

    async def run(key: str, args: list[str]) -> None:
        done[key] = await cli(*args)

    # One server for the thread commands (each --in-memory run starts a server of its own).
    async with run_ws_server("--in-memory", "--log-level", "warning") as server:
        url = ["--url", server.url]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run, "failed", ["send", "--in-memory", "/fail boom"])  # private
            nursery.start_soon(run, "not_found", ["read", *url, missing])
            nursery.start_soon(run, "resume_missing", ["send", *url, "--thread", missing, "hi"])
            nursery.start_soon(run, "watch_missing", ["watch", *url, missing])
            nursery.start_soon(run, "malformed", ["read", *url, "not-a-uuid"])
            nursery.start_soon(run, "refused", ["threads", "--url", f"ws://127.0.0.1:{port}"])
            for n, bad in enumerate(usages):
                nursery.start_soon(run, f"usage{n}", [*bad])

    assert done["failed"].returncode == 1
    assert "turn failed: boom" in done["failed"].stdout
    not_found = done["not_found"]
    assert not_found.returncode == 4  # not a usage error
    assert not_found.stderr.strip() == f"appserver-client: error: thread not found: {missing}"
    resume_missing = done["resume_missing"]
    assert resume_missing.returncode == 4 and "thread not found" in resume_missing.stderr
    watch_missing = done["watch_missing"]
    assert watch_missing.returncode == 4 and "thread not found" in watch_missing.stderr
    malformed = done["malformed"]
    assert malformed.returncode == 2 and "not a UUID" in malformed.stderr
    refused = done["refused"]
    assert refused.returncode == 3 and "cannot connect" in refused.stderr
    for n, bad in enumerate(usages):
        usage = done[f"usage{n}"]
        assert usage.returncode == 2, bad
        assert usage.stderr.startswith("appserver-client: error: "), usage.stderr
        assert usage.stdout == ""


def continue_hint(done: Done) -> list[str]:
    """The `continue with:` command of a `send`, as a shell would split it, MESSAGE
    replaced by a real message, run with this interpreter."""
    (line,) = [ln for ln in done.stderr.splitlines() if ln.startswith("continue with: ")]
    words = shlex.split(line.removeprefix("continue with: "))
    assert words[0] == "appserver-client" and words[-1] == "MESSAGE", words
    return [*words[1:-1], "next", "message"]


async def loaded_threads(server: ServerProcess) -> list[str]:
    async with connect_websocket(server.url) as client:
        await client.initialize("observer")
        result = await client.request("thread/loaded/list")
    return list(result["data"])


async def test_without_url_the_client_uses_the_server_running_on_the_data_dir(
    tmp_path: Path,
) -> None:
    """No --url, no --data-dir: the default data dir ($APPSERVER_HOME here) has a running
    server, so the client talks to it instead of starting a second server on it."""
    home = {"APPSERVER_HOME": str(tmp_path / "home")}
    async with run_ws_server(env=home) as server:
        sent = await cli("send", "--yes", "/run echo hi", env=home)
        assert sent.returncode == 0, sent.stderr
        assert "hi" in sent.stdout.splitlines()
        thread_id = thread_id_in(sent)
        # The thread lives in that server: loaded there, visible to its other clients.
        assert thread_id in await loaded_threads(server)
        async with connect_websocket(server.url) as client:
            await client.initialize("other")
            read = await client.request(
                "thread/read", {"threadId": thread_id, "includeTurns": True}
            )
        assert [turn["status"] for turn in read["thread"]["turns"]] == ["completed"]
        listed = await cli("threads", env=home)
        assert listed.returncode == 0, listed.stderr
        (row,) = listed.stdout.splitlines()[1:]
        assert row.startswith(thread_id) and "idle" in row  # loaded: that server's view
        # $APPSERVER_URL names it too (with another, empty default data dir).
        elsewhere = {"APPSERVER_HOME": str(tmp_path / "elsewhere"), "APPSERVER_URL": server.url}
        by_env = await cli("threads", env=elsewhere)
        assert by_env.returncode == 0, by_env.stderr
        assert by_env.stdout.splitlines()[1].startswith(thread_id)
        # --in-memory / --data-dir choose a server and win over $APPSERVER_URL.
        private = await cli("threads", "--in-memory", env=elsewhere)
        assert private.returncode == 0 and private.stdout.strip() == "no threads"
        # --data-dir naming the same directory finds it too.
        read_cli = await cli("read", "--data-dir", home["APPSERVER_HOME"], thread_id)
        assert read_cli.returncode == 0 and "$ echo hi" in read_cli.stdout


async def test_the_continue_hint_works_when_copy_pasted(tmp_path: Path) -> None:
    # The default data dir is elsewhere and empty: a hint that leaves out how this
    # `send` connected would start a server that does not know the thread.
    elsewhere = {"APPSERVER_HOME": str(tmp_path / "elsewhere")}
    data = tmp_path / "data"

    # Over --url: the hint carries the --url.
    async with run_ws_server("--data-dir", str(data)) as server:
        first = await cli("send", "--url", server.url, "first", env=elsewhere)
        assert first.returncode == 0, first.stderr
        thread_id = thread_id_in(first)
        again = await cli(*continue_hint(first), env=elsewhere)
        assert again.returncode == 0, again.stderr
        assert "You said: next message" in again.stdout
        assert thread_id_in(again) == thread_id
    # A private stdio server on --data-dir (none running now): the hint carries the
    # data dir, absolute, so it works from any directory.
    own = await cli("send", "--data-dir", str(data), "third", env=elsewhere)
    assert own.returncode == 0, own.stderr
    hint = continue_hint(own)
    assert hint[hint.index("--data-dir") + 1] == str(data)
    again = await cli(*hint, env=elsewhere)
    assert again.returncode == 0, again.stderr
    read = await cli("read", "--data-dir", str(data), "--json", thread_id_in(own))
    texts = [
        t["items"][0]["content"][0]["text"] for t in json.loads(read.stdout)["thread"]["turns"]
    ]
    assert texts == ["third", "next message"]
    # In memory there is nothing to continue: no hint.
    gone = await cli("send", "--in-memory", "hello")
    assert gone.returncode == 0 and "continue with" not in gone.stderr


async def test_a_stale_record_is_skipped_and_a_unix_listener_is_reached(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with run_ws_server("--data-dir", str(data)) as server:
        server.process.kill()  # leaves its URL recorded in the lock file
        await server.process.wait()
    stale = await cli("threads", "--data-dir", str(data))
    assert stale.returncode == 0, stale.stderr  # refused: fell back to a private server
    with tempfile.TemporaryDirectory(prefix="as-", dir="/tmp") as short:
        sock_path = Path(short) / "s.sock"
        async with run_ws_server(
            "--data-dir", str(data), "--listen", f"unix://{sock_path}"
        ) as unix_server:
            assert unix_server.url == f"unix://{sock_path}"
            sent = await cli("send", "--data-dir", str(data), "over unix")
            assert sent.returncode == 0, sent.stderr
            listed = await cli("threads", "--url", unix_server.url)
            (row,) = listed.stdout.splitlines()[1:]
            assert row.startswith(thread_id_in(sent)) and "idle" in row


async def test_bad_appserver_url_and_wss_to_a_plain_listener(tmp_path: Path) -> None:
    bad = await cli("threads", env={"APPSERVER_URL": "http://x"})
    assert bad.returncode == 2
    assert "$APPSERVER_URL: expected ws://HOST:PORT" in bad.stderr
    async with run_ws_server("--data-dir", str(tmp_path)) as server:
        wss = "wss://" + server.url.removeprefix("ws://")
        refused = await cli("threads", "--url", wss, "--connect-timeout", "1")
    assert refused.returncode == 3, refused.stderr
    assert refused.stderr.startswith(f"appserver-client: error: cannot connect to {wss}: ")
    assert "no handshake within 1 s (is it serving TLS?)" in refused.stderr
    assert "Traceback" not in refused.stderr and len(refused.stderr.splitlines()) == 1


async def test_new_threads_default_to_the_current_directory(tmp_path: Path) -> None:
    here = tmp_path / "project"
    here.mkdir()
    data = str(tmp_path / "data")
    sent = await cli("send", "--data-dir", data, "--yes", "/run pwd", cwd=here)
    assert sent.returncode == 0, sent.stderr
    assert str(here.resolve()) in sent.stdout.splitlines()
    read = await cli("read", "--data-dir", data, "--json", thread_id_in(sent))
    assert json.loads(read.stdout)["thread"]["cwd"] == str(here)


async def test_threads_pages_with_a_cursor(tmp_path: Path) -> None:
    async with run_ws_server("--data-dir", str(tmp_path / "data")) as server:
        await paging(server)


async def paging(server: ServerProcess) -> None:
    ids = []
    async with connect_websocket(server.url) as client:  # `send` is tested above
        await client.initialize("seed")
        for text in ("first", "second", "third"):
            started = await client.request("thread/start")
            thread_id = started["thread"]["id"]
            words = [{"type": "text", "text": text}]
            await client.request("turn/start", {"threadId": thread_id, "input": words})
            with trio.fail_after(TIMEOUT):
                done = await client.next_notification("turn/completed")  # one at a time
            assert done["params"]["threadId"] == thread_id
            ids.append(thread_id)
    seen: list[str] = []
    args = ["threads", "--url", server.url, "--limit", "2"]
    page = await cli(*args)
    while True:
        assert page.returncode == 0, page.stderr
        rows = page.stdout.splitlines()
        assert rows[0].startswith("ID")
        seen += [row.split()[0] for row in rows[1:]]
        more = [ln for ln in page.stderr.splitlines() if ln.startswith("more threads: ")]
        if not more:
            break
        cursor = shlex.split(more[0].split("--cursor ", 1)[1])[0]
        page = await cli(*args, "--cursor", cursor)
    assert seen == ids[::-1]  # newest first, each once
    every = await cli(*args, "--all")
    assert [row.split()[0] for row in every.stdout.splitlines()[1:]] == ids[::-1]
    assert "more threads" not in every.stderr
    bad = await cli(*args, "--cursor", "nonsense")
    assert bad.returncode == 2 and "invalid cursor" in bad.stderr


# --- under a real pseudo-terminal -------------------------------------------------------

SPINNER_FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


@attrs.define
class Terminal:
    """A CLI subprocess whose controlling terminal is a pty (stdin too, unless piped)."""

    proc: subprocess.Popen[bytes]
    master: int
    screen: bytes = b""

    @classmethod
    def spawn(
        cls, *args: str, piped_stdin: bytes | None = None, cwd: Path | None = None
    ) -> Terminal:
        master, slave = os.openpty()
        ctty = 0 if piped_stdin is None else 1

        def take_terminal() -> None:  # runs in the child after setsid
            fcntl.ioctl(ctty, termios.TIOCSCTTY, 0)

        proc = subprocess.Popen(
            [*CLIENT_ARGV, *args],
            stdin=slave if piped_stdin is None else subprocess.PIPE,
            stdout=slave,
            stderr=slave,
            env=base_env({"TERM": "xterm", "COLUMNS": "200"}),
            cwd=cwd,
            start_new_session=True,
            preexec_fn=take_terminal,
        )
        os.close(slave)
        if piped_stdin is not None:
            assert proc.stdin is not None
            proc.stdin.write(piped_stdin)
            proc.stdin.close()
        return cls(proc, master)

    def read(self, seconds: float) -> bytes:
        """What arrives within `seconds` (b"" at end of output)."""
        ready, _, _ = select.select([self.master], [], [], seconds)
        if not ready:
            return b""
        try:
            chunk = os.read(self.master, 65536)
        except OSError:  # EIO: the child closed the terminal
            return b""
        self.screen += chunk
        return chunk

    def expect(self, text: str) -> None:
        deadline = time.monotonic() + TIMEOUT
        while text.encode() not in self.screen:
            left = deadline - time.monotonic()
            assert left > 0, f"{text!r} not seen in {self.screen.decode(errors='replace')!r}"
            if not self.read(left) and self.proc.poll() is not None:
                raise AssertionError(f"exited before {text!r}: {self.screen!r}")

    def quiet_for(self, seconds: float) -> bytes:
        """Everything printed during `seconds` (to show that nothing is)."""
        got = b""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            got += self.read(left)
        return got

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def finish(self) -> int:
        while self.read(TIMEOUT) or self.proc.poll() is None:
            pass
        os.close(self.master)
        return self.proc.wait(TIMEOUT)

    def lines(self) -> list[str]:
        """The screen as a terminal shows it: each line's text after its last `\\r`."""
        text = self.screen.decode(errors="replace").replace("\x1b[K", "")
        return [line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n")]


def test_the_spinner_never_draws_over_the_approval_prompt(tmp_path: Path) -> None:
    term = Terminal.spawn("send", "--in-memory", "/sleep 1\n/run echo approved", cwd=tmp_path)
    term.expect("working…")  # the spinner runs while the turn is silent
    prompt = f"? run `echo approved` in {tmp_path} — allow? [y/N/a] "
    term.expect(prompt)
    after_prompt = term.quiet_for(1.2)  # the spinner would redraw after 0.4 s idle
    assert after_prompt == b"", after_prompt
    term.type("y\n")
    assert term.finish() == 0, term.screen
    lines = term.lines()
    (prompt_line,) = [ln for ln in lines if "allow? [y/N/a]" in ln]
    assert prompt_line == prompt + "y"
    assert not set(SPINNER_FRAMES) & set(prompt_line)
    assert "approved" in lines and "approval: accept" in lines


def test_a_piped_message_is_approved_on_the_controlling_terminal(tmp_path: Path) -> None:
    term = Terminal.spawn("send", "--in-memory", "-", piped_stdin=b"/run echo piped", cwd=tmp_path)
    term.expect("— allow? [y/N/a] ")
    term.type("n\n")
    assert term.finish() == 0, term.screen
    lines = term.lines()
    assert "approval: decline" in lines and "piped" not in lines
    assert "✗ declined" in lines
    assert not any("no terminal" in ln for ln in lines)


def test_help_lists_examples_exit_codes_and_the_environment() -> None:
    done = subprocess.run(
        [*CLIENT_ARGV, "--help"], capture_output=True, text=True, env=base_env(), check=True
    )
    assert "examples:" in done.stdout and "APPSERVER_URL" in done.stdout
    assert "4  thread not found" in done.stdout and "3  cannot connect" in done.stdout
