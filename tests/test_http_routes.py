"""Plain HTTP on the websocket listener: /healthz, /readyz (as the Codex app-server serves
them) and Prometheus /metrics, scraped from a real server process over real HTTP."""

from __future__ import annotations

import hashlib
import signal
from typing import Any

import httpx
import trio
from prometheus_client.parser import text_string_to_metric_families

from appserver.client import connect_websocket
from appserver.metrics import Metrics
from appserver.testing import text_input

from support import run_ws_server

TIMEOUT = 20
TOKEN = "metrics-token-value"


def http_url(ws_url: str, path: str) -> str:
    return ws_url.replace("ws://", "http://", 1) + path


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of a text exposition."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_health_and_readiness_as_the_reference() -> None:
    with trio.fail_after(TIMEOUT):
        async with run_ws_server("--in-memory") as server, httpx.AsyncClient() as http:
            for path in ("/healthz", "/readyz", "/healthz?probe=1"):
                got = await http.get(http_url(server.url, path))
                assert (got.status_code, got.content) == (200, b""), path
                assert "content-type" not in got.headers
                assert got.headers["content-length"] == "0"
            head = await http.head(http_url(server.url, "/readyz"))
            assert head.status_code == 200
            posted = await http.post(http_url(server.url, "/healthz"))
            assert posted.status_code == 405
            assert posted.headers["allow"] == "GET,HEAD"
            other = await http.get(http_url(server.url, "/elsewhere"))  # "/" is the page
            assert other.status_code == 400
            assert other.text == "Connection header did not include 'upgrade'"
            foreign = await http.get(
                http_url(server.url, "/healthz"), headers={"Origin": "http://evil.example"}
            )
            assert foreign.status_code == 403
            # The websocket upgrade on the same port still works.
            async with connect_websocket(server.url) as client:
                await client.initialize("after-http")


async def run_turn(client: Any, thread_id: str, text: str) -> None:
    await client.request("turn/start", {"threadId": thread_id, "input": text_input(text)})
    await client.next_notification("turn/completed")


async def test_metrics_after_a_turn_with_two_subscribers() -> None:
    with trio.fail_after(TIMEOUT):
        async with run_ws_server("--in-memory") as server, httpx.AsyncClient() as http:
            url = http_url(server.url, "/metrics")
            before = await http.get(url)
            assert before.status_code == 200
            assert before.headers["content-type"].startswith("text/plain; version=")
            first = samples(before.text)
            assert first[("appserver_connections", ())] == 0
            async with (
                connect_websocket(server.url) as one,
                connect_websocket(server.url) as two,
            ):
                await one.initialize("one")
                await two.initialize("two")
                thread_id = (await one.request("thread/start", {}))["thread"]["id"]
                await two.request("thread/resume", {"threadId": thread_id})
                await run_turn(one, thread_id, "/say hello both")
                await two.next_notification("turn/completed")
                during = samples((await http.get(url)).text)
            assert during[("appserver_connections", ())] == 2
            assert during[("appserver_subscriptions", ())] == 2
            assert during[("appserver_loaded_threads", ())] == 1
            assert during[("appserver_running_turns", ())] == 0
            assert during[("appserver_pending_requests", ())] == 0
            assert during[("appserver_outbound_queued_frames", ())] >= 0
            assert during[("appserver_slow_consumer_drops_total", ())] == 0
            # Both subscribers got the turn's notifications: far more than the answers.
            delivered = during[("appserver_deliveries_total", ())]
            assert delivered > first.get(("appserver_deliveries_total", ()), 0) + 10
            start = (("method", "thread/start"),)
            assert during[("appserver_request_duration_seconds_count", start)] == 1
            assert during[("appserver_request_duration_seconds_sum", start)] > 0
            turn = (("method", "turn/start"),)
            assert during[("appserver_request_duration_seconds_count", turn)] == 1
            store_ops = {
                dict(labels)["operation"]
                for (name, labels), value in during.items()
                if name == "appserver_store_operation_duration_seconds_count" and value
            }
            assert "create_thread" in store_ops
            assert "finish_turn" in store_ops
            # The server notices the two closes on its own time: scrape until it has
            # (each scrape is a real round trip; the test's deadline bounds the wait).
            after = samples((await http.get(url)).text)
            while after[("appserver_connections", ())] != 0:
                after = samples((await http.get(url)).text)
            assert after[("appserver_deliveries_total", ())] >= delivered


async def test_metrics_need_the_token_when_one_is_configured() -> None:
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    args = ("--in-memory", "--ws-auth", "capability-token", "--ws-token-sha256", digest)
    with trio.fail_after(TIMEOUT):
        async with run_ws_server(*args) as server, httpx.AsyncClient() as http:
            url = http_url(server.url, "/metrics")
            refused = await http.get(url)
            assert refused.status_code == 401
            assert refused.text == "missing websocket bearer token"
            wrong = await http.get(url, headers={"Authorization": "Bearer nope"})
            assert (wrong.status_code, wrong.text) == (401, "invalid websocket bearer token")
            good = await http.get(url, headers={"Authorization": f"Bearer {TOKEN}"})
            assert good.status_code == 200
            assert ("appserver_connections", ()) in samples(good.text)
            # Health and readiness answer without a token.
            assert (await http.get(http_url(server.url, "/healthz"))).status_code == 200
            assert (await http.get(http_url(server.url, "/readyz"))).status_code == 200


async def test_not_ready_once_shutdown_begins() -> None:
    """A graceful shutdown waiting for a running turn stops the listener at once (§8.8):
    /readyz is no longer answered 200 while the process still runs."""
    with trio.fail_after(TIMEOUT):
        async with run_ws_server("--in-memory") as server, httpx.AsyncClient() as http:
            ready = http_url(server.url, "/readyz")
            assert (await http.get(ready)).status_code == 200
            async with connect_websocket(server.url) as client:
                await client.initialize("shutdown")
                thread_id = (await client.request("thread/start", {}))["thread"]["id"]
                await client.request(
                    "turn/start", {"threadId": thread_id, "input": text_input("/sleep 5")}
                )
                await client.next_notification("turn/started")
                server.process.send_signal(signal.SIGTERM)
                while True:  # until the listener has gone (no sleep: each try is a request)
                    try:
                        status = (await http.get(ready)).status_code
                    except httpx.TransportError:
                        break
                    assert status in (200, 503)
                assert server.process.returncode is None  # still waiting for the turn


def test_registries_are_per_server() -> None:
    one, two = Metrics(lambda: {"connections": 1}), Metrics(lambda: {"connections": 2})
    one.delivered(3)
    assert samples(one.render().decode())[("appserver_deliveries_total", ())] == 3
    assert samples(two.render().decode())[("appserver_deliveries_total", ())] == 0
    assert samples(two.render().decode())[("appserver_connections", ())] == 2
