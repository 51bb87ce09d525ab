"""The size of every benchmark (``Load``, ``StreamLoad``, ``ScenarioLoad``) and the helpers that run client
processes: ``collect`` their results, failing fast when one died, and ``stop_all`` of them at the end.

Every measuring window lasts ``Load.seconds`` after ``Load.warmup_seconds`` not measured; ``--quick``
shortens both (``bench.__main__.QUICK``).
"""

from __future__ import annotations

import multiprocessing
import queue
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from time import perf_counter
from typing import TypeVar

SPAWN = multiprocessing.get_context("spawn")
T = TypeVar("T")
CALL_TIMEOUT_SECONDS = 10.0
COLLECT_POLL_SECONDS = 0.5
START_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class StreamLoad:
    """The streaming load: HTTP/2 connections the subscribers share; PublishEvent calls in flight; how far
    (in events) the publisher of a fan-out may run ahead of the average subscriber; the latency runs' rate
    and subscribers (``wide``: the many-subscriber run on Redis); events retained and replayed; raw XADDs."""

    subscriber_connections: int = 4
    publish_in_flight: int = 16
    fanout_subscribers: int = 100
    fanout_ahead: int = 200
    latency_per_second: float = 100.0
    latency_subscribers: int = 100
    wide_subscribers: int = 1_000
    wide_per_second: float = 10.0  # as many deliveries a second as the latency run's
    replay_events: int = 100_000
    redis_writes: int = 20_000


@dataclass(frozen=True)
class ScenarioLoad:
    """Vehicles in the scenario (spread over ``FLEETS``), loads per backend, the quiet window before them
    and the pace of the GetVehicle probe (``python -m bench.scenario_load``)."""

    vehicles: int = 10_000
    rounds: int = 2
    quiet_seconds: float = 5.0
    probe_per_second: float = 200.0


@dataclass(frozen=True)
class Load:
    """Every window: ``warmup_seconds`` not measured, then ``seconds`` measured. Unary load comes from
    h2load: ``connections`` HTTP/2 connections with ``in_flight`` calls each (``-c``, ``-m``); the workers
    rows use ``worker_connections`` connections so that the kernel spreads them over the workers."""

    warmup_seconds: float = 3.0
    seconds: float = 15.0
    connections: int = 4
    in_flight: int = 16
    worker_connections: int = 16
    streams: StreamLoad = StreamLoad()
    scenario: ScenarioLoad = ScenarioLoad()


def collect(results: Queue[T], count: int, processes: Sequence[BaseProcess], timeout: float) -> list[T]:
    """``count`` results from ``processes`` within ``timeout`` seconds; fail fast when one of them died."""
    deadline = perf_counter() + timeout
    collected: list[T] = []
    while len(collected) < count:
        try:
            collected.append(results.get(timeout=COLLECT_POLL_SECONDS))
        except queue.Empty:
            failed = [p.name for p in processes if p.exitcode not in (None, 0)]
            if failed or perf_counter() > deadline:
                raise RuntimeError(f"no result from {', '.join(failed) or 'clients'} (see above)") from None
    return collected


def stop_all(processes: Sequence[BaseProcess]) -> None:
    """Give each process ``CALL_TIMEOUT_SECONDS`` to end by itself, then kill it."""
    for process in processes:
        process.join(CALL_TIMEOUT_SECONDS)
        if process.is_alive():
            process.kill()
            process.join()
