"""The streaming benchmarks of StreamVehicleEvents on Hamburg's stream, on the memory and the Redis backend.

Fan-out: events published back to back through AdminService.PublishEvent, delivered to 1, 10 and 100
subscribers; latency: 100 subscribers while events are published at a steady rate; replay: one stream
reading every retained event from the position before the first. Each workload runs once against the bare
baseline (``stream_servers.BareLog``) and then against the emulator on each backend, and each backend's
row is judged against that baseline. The Redis backend uses a private ``redis-server`` that is flushed
before each emulator starts; raw Redis rates on the same server (``redis_rates``) close the list.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import ExitStack
from functools import partial

from bench.load import Load, StreamLoad
from bench.private_redis import flush, private_redis
from bench.redis_rates import measure_redis
from bench.report import Comparison, Measurement
from bench.servers import READY_TIMEOUT_SECONDS, run_emulator, serving
from bench.stream_clients import Publishing, deliver, replay
from bench.stream_servers import (
    START_POSITION,
    prefill_stream,
    publish_reply,
    run_stream_baseline,
    sample_event,
    stream_message,
)

BACKENDS = ("memory", "redis")
FANOUT_SUBSCRIBERS = (1, 10, 100)
FANOUT_BAR_SUBSCRIBERS = 100
FANOUT_MIN_RATIO = 0.5
LATENCY_SUBSCRIBERS = 100
LATENCY_MAX_P99_MS = 10.0
REPLAY_MIN_RATIO = {"memory": 0.7, "redis": 0.5}
PREFILL_LEAST_PER_SECOND = 1_000  # events; about 4,600/s on Redis and 26,000/s in memory on 2 cores

Measure = Callable[[str], Measurement]


def run_stream_benchmarks(load: Load) -> list[Comparison]:
    """Fan-out, latency and replay rows for each backend, then the raw Redis rows."""
    with private_redis() as redis_url:
        rows = _live_rows(load.streams, redis_url) + _replay_rows(load.streams, redis_url)
        return rows + measure_redis(redis_url, load.streams)


def _message_bytes() -> int:
    return len(stream_message(sample_event()))


def _compare(
    name: str,
    addresses: Mapping[str, str],
    measure: Measure,
    details: Mapping[str, object],
    min_throughput_ratio: float | None = None,
    max_p99_ms: float | None = None,
) -> list[Comparison]:
    """Measure the baseline at ``addresses["baseline"]``, then each backend's emulator; one row each."""
    baseline = measure(addresses["baseline"])
    bars = {"min_throughput_ratio": min_throughput_ratio, "max_p99_ms": max_p99_ms}
    return [
        Comparison(f"{name}, {b}", "events/s", measure(addresses[b]), baseline, **bars, details=details)
        for b in BACKENDS
    ]


def _live_rows(streams: StreamLoad, redis_url: str) -> list[Comparison]:
    """Fan-out and latency against a baseline and an emulator on each backend, all serving at once."""
    event = sample_event()
    flush(redis_url)
    with ExitStack() as stack:
        addresses = {
            "baseline": stack.enter_context(
                serving(run_stream_baseline, publish_reply(event), stream_message(event), 0)
            ),
            **{b: stack.enter_context(serving(run_emulator, b, redis_url)) for b in BACKENDS},
        }
        rows = [row for subscribers in FANOUT_SUBSCRIBERS for row in _fanout(addresses, streams, subscribers)]
        return rows + _latency(addresses, streams)


def _fanout(addresses: Mapping[str, str], streams: StreamLoad, subscribers: int) -> list[Comparison]:
    publishing = Publishing(streams.events_for(subscribers), streams.publish_in_flight)
    processes = streams.subscriber_processes
    bar = FANOUT_MIN_RATIO if subscribers == FANOUT_BAR_SUBSCRIBERS else None
    return _compare(
        f"fan-out {publishing.events:,} events to {subscribers} subscriber{'s' * (subscribers > 1)}",
        addresses,
        lambda address: deliver(address, subscribers, processes, publishing, unmeasured=0),
        {"events": publishing.events, "subscribers": subscribers, "message_bytes": _message_bytes()},
        min_throughput_ratio=bar,
    )


def _latency(addresses: Mapping[str, str], streams: StreamLoad) -> list[Comparison]:
    rate = streams.latency_per_second
    unmeasured = round(rate * streams.latency_warmup_seconds)
    events = unmeasured + round(rate * streams.latency_seconds)
    publishing = Publishing(events, streams.publish_in_flight, per_second=rate)
    processes = streams.subscriber_processes
    return _compare(
        f"latency at {rate:g}/s to {LATENCY_SUBSCRIBERS} subscribers",
        addresses,
        lambda address: deliver(address, LATENCY_SUBSCRIBERS, processes, publishing, unmeasured),
        {"events": events, "unmeasured_events": unmeasured, "message_bytes": _message_bytes()},
        max_p99_ms=LATENCY_MAX_P99_MS,
    )


def _replay_rows(streams: StreamLoad, redis_url: str) -> list[Comparison]:
    """Replay on servers started with the events already retained: the baseline, then each backend."""
    count, message = streams.replay_events, stream_message(sample_event())
    ready_timeout = READY_TIMEOUT_SECONDS + count / PREFILL_LEAST_PER_SECOND
    with serving(run_stream_baseline, publish_reply(sample_event()), message, count) as address:
        baseline = replay(address, START_POSITION, count)
    rows = []
    for backend in BACKENDS:
        flush(redis_url)
        prefill = partial(prefill_stream, count)
        with serving(run_emulator, backend, redis_url, prefill, ready_timeout=ready_timeout) as address:
            measured = replay(address, START_POSITION, count)
        rows.append(
            Comparison(
                f"replay {count:,} events, 1 stream, {backend}",
                "events/s",
                measured,
                baseline,
                min_throughput_ratio=REPLAY_MIN_RATIO[backend],
                details={"events": count, "message_bytes": len(message)},
            )
        )
    return rows
