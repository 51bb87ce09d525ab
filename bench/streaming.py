"""The streaming benchmarks of StreamVehicleEvents on Hamburg's stream, on the memory and the Redis backend.

Fan-out: events published back to back through AdminService.PublishEvent (never far ahead of the
subscribers) to ``fanout_subscribers`` subscribers, deliveries per second in the window; latency:
``latency_subscribers`` subscribers while events are published at ``latency_per_second``, the p99 of
publish-to-receive against the bare server's at the same load; wide: ``wide_subscribers`` subscribers on
Redis at ``wide_per_second``, every subscriber must receive every event; replay: one stream reading every
retained event from the position before the first, again and again for the window. Each workload runs
against the bare baseline (``stream_servers.BareLog``) and against the emulator on each backend, all
serving at once on the server core; the Redis backend uses a private ``redis-server`` on that core,
flushed before each emulator starts. Raw Redis rates on the same server (``redis_rates``) close the list.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import replace
from functools import partial
from typing import Any

from bench.cpu import Placement
from bench.load import Load
from bench.private_redis import RedisProcess, flush, redis_server
from bench.redis_rates import measure_redis
from bench.report import Comparison, Measurement
from bench.servers import READY_TIMEOUT_SECONDS, Running, run_emulator, served
from bench.stream_clients import Delivered, Delivery, Replayed, deliver, replay
from bench.stream_servers import (
    START_POSITION,
    prefill_stream,
    run_stream_baseline,
    sample_event,
    stream_message,
)
from bench.unary import cpu_split

BACKENDS = ("memory", "redis")
FANOUT_MIN_RATIO = 0.8
REPLAY_MIN_RATIO = 0.8
LATENCY_MAX_P99_RATIO = 2.0
PREFILL_LEAST_PER_SECOND = 1_000  # events; about 4,600/s on Redis and 26,000/s in memory on 2 cores

Servers = Mapping[str, tuple[Running, dict[str, list[int]]]]  # by name: the server and its pid groups


def run_stream_benchmarks(load: Load, where: Placement) -> list[Comparison]:
    """Fan-out, latency and wide rows, replay rows, then the raw Redis rows."""
    with redis_server(where.server) as redis:
        rows = _live_rows(load, where, redis) + _replay_rows(load, where, redis)
        try:
            return rows + measure_redis(redis.url, load.streams)
        except Exception:  # context only: keep the rows that have bars
            traceback.print_exc()
            print("the raw Redis rates failed (see above)")
            return rows


def _message_bytes() -> int:
    return len(stream_message(sample_event()))


def delivered_measurement(delivered: Delivered) -> Measurement:
    return Measurement.from_latencies(
        delivered.latencies_s,
        delivered.seconds,
        delivered.errors,
        operations=delivered.deliveries,
        usage=delivered.usage,
    )


def delivery_notes(delivered: Delivered) -> str:
    scheduled = "" if delivered.scheduled is None else f" of {delivered.scheduled:,} scheduled"
    return (
        f"{delivered.published:,}{scheduled} published ({delivered.publish_errors} failed), "
        f"{delivered.deliveries:,} deliveries in the window, "
        f"{delivered.unsubscribed} streams not subscribed, {delivered.incomplete} streams short of events "
        f"({delivered.missed:,} deliveries missing)"
    )


def replay_notes(replayed: Replayed) -> str:
    each = ", ".join(f"{seconds:.2f}" for seconds in replayed.replay_seconds)
    return f"{replayed.replays} replays ({each} s), {replayed.incomplete} short of events"


def _compare(
    name: str,
    servers: Servers,
    backends: Sequence[str],
    delivery: Delivery,
    where: Placement,
    bar: Mapping[str, Any],
) -> list[Comparison]:
    """``delivery`` against the baseline, then each of ``backends``' emulators; one row each."""
    bare, bare_groups = servers["baseline"]
    base = deliver(bare.address, delivery, bare_groups, where)
    rows = []
    for backend in backends:
        emulator, groups = servers[backend]
        measured = deliver(emulator.address, delivery, groups, where)
        measurement = delivered_measurement(measured)
        details = {
            "subscribers": delivery.subscribers,
            "per_second": delivery.per_second,
            "message_bytes": _message_bytes(),
            "cpu_us_per_delivery": cpu_split(measured.usage, measured.deliveries),
            "notes": [f"emulator: {delivery_notes(measured)}", f"baseline: {delivery_notes(base)}"],
        }
        row = Comparison(f"{name}, {backend}", "deliveries/s", measurement, delivered_measurement(base))
        rows.append(replace(row, details=details, **bar))
    return rows


