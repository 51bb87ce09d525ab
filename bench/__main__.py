"""``python -m bench`` (``make bench``): run every benchmark, print the tables, write them to bench/results/.

The server side (the server under test, and Redis) runs on core 0 and the load (h2load, the stream clients)
on the other cores, so the load never takes the server's core; the workers rows have a placement of their
own (``bench.workers``), and so have the scale-out rows (``bench.scale_out``). Every window lasts
``--seconds`` (15 by default) after ``--warmup`` seconds not
measured; ``--quick`` shortens them (and the replay) for a rough check in about two minutes, and options
given with it still apply. ``--only`` runs some of the benchmarks. A missed bar is reported in the tables,
not by the exit status: this is a benchmark, not a test; a benchmark that breaks is reported (with its
traceback) after the others have run, and the exit status is 1. Add a benchmark by adding its function to
``BENCHMARKS``.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from typing import Any

import grpc

from bench.cpu import Placement, pin, placement
from bench.h2load import h2load_binary
from bench.load import Load, StreamLoad
from bench.report import (
    Comparison,
    format_bars,
    format_disturbance,
    format_notes,
    format_table,
    write_results,
)
from bench.scale_out import run_scale_out_benchmarks, scale_out_placement
from bench.streaming import run_stream_benchmarks
from bench.unary import run_unary_benchmarks
from bench.workers import run_worker_benchmarks, workers_placement

Benchmark = Callable[[Load, Placement], list[Comparison]]
BENCHMARKS: dict[str, Benchmark] = {
    "unary": run_unary_benchmarks,
    "streams": run_stream_benchmarks,
    "workers": run_worker_benchmarks,
    "scale-out": run_scale_out_benchmarks,
}
QUICK = Load(
    warmup_seconds=1.0,
    seconds=3.0,
    streams=StreamLoad(replay_events=20_000, redis_writes=5_000),
)
LOAD_OPTIONS = {  # option: (field of Load, type, help)
    "--seconds": ("seconds", float, "seconds measured in every window"),
    "--warmup": ("warmup_seconds", float, "seconds not measured before every window"),
    "--connections": ("connections", int, "h2load connections (-c)"),
    "--in-flight": ("in_flight", int, "h2load calls in flight per connection (-m)"),
    "--worker-connections": ("worker_connections", int, "h2load and subscriber connections, workers rows"),
}
STREAM_OPTIONS = {  # option: (field of StreamLoad, type, help)
    "--subscriber-connections": ("subscriber_connections", int, "HTTP/2 connections of the subscribers"),
    "--publish-in-flight": ("publish_in_flight", int, "PublishEvent calls in flight"),
    "--fanout-ahead": ("fanout_ahead", int, "events the fan-out publisher may run ahead"),
    "--latency-rate": ("latency_per_second", float, "events/s of the latency runs"),
    "--wide-rate": ("wide_per_second", float, "events/s of the 1,000-subscriber run"),
    "--replay-events": ("replay_events", int, "events retained and replayed"),
    "--redis-writes": ("redis_writes", int, "raw Redis XADDs"),
}


def parse_options(argv: Sequence[str] | None = None) -> tuple[Load, list[str]]:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short windows and replay, about 2 minutes")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), help="run only these benchmarks")
    for options, defaults in ((LOAD_OPTIONS, Load()), (STREAM_OPTIONS, StreamLoad())):
        for option, (field, kind, help_text) in options.items():
            default = getattr(defaults, field)
            parser.add_argument(option, dest=field, type=kind, help=f"{help_text} (default {default})")
    args = vars(parser.parse_args(argv))
    only = args.pop("only") or list(BENCHMARKS)
    base = QUICK if args.pop("quick") else Load()
    given: dict[str, Any] = {field: value for field, value in args.items() if value is not None}
    stream_fields = {field for field, _, _ in STREAM_OPTIONS.values()}
    streams = replace(base.streams, **{f: v for f, v in given.items() if f in stream_fields})
    load = replace(base, **{f: v for f, v in given.items() if f not in stream_fields}, streams=streams)
    return load, only


def _more_files() -> None:
    """Raise the open-file limit to the hard one: 1,000 subscribers mean 1,000 Redis connections."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main() -> None:
    load, only = parse_options()
    h2load = h2load_binary()  # fail now, not after minutes of other benchmarks
    _more_files()
    where = placement()
    pin(where.load)
    preamble = (
        f"placement: {where.describe()}; workers rows: {workers_placement().describe()}; scale-out rows: "
        f"{scale_out_placement().describe()}\n"
        f"windows: {load.warmup_seconds:g} s warm-up, then {load.seconds:g} s measured; unary load from "
        f"{h2load} (-c {load.connections} -m {load.in_flight})\n"
        "CPU us/op: the server side's CPU (Redis included) per operation; load cores: the load generator's "
        "CPU in the window, in cores (near 1: the load may be the limit); other cores: CPU of processes "
        "that are not the benchmark's (other work on the machine disturbs the figures)\n\n"
    )
    print(preamble, end="", flush=True)
    started = time.monotonic()
    rows: list[Comparison] = []
    failed = []
    for name in only:
        try:
            rows += BENCHMARKS[name](load, where)
        except Exception:  # the other benchmarks still run and report
            traceback.print_exc()
            failed.append(name)
    settings = {
        "load": asdict(load),
        "benchmarks": only,
        "placement": {"server": sorted(where.server), "load": sorted(where.load)},
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "run_seconds": round(time.monotonic() - started, 1),
        "failed_benchmarks": failed,
    }
    print(format_table(rows))
    print()
    print(format_bars(rows))
    print()
    if warning := format_disturbance(rows):
        print(warning)
        print()
    print(format_notes(rows))
    for path in write_results(rows, settings, preamble):
        print(f"wrote {path}")
    print(f"ran for {settings['run_seconds']} s")
    if failed:
        raise SystemExit(f"benchmarks that failed (see above): {', '.join(failed)}")


if __name__ == "__main__":
    main()
