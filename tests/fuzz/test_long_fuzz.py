"""The long fuzz profile: ``FUZZ_CALLS`` fuzzed calls over both backends against real emulator processes.

For each backend a real ``fleet-emulator serve --no-simulate`` process is started on a free port (on Redis
with a private ``redis-server`` of the test session, never another one) and every RPC of the API versions
and of the admin service gets its share of the calls, as well-typed requests with adversarial values and as
raw bytes that may not parse (``fuzzing.py`` says what is sent and checked). Hypothesis draws the examples
with random seeds (the ``fuzz`` settings profile; ``--hypothesis-seed`` repeats a run). Unlike the short
profile, a violation does not stop the exploration: every one is kept, grouped by its kind and the server's
traceback (read from the process's log by flow id), and each group is shrunk to a small reproducer at the
end of its test, which then fails listing them. Errors the process logs outside any call fail it too.
At the end of the session the histogram of calls per backend, status code and ErrorInfo reason is printed
and written to ``bench/results/fuzz-histogram.txt`` (``conftest.py``).
"""

from __future__ import annotations

import asyncio
import collections
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings

from tests.e2e.harness import EmulatorProcess, free_port, serve_command, serving
from tests.fuzz.fuzzing import (
    KINDS,
    LONG_PROFILE,
    RPCS,
    Channels,
    Example,
    Findings,
    Fuzzer,
    LogFileTracebacks,
    Rpc,
    Tally,
    Violation,
    World,
    examples,
    explore_world,
    log_records,
    signature,
)
from tests.redis_server import RedisServer

pytestmark = pytest.mark.fuzz

BACKENDS = ("memory", "redis")
CALL_BUG = "bug while serving a call (flow id"  # logged with each INTERNAL, reported with its call
LOG_TAIL = 4000


@dataclass
class Served:
    """A real emulator process of one backend and the fuzzer that calls it."""

    backend: str
    process: EmulatorProcess
    fuzzer: Fuzzer

    def alive(self) -> bool:
        return self.process.process.poll() is None


def logged_errors(log: Path, backend: str) -> list[str]:
    """The errors the process logged outside the calls (whose bugs are reported with them), grouped."""
    groups: dict[str, list[str]] = collections.defaultdict(list)
    for record in log_records(log.read_text(errors="replace")):
        head = record.splitlines()[0]
        if (" ERROR " in head or " CRITICAL " in head) and CALL_BUG not in head:
            groups[f"{head.split(' ', 3)[-1][:120]} | {signature(record)}"].append(record)
    return [
        f"[{backend}] x{len(records)} {key}\n" + "\n".join(f"    {line}" for line in records[0].splitlines())
        for key, records in groups.items()
    ]


@pytest.fixture(scope="module", params=BACKENDS)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, tally: Tally
) -> Iterator[Served]:
    """``fleet-emulator serve`` on the backend, SERVING on a free port, and a fuzzer calling it; at the end
    the time taken and the errors in its log go to the tally, and it must stop gracefully and have logged
    no error outside the calls."""
    backend: str = request.param
    port = free_port()
    args = ["--host", "127.0.0.1", "--port", str(port)]
    if backend == "redis":
        redis: RedisServer = request.getfixturevalue("redis_server")
        redis.flush()
        args += ["--backend", "redis", "--redis-url", redis.url]
    log = tmp_path_factory.mktemp(f"fuzz-{backend}") / "serve.log"
    with (
        serving(serve_command(*args), port, log) as process,
        asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner,
    ):
        channels, world = runner.run(_connect(process.address))
        fuzzer = Fuzzer(runner, channels, world, LogFileTracebacks(log), backend, tally)
        began = time.monotonic()
        try:
            yield Served(backend, process, fuzzer)
        finally:
            tally.seconds[backend] += time.monotonic() - began
            runner.run(channels.close())
    errors = logged_errors(log, backend)  # after the stop, which may log too
    tally.log_errors += errors
    assert not errors, f"the {backend} emulator logged errors ({log}):\n" + "\n".join(errors)


async def _connect(address: str) -> tuple[Channels, World]:
    channels = Channels.open(address)
    return channels, await explore_world(channels.unary)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("rpc", RPCS, ids=str)
def test_long_fuzz(served: Served, rpc: Rpc, kind: str, fuzz_calls: int, tally: Tally) -> None:
    per_test = max(1, fuzz_calls // (len(BACKENDS) * len(RPCS) * len(KINDS)))
    fuzzer = served.fuzzer
    findings = Findings()

    @settings(settings.get_profile(LONG_PROFILE), max_examples=per_test)
    @given(example=examples(rpc, kind, fuzzer.seeds))
    def explore(example: Example) -> None:
        if not served.alive():
            return
        try:
            fuzzer.run(example)
        except Violation as violation:
            findings.add(example, violation)
        except Exception as error:  # a bug of the fuzzer: reported with the others, not lost to shrinking
            trace = "".join(traceback.format_exception(error))
            findings.add(example, Violation("fuzzer error", repr(error), traceback=trace))

    explore()
    assert served.alive(), f"the emulator exited:\n{served.process.output()[-LOG_TAIL:]}"
    for what, violation in fuzzer.helper_violations:
        findings.add_helper(what, violation)
    fuzzer.helper_violations.clear()
    texts = findings.report(fuzzer, f"{served.backend} {kind} {rpc}")
    tally.findings += texts
    assert not texts, "\n\n".join(texts)
