"""Prometheus metrics, one registry per app so several apps can live in one process."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector


class Metrics:
    """The counters and gauges `GET /metrics` exposes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.sessions_active = Gauge(
            "chatbot_sessions_active", "Sessions held in memory.", registry=self.registry
        )
        self.sessions_created = Counter(
            "chatbot_sessions_created", "Sessions created.", registry=self.registry
        )
        self.sessions_expired = Counter(
            "chatbot_sessions_expired",
            "Idle sessions evicted by the sweep.",
            registry=self.registry,
        )
        self.streams_open = Gauge(
            "chatbot_streams_open", "Open SSE connections.", ["kind"], registry=self.registry
        )
        self.turns_running = Gauge(
            "chatbot_turns_running", "Agent turns in progress.", registry=self.registry
        )
        self.rate_limited = Counter(
            "chatbot_rate_limited",
            "Requests refused with 429 rate_limited, by limit.",
            ["limit"],
            registry=self.registry,
        )
        # A plain int read at scrape time: a Counter takes a lock on every event, which
        # cost as much as writing the event (docs/BENCHMARKS.md).
        self.events_sent = 0
        self.registry.register(_EventsSent(self))

        for kind in ("events", "legacy"):
            self.streams_open.labels(kind)
        for limit in ("messages", "auth", "turns", "sessions", "streams"):
            self.rate_limited.labels(limit)
        self.cluster: ClusterGauges | None = None

    def in_cluster(self) -> ClusterGauges:
        """Add the cluster-wide gauges (cluster mode only: one process has none)."""
        self.cluster = ClusterGauges(self.registry)
        return self.cluster

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)


class ClusterGauges:
    """What the whole cluster holds, summed from every live worker's last report."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.workers = Gauge(
            "chatbot_cluster_workers", "Workers that reported lately.", registry=registry
        )
        self.sessions = Gauge(
            "chatbot_cluster_sessions", "Sessions held in memory, all workers.", registry=registry
        )
        self.streams = Gauge(
            "chatbot_cluster_streams", "Open SSE connections, all workers.", registry=registry
        )
        self.turns = Gauge(
            "chatbot_cluster_turns_running",
            "Agent turns in progress, all workers.",
            registry=registry,
        )
        self.queued = Gauge(
            "chatbot_cluster_messages_queued",
            "Messages waiting for a turn (BUSY_POLICY=queue), all workers.",
            registry=registry,
        )


class _EventsSent(Collector):
    """`chatbot_events_sent`, read from `Metrics.events_sent` when scraped."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        yield CounterMetricFamily(
            "chatbot_events_sent",
            "Event frames handed to SSE subscribers.",
            value=self.metrics.events_sent,
        )
