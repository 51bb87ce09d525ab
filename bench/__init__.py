"""Benchmarks of the emulator against bare ``grpc.aio`` servers, reported as ratios (``make bench``).

Every benchmark drives the same load against a bare baseline server (the same message types and sizes,
serialized per call, on uvloop) and against the emulator (memory, and Redis on a private ``redis-server``),
the server side pinned to one core and the load (h2load for unary calls, a lean HTTP/2 client for streams)
to the others, and reports throughput, latency and CPU per operation as ratios of the baseline's, with a
bar per workload; two ``serve --workers`` processes are compared with one. ``report`` holds the result row
and the tables, ``cpu`` the placement and the CPU accounting, ``load`` the sizes of every benchmark.
"""
