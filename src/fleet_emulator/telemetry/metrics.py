"""Prometheus metrics of the emulator, in prometheus-client's default registry (beside its process and
platform collectors); ``render`` gives them in the text format for the console's ``/metrics``.

The call-scope interceptor counts every call of the emulated API and of the admin service by the code the
client gets, refused calls included (a call the client cancels, or whose deadline passes, is
``CANCELLED``). Unary calls are timed; streams are not (their time is how long the client listened)
but counted among the open streams while they run. Each method's label children are bound once
(``unary_metrics``, ``stream_metrics``), so a call costs a few increments. ``REDIS`` counts failed Redis
operations and the times Redis answered again after failing. Journal sizes are read from the journal pools
when scraped (``JournalSizes``), which costs the calls nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import Metric

from fleet_emulator.domain.journal import live_pools

disable_created_metrics()  # type: ignore[no-untyped-call]  # no ``*_created`` series beside each counter

ADMIN_VERSION = "admin"
EVENT_STREAM = "StreamVehicleEvents"
STREAM_KINDS = {EVENT_STREAM: "events", "SubscribeToVehicleStates": "states"}
DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CALL_LABELS = ("service", "method", "version")

CALLS = Counter(
    "fleet_emulator_calls",
    "Calls of the emulated API and of the admin service, refused ones included, by the code they ended with.",
    [*CALL_LABELS, "code"],
)
CALL_DURATION = Histogram(
    "fleet_emulator_call_duration_seconds",
    "Time the emulator took to answer a unary call (streams are not timed).",
    CALL_LABELS,
    buckets=DURATION_BUCKETS,
)
OPEN_STREAMS = Gauge(
    "fleet_emulator_open_streams",
    "Server streams open now: events (StreamVehicleEvents), states (SubscribeToVehicleStates).",
    ["kind"],
)
for kind in STREAM_KINDS.values():
    OPEN_STREAMS.labels(kind)  # 0 before the first stream of its kind, not missing
EVENTS_PUBLISHED = Counter("fleet_emulator_events_published", "Events appended to the durable event streams.")
EVENTS_DELIVERED = Counter(
    "fleet_emulator_events_delivered",
    "Events sent to clients on StreamVehicleEvents streams (not the first message, the stream's position).",
    ["version"],
)
REDIS_ERRORS = Counter(
    "fleet_emulator_redis_errors",
    "Redis operations that could not connect or timed out, by operation.",
    ["operation"],
)
REDIS_RECONNECTS = Counter(
    "fleet_emulator_redis_reconnects", "Times Redis answered again after operations had failed."
)


class CallMetrics:
    """What is counted of every call of one RPC method (``/package.Service/Method``): its code. ``api``
    tells a method of the emulated API (versioned by its package) from one of the admin service."""

    def __init__(self, method: str, api: bool) -> None:
        self.method = method
        service, self.name = method.lstrip("/").split("/")
        package, short_service = service.rsplit(".", 1)
        self.version = package.rsplit(".", 1)[-1] if api else ADMIN_VERSION
        self.labels = (short_service, self.name, self.version)
        self._calls: dict[str, Counter] = {}

    def count(self, code: str) -> None:
        """Count a finished call with its gRPC code name (``OK``, ``NOT_FOUND``, ...)."""
        calls = self._calls.get(code)
        if calls is None:
            calls = self._calls[code] = CALLS.labels(*self.labels, code)
        calls.inc()


class UnaryMetrics(CallMetrics):
    def __init__(self, method: str, api: bool) -> None:
        super().__init__(method, api)
        self.duration = CALL_DURATION.labels(*self.labels)


class StreamMetrics(CallMetrics):
    """A server-streaming method's metrics: the open streams of its kind."""

    def __init__(self, method: str, api: bool) -> None:
        super().__init__(method, api)
        self.open = OPEN_STREAMS.labels(STREAM_KINDS.get(self.name, self.name))


@functools.cache
def unary_metrics(method: str, api: bool) -> UnaryMetrics:
    return UnaryMetrics(method, api)


@functools.cache
def stream_metrics(method: str, api: bool) -> StreamMetrics:
    return StreamMetrics(method, api)


def event_published() -> None:
    EVENTS_PUBLISHED.inc()


@functools.cache
def delivered(version: str) -> Counter:
    """The counter of events sent on ``version``'s event streams (the servicer counts each once sent)."""
    return EVENTS_DELIVERED.labels(version)


class RedisLink:
    """Failed Redis operations by name, and reconnects: the first answer after failures once Redis had
    answered (waiting for it at start is no reconnect). One per process, shared by its Redis clients."""

    def __init__(self) -> None:
        self.up: bool | None = None  # None: Redis has not answered yet

    def failed(self, operation: str) -> None:
        REDIS_ERRORS.labels(operation).inc()
        if self.up:
            self.up = False

    def answered(self) -> None:
        if self.up is False:
            REDIS_RECONNECTS.inc()
        self.up = True


REDIS = RedisLink()


class JournalSizes:
    """``fleet_emulator_journal_entries`` and ``fleet_emulator_journal_bytes``: what the call journals of
    every namespace hold, summed over the journal pools alive when scraped (bytes as the journals' budgets
    count them)."""

    def collect(self) -> Iterable[Metric]:
        pools = live_pools()
        entries = sum(len(journal.entries) for pool in pools for journal in list(pool.journals))
        yield GaugeMetricFamily(
            "fleet_emulator_journal_entries", "Entries the call journals hold now.", value=entries
        )
        yield GaugeMetricFamily(
            "fleet_emulator_journal_bytes",
            "Memory the call journals take now, as their budgets count it.",
            value=sum(pool.used for pool in pools),
        )


REGISTRY.register(JournalSizes())


def render() -> tuple[bytes, str]:
    """Every metric in Prometheus's text format, and its content type (format 0.0.4, which every Prometheus
    reads; the names need nothing newer)."""
    return generate_latest(REGISTRY), CONTENT_TYPE_PLAIN_0_0_4
