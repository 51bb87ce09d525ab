"""Two workers against one: ``fleet-emulator serve --workers N --backend redis`` as a real process.

The emulator is started through its command line (``--no-console --no-simulate``, on a fixed free port,
SO_REUSEPORT spreading connections over the workers), once with one worker and once with two, each on a
freshly flushed private Redis; it is ready when every worker has logged that it serves and the health
check answers. Against each, the unary ``GetVehicle`` (h2load, ``worker_connections`` connections so that
the kernel spreads them over the workers) and the fan-out to ``fanout_subscribers`` subscribers (over as
many connections) are measured as elsewhere; the rows are the two-worker figures as ratios of the one-worker
ones. Two workers need two server cores: with at least three cores the servers and Redis get cores 0 and 1
and the load the rest; on two cores nothing is pinned (workers, Redis and load share both cores), which
the output says.
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.harness import FLEET_EMULATOR, EmulatorProcess, clean_env, free_port, start

from bench.cpu import Placement, Usage, pinned_command, placement
from bench.load import Load
from bench.private_redis import flush, redis_server
from bench.report import Comparison, Measurement
from bench.servers import HOST, READY_TIMEOUT_SECONDS
from bench.stream_clients import Delivered, Delivery, deliver
from bench.streaming import delivered_measurement, delivery_notes
from bench.unary import UNARY_CALLS, cpu_split, measure_call

MIN_SPEEDUP = 1.5
WORKER_COUNTS = (1, 2)
SERVING_LINE = re.compile(r"fleet emulator serving ")
POLL_SECONDS = 0.1


def workers_placement() -> Placement:
    return placement(server_cores=2)


@dataclass(frozen=True)
class Figures:
    """One worker count's unary and fan-out results."""

    unary: Measurement
    unary_usage: Usage
    unary_summary: str
    fanout: Delivered


@contextmanager
def cli_emulator(workers: int, redis_url: str, where: Placement) -> Iterator[EmulatorProcess]:
    """``fleet-emulator serve --workers N`` on the server cores, ready once every worker serves."""
    port = free_port()
    command = [
        str(FLEET_EMULATOR), "serve", "--workers", str(workers),
        "--backend", "redis", "--redis-url", redis_url, "--host", HOST, "--port", str(port),
        "--no-console", "--no-simulate", "--grace-period", "1s",
    ]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as folder:
        emulator = start(pinned_command(command, where.server), port, Path(folder) / "serve.log", clean_env())
        try:
            deadline = time.monotonic() + READY_TIMEOUT_SECONDS
            while len(SERVING_LINE.findall(emulator.output())) < workers:
                if emulator.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{workers} workers did not all start:\n{emulator.output()}")
                time.sleep(POLL_SECONDS)
            emulator.wait_ready()
            yield emulator
        finally:
            emulator.terminate()


def _measure(workers: int, load: Load, where: Placement, redis_url: str, redis_pid: int) -> Figures:
    flush(redis_url)
    with cli_emulator(workers, redis_url, where) as emulator:
        groups = {"emulator": [emulator.process.pid], "redis": [redis_pid]}
        call = UNARY_CALLS["GetVehicle v2"]
        connections = load.worker_connections
        unary, run, usage = measure_call(emulator.address, call, groups, load, where, connections)
        fanout = Delivery(
            subscribers=load.streams.fanout_subscribers,
            connections=connections,
            warmup_seconds=load.warmup_seconds,
            seconds=load.seconds,
            publish_in_flight=load.streams.publish_in_flight,
            ahead=load.streams.fanout_ahead,
        )
        delivered = deliver(emulator.address, fanout, groups, where)
    return Figures(unary, usage, run.summary(), delivered)


def _processes(usage: Usage, seconds: float) -> dict[str, float]:
    """Each server-side process's share of a core in the window (the workers' balance)."""
    return {str(pid): round(cpu / seconds, 2) for pid, cpu in usage.per_process.items() if cpu > 0}


def run_worker_benchmarks(load: Load, where: Placement) -> list[Comparison]:
    """The unary and the fan-out row, two workers as a ratio of one. ``where`` is not used: two workers
    need a placement of their own (``workers_placement``)."""
    where = workers_placement()
    with redis_server(where.server) as redis:
        one, two = (_measure(n, load, where, redis.url, redis.pid) for n in WORKER_COUNTS)
    unary_name = "GetVehicle v2, redis, 2 workers vs 1"
    fanout_name = f"fan-out to {load.streams.fanout_subscribers} subscribers, redis, 2 workers vs 1"
    placement_note = f"placement: {where.describe()}"
    return [
        Comparison(
            unary_name,
            "calls/s",
            two.unary,
            one.unary,
            min_throughput_ratio=MIN_SPEEDUP,
            details={
                "cpu_us_per_call": {
                    "2 workers": cpu_split(two.unary_usage, two.unary.operations),
                    "1 worker": cpu_split(one.unary_usage, one.unary.operations),
                },
                "cores_by_process": {
                    "2 workers": _processes(two.unary_usage, load.seconds),
                    "1 worker": _processes(one.unary_usage, load.seconds),
                },
                "notes": [
                    placement_note,
                    f"h2load 2 workers: {two.unary_summary}",
                    f"h2load 1 worker: {one.unary_summary}",
                ],
            },
        ),
        Comparison(
            fanout_name,
            "deliveries/s",
            delivered_measurement(two.fanout),
            delivered_measurement(one.fanout),
            min_throughput_ratio=MIN_SPEEDUP,
            details={
                "cpu_us_per_delivery": {
                    "2 workers": cpu_split(two.fanout.usage, two.fanout.deliveries),
                    "1 worker": cpu_split(one.fanout.usage, one.fanout.deliveries),
                },
                "cores_by_process": {
                    "2 workers": _processes(two.fanout.usage, load.seconds),
                    "1 worker": _processes(one.fanout.usage, load.seconds),
                },
                "notes": [
                    placement_note,
                    f"2 workers: {delivery_notes(two.fanout)}",
                    f"1 worker: {delivery_notes(one.fanout)}",
                ],
            },
        ),
    ]
