"""Benchmarks of the emulator against a bare ``grpc.aio`` server, reported as ratios (``make bench``).

Every benchmark runs the same client load, from separate client processes, against a bare baseline server
and against the emulator (unary calls on the memory backend; streams on the memory and the Redis backend,
on a private ``redis-server``), each server in its own process, and reports the emulator's throughput and
latency as ratios of the baseline's, with a bar per workload; raw Redis rates are listed for context.
``report`` holds the result row and the tables shared by all of them.
"""
