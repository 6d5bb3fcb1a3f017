"""Browser tests: a real appserver process and Debian's chromium driven by Playwright's
sync API (no `playwright install`: the browser is /usr/bin/chromium). Without chromium or
playwright the tests are skipped, except under CI=true where that is a failure."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import pytest

from support import appserver_argv

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

CHROMIUM = Path(os.environ.get("APPSERVER_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 10_000


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright)"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (.ci/install-chromium.sh installs it)"
    return None


def require_browser() -> None:
    reason = missing_browser()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser tests cannot run under CI: {reason}")
    pytest.skip(reason)


@contextmanager
def launch_browser() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    # `launch` gives the browser a fresh temporary profile (user-data-dir) of its own.
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=30_000
        )
        try:
            yield browser
        finally:
            browser.close()


@attrs.define
class WebServer:
    """A real `appserver --listen ws://127.0.0.1:0` process."""

    process: subprocess.Popen[bytes]
    ws_url: str
    stderr: list[str]

    @property
    def url(self) -> str:
        return self.ws_url.replace("ws://", "http://", 1) + "/"

    @property
    def origin(self) -> str:
        return self.ws_url.replace("ws://", "http://", 1)


@contextmanager
def run_web_server(*args: str, cwd: Path | None = None) -> Iterator[WebServer]:
    """The server runs in `cwd` (the threads' default cwd: where /write writes)."""
    argv = appserver_argv("--listen", "ws://127.0.0.1:0", "--in-memory", *args)
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=cwd)
    assert process.stderr is not None
    lines: list[str] = []
    banner = threading.Event()

    def drain() -> None:
        assert process.stderr is not None
        for raw in process.stderr:
            line = raw.decode(errors="replace").rstrip("\n")
            lines.append(line)
            if line.startswith("appserver listening on "):
                banner.set()
        banner.set()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        if not banner.wait(20) or process.poll() is not None:
            raise AssertionError("server did not start: " + "\n".join(lines))
        url = next(ln for ln in lines if ln.startswith("appserver listening on "))
        yield WebServer(process, url.removeprefix("appserver listening on "), lines)
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(5)
        process.stderr.close()


@attrs.define
class Tab:
    """A page with its console errors and uncaught exceptions recorded."""

    page: Page
    errors: list[str] = attrs.Factory(list)

    @classmethod
    def open(cls, context: BrowserContext, url: str | None = None) -> Tab:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        tab = cls(page)

        def on_console(message: Any) -> None:
            if message.type == "error":
                tab.errors.append(f"console: {message.text}")

        page.on("console", on_console)
        page.on("pageerror", lambda error: tab.errors.append(f"uncaught: {error}"))
        if url is not None:
            page.goto(url)
        return tab


@contextmanager
def serve_html(html: str) -> Iterator[str]:
    """Serve one HTML page at / on 127.0.0.1 (another origin); yields that origin."""
    body = html.encode()

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