def _live_rows(load: Load, where: Placement, redis: RedisProcess) -> list[Comparison]:
    """Fan-out, latency and wide runs against a baseline and an emulator on each backend."""
    streams = load.streams
    flush(redis.url)
    with ExitStack() as stack:
        bare = stack.enter_context(
            served(run_stream_baseline, stream_message(sample_event()), 0, where.server)
        )
        memory = stack.enter_context(served(run_emulator, "memory", redis.url, None, where.server))
        on_redis = stack.enter_context(served(run_emulator, "redis", redis.url, None, where.server))
        servers: Servers = {
            "baseline": (bare, {"bare": [bare.pid]}),
            "memory": (memory, {"emulator": [memory.pid]}),
            "redis": (on_redis, {"emulator": [on_redis.pid], "redis": [redis.pid]}),
        }
        common = dict(
            connections=streams.subscriber_connections,
            warmup_seconds=load.warmup_seconds,
            seconds=load.seconds,
            publish_in_flight=streams.publish_in_flight,
        )
        fanout = Delivery(subscribers=streams.fanout_subscribers, ahead=streams.fanout_ahead, **common)  # type: ignore[arg-type]
        latency = Delivery(
            subscribers=streams.latency_subscribers,
            per_second=streams.latency_per_second,
            latency=True,
            **common,  # type: ignore[arg-type]
        )
        wide = Delivery(
            subscribers=streams.wide_subscribers,
            per_second=streams.wide_per_second,
            latency=True,
            **common,  # type: ignore[arg-type]
        )
        return [
            *_compare(
                f"fan-out to {fanout.subscribers} subscribers", servers, BACKENDS, fanout, where,
                {"min_throughput_ratio": FANOUT_MIN_RATIO},
            ),
            *_compare(
                f"latency at {latency.per_second:g} events/s to {latency.subscribers} subscribers",
                servers, BACKENDS, latency, where, {"max_p99_ratio": LATENCY_MAX_P99_RATIO},
            ),
            *_compare(
                f"{wide.subscribers:,} subscribers at {wide.per_second:g} events/s",
                servers, ("redis",), wide, where, {"every_event": True},
            ),
        ]  # fmt: skip


def _replay_rows(load: Load, where: Placement, redis: RedisProcess) -> list[Comparison]:
    """Replay on servers started with the events already retained: the baseline, then each backend."""
    count, message = load.streams.replay_events, stream_message(sample_event())
    windows = (load.warmup_seconds, load.seconds)
    ready_timeout = READY_TIMEOUT_SECONDS + count / PREFILL_LEAST_PER_SECOND
    with served(run_stream_baseline, message, count, where.server) as bare:
        baseline = replay(bare.address, START_POSITION, count, windows, {"bare": [bare.pid]}, where)
    base = Measurement.from_latencies(
        [], baseline.seconds, baseline.incomplete, baseline.events, baseline.usage
    )
    rows = []
    for backend in BACKENDS:
        flush(redis.url)
        prefill = partial(prefill_stream, count)
        args = (run_emulator, backend, redis.url, prefill, where.server)
        with served(*args, ready_timeout=ready_timeout) as emulator:
            groups = {"emulator": [emulator.pid]} | ({"redis": [redis.pid]} if backend == "redis" else {})
            measured = replay(emulator.address, START_POSITION, count, windows, groups, where)
        rows.append(
            Comparison(
                f"replay {count:,} events, 1 stream, {backend}",
                "events/s",
                Measurement.from_latencies(
                    [], measured.seconds, measured.incomplete, measured.events, measured.usage
                ),
                base,
                min_throughput_ratio=REPLAY_MIN_RATIO,
                details={
                    "events": count,
                    "message_bytes": len(message),
                    "replays": {"emulator": measured.replays, "baseline": baseline.replays},
                    "cpu_us_per_event": cpu_split(measured.usage, measured.events),
                    "notes": [f"emulator: {replay_notes(measured)}", f"baseline: {replay_notes(baseline)}"],
                },
            )
        )
    return rows
