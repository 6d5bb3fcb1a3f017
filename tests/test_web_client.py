"""The browser client (WEB-CLIENT.md) end to end: a real appserver process serves the page
and Debian's headless chromium, driven by Playwright, uses it as a person would, by roles
and names. One browser for the module; a fresh server and browser context per test."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from web_support import (
    Tab,
    WebServer,
    launch_browser,
    require_browser,
    run_web_server,
    serve_html,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Locator, Page

LINES = "".join(f"echo line{i}; sleep 0.25; " for i in range(1, 9))
ALPHABET = "abcdefghijklmnopqrstuvwxyz"


def stream_text(count: int, size: int = 8) -> str:
    total = count * size
    return (ALPHABET * (total // 26 + 1))[:total]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    require_browser()
    with launch_browser() as launched:
        yield launched


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport={"width": 1200, "height": 800})
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[WebServer]:
    with run_web_server(cwd=tmp_path) as running:
        yield running


def button(page: Page, name: str) -> Locator:
    return page.get_by_role("button", name=name, exact=True)


def threads(page: Page) -> Locator:
    return page.get_by_role("list", name="Threads", exact=True).get_by_role("listitem")


def items(page: Page, kind: str) -> Locator:
    return page.locator(f'[data-item-type="{kind}"]')


def connected(page: Page) -> None:
    from playwright.sync_api import expect

    expect(page.get_by_role("status")).to_have_text("connected")
    expect(button(page, "New thread")).to_be_enabled()


def new_thread(page: Page) -> str:
    from playwright.sync_api import expect

    before = threads(page).count()
    button(page, "New thread").click()
    expect(threads(page)).to_have_count(before + 1)
    expect(page.get_by_role("textbox", name="Message", exact=True)).to_be_enabled()
    thread_id = page.locator("li.open").get_attribute("data-thread-id")
    assert thread_id
    return thread_id


def send(page: Page, text: str) -> None:
    page.get_by_role("textbox", name="Message", exact=True).fill(text)
    button(page, "Send").click()


def entry(page: Page, thread_id: str) -> Locator:
    return page.locator(f'li[data-thread-id="{thread_id}"]')


def status_of(page: Page, thread_id: str) -> Locator:
    return entry(page, thread_id).locator("[data-thread-status]")


def unique_ids(page: Page) -> None:
    ids = page.locator("[data-item-id]").evaluate_all("els => els.map(e => e.dataset.itemId)")
    assert len(ids) == len(set(ids)), ids


def test_a_turn_with_an_approval_in_one_tab(
    server: WebServer, context: BrowserContext, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    tab = Tab.open(context, server.url)
    page = tab.page
    connected(page)
    expect(page.get_by_role("textbox", name="Message", exact=True)).to_be_disabled()
    expect(button(page, "Send")).to_be_disabled()
    other = Tab.open(context, server.url)  # another client: its thread appears live
    connected(other.page)
    started_elsewhere = new_thread(other.page)
    expect(entry(page, started_elsewhere)).to_be_visible()
    expect(status_of(page, started_elsewhere)).to_have_attribute("data-thread-status", "idle")

    thread_id = new_thread(page)
    text = (
        "first line\n  second line\n/think weighing it\n/run echo from-the-shell\n/write a.txt hi"
    )
    send(page, text)
    expect(status_of(page, thread_id)).to_have_attribute("data-thread-status", "active")
    expect(status_of(page, thread_id)).to_contain_text("active")
    expect(button(page, "Interrupt")).to_be_enabled()
    expect(items(page, "userMessage")).to_have_text(text)
    expect(items(page, "agentMessage").first).to_have_text(
        "You said: first line\n  second line", use_inner_text=False
    )
    expect(items(page, "reasoning")).to_contain_text("weighing it")
    command = items(page, "commandExecution")
    expect(command).to_have_attribute("data-item-status", "inProgress")
    button(page, "Approve").click()
    expect(command).to_have_attribute("data-item-status", "completed")
    expect(command.locator("[data-item-output]")).to_have_text("from-the-shell\n")
    change = items(page, "fileChange")
    expect(change).to_contain_text("a.txt")
    button(page, "Decline").click()
    expect(change).to_have_attribute("data-item-status", "declined")
    expect(button(page, "Approve")).to_have_count(0)
    expect(status_of(page, thread_id)).to_have_text(re.compile("idle", re.I))
    expect(button(page, "Interrupt")).to_be_hidden()
    # The diff is shown as a diff, not JSON.
    expect(change.locator(".diff")).to_contain_text("+hi")
    assert not (tmp_path / "a.txt").exists()  # declined: not written
    unique_ids(page)
    assert tab.errors == [] and other.errors == []


def test_two_tabs_on_one_thread(server: WebServer, context: BrowserContext) -> None:
    from playwright.sync_api import expect

    first, second = Tab.open(context, server.url), Tab.open(context, server.url)
    connected(first.page)
    thread_id = new_thread(first.page)
    connected(second.page)
    entry(second.page, thread_id).get_by_role("button").click()
    expect(second.page.locator("li.open")).to_have_attribute("data-thread-id", thread_id)
    send(first.page, "/say hello both\n/run echo approved-in-two")
    for tab in (first, second):
        expect(items(tab.page, "agentMessage")).to_have_text("hello both")
        expect(button(tab.page, "Approve")).to_be_enabled()
        expect(button(tab.page, "Decline")).to_be_enabled()
    button(second.page, "Approve").click()
    for tab in (first, second):
        expect(button(tab.page, "Approve")).to_have_count(0)
        expect(button(tab.page, "Decline")).to_have_count(0)
        output = items(tab.page, "commandExecution").locator("[data-item-output]")
        expect(output).to_have_text("approved-in-two\n")
        expect(status_of(tab.page, thread_id)).to_have_attribute("data-thread-status", "idle")
        unique_ids(tab.page)
    assert first.errors == [] and second.errors == []


def test_reload_mid_turn_rejoins_without_gap_or_repeat(
    server: WebServer, context: BrowserContext
) -> None:
    from playwright.sync_api import expect

    tab = Tab.open(context, server.url)
    page = tab.page
    connected(page)
    thread_id = new_thread(page)
    send(page, f"/stream 300\n/run {LINES}\n/sleep 0.5\n/stream 200 5\n/run echo last")
    expect(items(page, "agentMessage").first).to_have_text(stream_text(300))
    button(page, "Approve").click()
    output = items(page, "commandExecution").first.locator("[data-item-output]")
    expect(output).to_contain_text("line2")
    page.reload()  # mid-command: output so far in the snapshot, the rest live
    connected(page)
    expect(status_of(page, thread_id)).to_have_attribute("data-thread-status", "active")
    entry(page, thread_id).get_by_role("button").click()
    command = items(page, "commandExecution").first
    expect(command).to_have_attribute("data-item-status", "completed")
    expected = "".join(f"line{i}\n" for i in range(1, 9))
    expect(command.locator("[data-item-output]")).to_have_text(expected)
    expect(items(page, "agentMessage")).to_have_count(2)
    expect(items(page, "agentMessage").nth(1)).to_have_text(stream_text(200, 5))
    expect(items(page, "agentMessage").first).to_have_text(stream_text(300))
    button(page, "Approve").click()  # the second command's request reached the new page
    expect(items(page, "commandExecution").nth(1).locator("[data-item-output]")).to_have_text(
        "last\n"
    )
    expect(status_of(page, thread_id)).to_have_attribute("data-thread-status", "idle")
    expect(items(page, "userMessage")).to_have_count(1)
    unique_ids(page)
    assert tab.errors == []


def test_reload_while_an_approval_is_pending(server: WebServer, context: BrowserContext) -> None:
    from playwright.sync_api import expect

    tab = Tab.open(context, server.url)
    page = tab.page
    connected(page)
    thread_id = new_thread(page)
    send(page, "/say before\n/run echo after-reload")
    expect(button(page, "Approve")).to_be_enabled()
    page.reload()
    connected(page)
    expect(button(page, "Approve")).to_have_count(0)  # no thread open yet
    entry(page, thread_id).get_by_role("button").click()
    expect(items(page, "agentMessage")).to_have_text("before")
    button(page, "Approve").click()
    output = items(page, "commandExecution").locator("[data-item-output]")
    expect(output).to_have_text("after-reload\n")
    expect(button(page, "Approve")).to_have_count(0)
    unique_ids(page)
    assert tab.errors == []


def test_interrupt(server: WebServer, context: BrowserContext) -> None:
    from playwright.sync_api import expect

    tab = Tab.open(context, server.url)
    page = tab.page
    connected(page)
    thread_id = new_thread(page)
    expect(button(page, "Interrupt")).to_be_hidden()
    send(page, "/say waiting\n/sleep 30\n/say never")
    expect(items(page, "agentMessage")).to_have_text("waiting")
    button(page, "Interrupt").click()
    expect(button(page, "Interrupt")).to_be_hidden()
    expect(status_of(page, thread_id)).to_have_attribute("data-thread-status", "idle")
    expect(items(page, "agentMessage")).to_have_count(1)
    # The thread takes another turn afterwards.
    send(page, "/say again")
    expect(items(page, "agentMessage").nth(1)).to_have_text("again")
    assert tab.errors == []


def test_token_flow(tmp_path: Path, context: BrowserContext) -> None:
    from playwright.sync_api import expect

    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token/+=é\n")
    with run_web_server("--ws-token-file", str(token_file), cwd=tmp_path) as server:
        tab = Tab.open(context, server.url)
        page = tab.page
        token = page.get_by_role("textbox", name="Token", exact=True)
        expect(token).to_be_visible()
        expect(button(page, "New thread")).to_be_disabled()
        token.fill("wrong")
        button(page, "Connect").click()
        expect(page.get_by_text("The server refused this token.")).to_be_visible()
        expect(token).to_be_visible()
        token.fill("s3cret-token/+=é")
        button(page, "Connect").click()
        connected(page)
        expect(token).to_be_hidden()
        thread_id = new_thread(page)
        page.reload()
        connected(page)  # the tab kept its token
        expect(token).to_be_hidden()
        expect(entry(page, thread_id)).to_be_visible()
        fresh = Tab.open(context, server.url)  # a new tab asks again
        expect(fresh.page.get_by_role("textbox", name="Token", exact=True)).to_be_visible()
        expect(button(fresh.page, "New thread")).to_be_disabled()
        log = "\n".join(server.stderr)
        assert "s3cret" not in log
    # The refused handshake is the browser's own console error; nothing else is.
    assert [e for e in tab.errors if "WebSocket connection to" not in e] == []
    assert fresh.errors == []


def test_origins(server: WebServer, context: BrowserContext) -> None:
    """The listener's own origin works as localhost and as 127.0.0.1; a foreign page's
    websocket is refused (403)."""
    from playwright.sync_api import expect

    port = server.ws_url.rsplit(":", 1)[1]
    tab = Tab.open(context, f"http://localhost:{port}/")
    connected(tab.page)
    assert tab.errors == []
    foreign = Tab.open(context)
    html = (
        "<!doctype html><title>foreign</title><script>"
        f"const ws = new WebSocket('{server.ws_url}/');"
        "ws.onopen = () => { document.title = 'opened'; };"
        "ws.onclose = (e) => { document.title = 'closed ' + e.code; };"
        "</script>"
    )
    # A page of another loopback origin (a real HTTP server: the browser's local network
    # access checks stop a public page before it reaches the server).
    with serve_html(html) as foreign_origin:
        foreign.page.goto(foreign_origin + "/")
        expect(foreign.page).to_have_title("closed 1006")
    assert any("403" in error for error in foreign.errors), foreign.errors
    assert f"refused websocket from origin '{foreign_origin}'" in "\n".join(server.stderr)
