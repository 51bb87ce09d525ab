"""``python -m bench`` (``make bench``): run every benchmark, print the table, write it to bench/results/.

Options shape the client load (see ``bench.load.Load``). A missed bar is reported in the table, not by the
exit status: this is a benchmark, not a test. Add a benchmark by adding its function to ``BENCHMARKS``.
"""

from __future__ import annotations

import argparse
import os
import platform
from collections.abc import Callable
from dataclasses import asdict

import grpc

from bench.load import Load
from bench.report import Comparison, format_table, write_results
from bench.unary import run_unary_benchmarks

BENCHMARKS: tuple[Callable[[Load], list[Comparison]], ...] = (run_unary_benchmarks,)


def parse_load() -> Load:
    defaults = Load()
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--clients", type=int, default=defaults.client_processes, help="client processes")
    parser.add_argument(
        "--in-flight", type=int, default=defaults.in_flight_per_process, help="calls in flight per client"
    )
    parser.add_argument("--warmup", type=float, default=defaults.warmup_seconds, help="seconds not measured")
    parser.add_argument("--seconds", type=float, default=defaults.measure_seconds, help="seconds measured")
    parser.add_argument("--rounds", type=int, default=defaults.rounds, help="windows per server")
    args = parser.parse_args()
    return Load(args.clients, args.in_flight, args.warmup, args.seconds, args.rounds)


def main() -> None:
    load = parse_load()
    rows = [row for benchmark in BENCHMARKS for row in benchmark(load)]
    settings = {
        "load": asdict(load),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
    }
    print(format_table(rows))
    for path in write_results(rows, settings):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
