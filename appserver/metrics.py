"""Prometheus metrics of one Server (`GET /metrics` on the websocket listener).

Each Server has its own `CollectorRegistry` (never prometheus_client's global one), so
several servers in one process do not collide. Gauges are read from the server's state at
scrape time by a custom collector (`state` returns `Server.statistics()`), so they cost
nothing on the hot path. The few hooks that count events are one call each: deliveries
once per batch the outbound task writes, request latency once per request, store latency
once per store call (`TimedStore`), slow-consumer drops once per drop.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE_LATEST", "NO_METRICS", "Metrics", "TimedStore"]

#: (metric name, help, key of Server.statistics())
GAUGES = (
    ("appserver_connections", "Open client connections.", "connections"),
    ("appserver_subscriptions", "Thread subscriptions of connections.", "subscriptions"),
    ("appserver_loaded_threads", "Threads loaded in memory.", "loaded"),
    ("appserver_running_turns", "Turns running now.", "running_turns"),
    (
        "appserver_pending_requests",
        "Server-to-client requests (approvals) awaiting an answer.",
        "pending_requests",
    ),
    ("appserver_inflight_requests", "Client requests being handled.", "inflight"),
    (
        "appserver_outbound_queued_frames",
        "Frames queued for writing, over all connections.",
        "queued",
    ),
)

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class _StateCollector(Collector):
    def __init__(self, state: Callable[[], Mapping[str, Any]]) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        stats = self._state()
        for name, help_text, key in GAUGES:
            yield GaugeMetricFamily(name, help_text, value=float(stats.get(key, 0)))


class Metrics:
    """The metrics of one server; `state` is read at each scrape."""

    def __init__(self, state: Callable[[], Mapping[str, Any]] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._deliveries = Counter(
            "appserver_deliveries",
            "Messages written to clients (each subscriber's copy counts).",
            registry=self.registry,
        )
        self._drops = Counter(
            "appserver_slow_consumer_drops",
            "Connections closed as slow consumers (1008).",
            registry=self.registry,
        )
        self._requests = Histogram(
            "appserver_request_duration_seconds",
            "Time from a client request's arrival to its answer, by method.",
            ["method"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._store = Histogram(
            "appserver_store_operation_duration_seconds",
            "Duration of store calls, by operation.",
            ["operation"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        if state is not None:
            self.registry.register(_StateCollector(state))

    # --- hooks (one call per event or batch) ---------------------------------------------

    def delivered(self, count: int) -> None:
        self._deliveries.inc(count)

    def slow_consumer_dropped(self) -> None:
        self._drops.inc()

    def request_done(self, method: str, seconds: float) -> None:
        self._requests.labels(method).observe(seconds)

    def store_done(self, operation: str, seconds: float) -> None:
        self._store.labels(operation).observe(seconds)

    # --- exposition -------------------------------------------------------------------

    def render(self) -> bytes:
        """The text exposition format (content type `CONTENT_TYPE_LATEST`)."""
        return generate_latest(self.registry)


class _NoMetrics(Metrics):
    """Hooks that do nothing (a Connection made without a server's metrics)."""

    def __init__(self) -> None:
        super().__init__()

    def delivered(self, count: int) -> None:
        pass

    def slow_consumer_dropped(self) -> None:
        pass

    def request_done(self, method: str, seconds: float) -> None:
        pass

    def store_done(self, operation: str, seconds: float) -> None:
        pass


NO_METRICS: Metrics = _NoMetrics()


class TimedStore:
    """A thin proxy over a ThreadStore that times each of its coroutine methods."""

    def __init__(self, inner: Any, metrics: Metrics) -> None:
        self._inner = inner
        self._metrics = metrics

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not inspect.iscoroutinefunction(attr):
            return attr
        metrics = self._metrics

        async def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return await attr(*args, **kwargs)
            finally:
                metrics.store_done(name, time.perf_counter() - start)

        setattr(self, name, timed)  # built once per method name
        return timed
