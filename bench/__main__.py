"""``python -m bench`` (``make bench``): run every benchmark, print the tables, write them to bench/results/.

Options shape the client load (see ``bench.load.Load`` and ``StreamLoad``); ``--quick`` scales every
benchmark down for a rough check in about a third of the time, and options given with it still apply. A
missed bar is reported in the tables, not by the exit status: this is a benchmark, not a test. Add a
benchmark by adding its function to ``BENCHMARKS``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any

import grpc

from bench.load import Load, ScenarioLoad, StreamLoad
from bench.report import Comparison, format_bars, format_table, write_results
from bench.scenario_load import run_scenario_benchmarks
from bench.streaming import run_stream_benchmarks
from bench.unary import run_unary_benchmarks

BENCHMARKS: tuple[Callable[[Load], list[Comparison]], ...] = (
    run_unary_benchmarks,
    run_stream_benchmarks,
    run_scenario_benchmarks,
)
QUICK = Load(
    warmup_seconds=0.5,
    measure_seconds=2.0,
    rounds=1,
    scenario=ScenarioLoad(vehicles=2_000, rounds=1, quiet_seconds=3.0),
    streams=StreamLoad(
        fanout_deliveries=10_000,
        fanout_max_events=500,
        latency_warmup_seconds=0.5,
        latency_seconds=2.0,
        replay_events=20_000,
        redis_writes=5_000,
    ),
)
LOAD_OPTIONS = {  # option: (field of Load, type, help)
    "--clients": ("client_processes", int, "unary client processes"),
    "--in-flight": ("in_flight_per_process", int, "unary calls in flight per client"),
    "--warmup": ("warmup_seconds", float, "unary seconds not measured"),
    "--seconds": ("measure_seconds", float, "unary seconds measured"),
    "--rounds": ("rounds", int, "unary windows per server"),
}
STREAM_OPTIONS = {  # option: (field of StreamLoad, type, help)
    "--subscriber-processes": ("subscriber_processes", int, "processes the subscribers are spread over"),
    "--publish-in-flight": ("publish_in_flight", int, "PublishEvent calls in flight"),
    "--fanout-deliveries": ("fanout_deliveries", int, "deliveries per fan-out run"),
    "--fanout-max-events": ("fanout_max_events", int, "events per fan-out run, at most"),
    "--latency-seconds": ("latency_seconds", float, "seconds measured in the latency run"),
    "--replay-events": ("replay_events", int, "events retained and replayed"),
    "--redis-writes": ("redis_writes", int, "raw Redis XADDs"),
}


def parse_load() -> Load:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="scale every benchmark down")
    for options, defaults in ((LOAD_OPTIONS, Load()), (STREAM_OPTIONS, StreamLoad())):
        for option, (field, kind, help_text) in options.items():
            default = getattr(defaults, field)
            parser.add_argument(option, dest=field, type=kind, help=f"{help_text} (default {default})")
    args = vars(parser.parse_args())
    base = QUICK if args.pop("quick") else Load()
    given: dict[str, Any] = {field: value for field, value in args.items() if value is not None}
    stream_fields = {field for field, _, _ in STREAM_OPTIONS.values()}
    streams = replace(base.streams, **{f: v for f, v in given.items() if f in stream_fields})
    return replace(base, **{f: v for f, v in given.items() if f not in stream_fields}, streams=streams)


def main() -> None:
    load = parse_load()
    started = time.monotonic()
    rows = [row for benchmark in BENCHMARKS for row in benchmark(load)]
    settings = {
        "load": asdict(load),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "run_seconds": round(time.monotonic() - started, 1),
    }
    print(format_table(rows))
    print()
    print(format_bars(rows))
    for path in write_results(rows, settings):
        print(f"wrote {path}")
    print(f"ran for {settings['run_seconds']} s")


if __name__ == "__main__":
    main()
