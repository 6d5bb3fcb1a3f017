"""Why appserver-client's spinner and prompt are not rich's (docs/client-cli.md, "Why the
spinner and the prompt are not rich's"): measured under a real pty, with the installed rich.

A child process plays the CLI's situation: an agent message streams in deltas, so a
partial line is open on stdout while the spinner would run on stderr (same terminal).
The pty's bytes go through a tiny terminal model (`screen`); the assertions record what
rich does, so an upgrade of rich that changes it fails here and the choice can be
revisited. Run alone: `.venv/bin/python -m pytest -q tests/test_client_cli_rich.py`.

`rich.prompt.Prompt` does read /dev/tty from a worker thread; what it cannot do is tell
end of input from an empty answer (the last test).
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import subprocess
import sys
import termios
import time

import pytest

TIMEOUT = 20

# The child: a partial line "partial" is open, a spinner runs for 0.5 s, then the line
# ends with " answer". Exactly what appserver-client does while a delta stream pauses.
STATUS_CHILD = """
import sys, time
from rich.console import Console
from rich.live import Live
from rich.spinner import Spinner
console = Console(stderr=True)  # what console.status() builds, with the redirect visible
with Live(Spinner("dots", "working"), console=console, refresh_per_second=20, **KW):
    sys.stdout.write("partial"); sys.stdout.flush()
    time.sleep(0.5)
    sys.stdout.write(" answer\\n"); sys.stdout.flush()
sys.stdout.write("done\\n"); sys.stdout.flush()
"""

PROMPT_CHILD = """
import trio
from rich.console import Console
from rich.prompt import Prompt
from rich.text import Text

async def main():
    tty_in = open("/dev/tty", encoding="utf-8")
    tty_out = open("/dev/tty", "w", encoding="utf-8")
    console = Console(file=tty_out)
    Prompt.prompt_suffix = ""
    ask = lambda: Prompt.ask(Text("? run `ls` — allow? [y/N/a] "), console=console,
                             stream=tty_in)
    answer = await trio.to_thread.run_sync(ask, abandon_on_cancel=True)
    print("answer=" + answer, flush=True)

trio.run(main)
"""

CSI = re.compile(r"\x1b\[(\??)([0-9;]*)([A-Za-z])")


def screen(data: bytes) -> list[str]:
    """What a terminal shows for `data`: text, \\r, \\n, CSI A (up), K / 2K (erase);
    other escapes (colours, cursor visibility) are ignored."""
    rows: list[list[str]] = [[]]
    row = col = 0
    text = data.decode(errors="replace")
    i = 0
    while i < len(text):
        match = CSI.match(text, i)
        if match:
            private, args, final = match.groups()
            if not private and final == "A":
                row = max(0, row - int(args or 1))
            elif not private and final == "K":
                line = rows[row]
                if args == "2":
                    line.clear()
                else:
                    del line[col:]
            i = match.end()
            continue
        char = text[i]
        i += 1
        if char == "\r":
            col = 0
        elif char == "\n":
            row, col = row + 1, 0
            if row == len(rows):
                rows.append([])
        elif char >= " ":
            line = rows[row]
            line.extend(" " * (col - len(line)))
            if col < len(line):
                line[col] = char
            else:
                line.append(char)
            col += 1
    return ["".join(r).rstrip() for r in rows]


def run_in_pty(code: str, typed: bytes = b"", wait_for: bytes = b"") -> bytes:
    """Run `python -c code` with a pty as its controlling terminal and stdio; type
    `typed` once `wait_for` has appeared; return everything it printed."""
    master, slave = os.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env={**os.environ, "TERM": "xterm", "COLUMNS": "80"},
        start_new_session=True,
        preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),  # after setsid
    )
    os.close(slave)
    out = b""
    deadline = time.monotonic() + TIMEOUT
    try:
        while (left := deadline - time.monotonic()) > 0:
            if typed and wait_for in out:
                os.write(master, typed)
                typed = b""
            ready, _, _ = select.select([master], [], [], left)
            if not ready:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        assert proc.wait(TIMEOUT) == 0, out
    finally:
        os.close(master)
    return out


def test_rich_live_with_its_stdout_redirect_breaks_a_partial_line_in_two() -> None:
    """Default `Live`/`Status` (redirect_stdout=True): rich replaces sys.stdout by a proxy
    that prints what was flushed as a whole line above the spinner, so the streamed
    "partial" gets a newline it never had and the rest of the line lands on the next
    row: one line of the answer becomes two."""
    out = run_in_pty(STATUS_CHILD.replace("**KW", ""))
    shown = screen(out)
    assert "partial answer" not in shown
    assert shown[:2] == ["partial", " answer"], shown
    assert out.count(b"working") >= 5, out  # the spinner ran meanwhile


def test_rich_status_without_redirect_erases_the_partial_line() -> None:
    """`Status(redirect_stdout=False)`: the partial line is written at once, but each
    refresh is `\\r` + erase-line on the same row, so the terminal loses "partial" and
    the line ends up as the rest alone."""
    out = run_in_pty(STATUS_CHILD.replace("**KW", "redirect_stdout=False"))
    assert out.index(b"partial") < out.rindex(b"working")  # written before the frames
    shown = screen(out)
    assert "partial answer" not in shown
    assert not any(line.startswith("partial") for line in shown), shown


@pytest.mark.parametrize("answer", ["y", "a"])
def test_rich_prompt_reads_dev_tty_from_a_worker_thread(answer: str) -> None:
    """`Prompt.ask(..., stream=open('/dev/tty'))` run by `trio.to_thread.run_sync` works:
    the question line stays intact (a `Text`, so `[y/N/a]` is not read as markup)."""
    prompt = "? run `ls` — allow? [y/N/a] "
    out = run_in_pty(PROMPT_CHILD, typed=f"{answer}\n".encode(), wait_for=b"[y/N/a]")
    shown = screen(out)
    assert prompt + answer in shown, shown
    assert f"answer={answer}" in shown


def test_rich_prompt_cannot_tell_end_of_input_from_an_empty_answer() -> None:
    """Ctrl-D at the question and a bare Enter both come back as "" from `Prompt.ask`
    (it strips what `readline` gave), and after Ctrl-D the question line is left open:
    the next output joins it. appserver-client's own prompt tells the two apart and ends
    the question line at end of input."""
    eof = screen(run_in_pty(PROMPT_CHILD, typed=b"\x04", wait_for=b"[y/N/a]"))
    enter = screen(run_in_pty(PROMPT_CHILD, typed=b"\n", wait_for=b"[y/N/a]"))
    assert "answer=" in enter  # Enter: the answer on a line of its own
    assert "? run `ls` — allow? [y/N/a] answer=" in eof, eof  # same value, line joined
