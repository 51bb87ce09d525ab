"""Benchmarks of the emulator against a bare ``grpc.aio`` server, reported as ratios (``make bench``).

Every benchmark runs the same client load, from separate client processes, first against a bare baseline
server and then against the emulator, each server in its own process, and reports the emulator's throughput
and latency as ratios of the baseline's; ``report`` holds the result row and table shared by all of them.
"""
