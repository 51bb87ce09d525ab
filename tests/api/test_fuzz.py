"""Fuzzes every RPC of every served API version and of the admin service, checking the error contract.

The short, in-process profile of ``tests/fuzz/fuzzing.py`` (which says what is sent and checked): the RPCs
are read from the service descriptors, so that RPCs added later are fuzzed too; for each, hypothesis sends
well-typed requests with adversarial field values and raw request bytes that may not parse
(``strategies.py``), some after setting the clock to an edge of its range, to one in-process emulator with
the demo scenario, and checks every reply against API.md section 3 (never ``UNKNOWN`` or ``INTERNAL``,
rich status details, trailers within gRPC's default limits, the flow id...). API examples use the default
namespace, which has no fault rules; each admin example has a throwaway namespace of its own. The examples
are derandomized and shared by the RPCs so that the module takes about half a minute however many RPCs
there are; ``make fuzz`` runs the long profile against real processes on both backends
(``tests/fuzz/test_long_fuzz.py``). A failure shows the shrunk example and, for ``INTERNAL``, the
emulator's traceback.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleet_emulator.server import Emulator, Settings
from tests.fuzz.fuzzing import (
    MALFORMED,
    RPCS,
    TYPED,
    Channels,
    Fuzzer,
    InProcessTracebacks,
    Rpc,
    World,
    examples,
    explore_world,
)

# About 1400 examples per test function, shared by the RPCs (at least 20 each), so that the module takes
# about 35 s however many RPCs there are: an admin example costs more than one call (a namespace seeded and
# deleted, sometimes API calls before it, a clock set and restored, a probe after CreateFault), and 2400
# examples, 42 per RPC, took about 60 s.
CALLS_PER_TEST = 1400
SHORT = settings(
    max_examples=max(20, CALLS_PER_TEST // len(RPCS)),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


async def _start() -> tuple[Emulator, Channels, World]:
    emulator = Emulator(Settings(host="127.0.0.1", port=0, grace_seconds=0))
    await emulator.start()
    channels = Channels.open(f"127.0.0.1:{emulator.port}")
    return emulator, channels, await explore_world(channels.unary)


async def _stop(emulator: Emulator, channels: Channels) -> None:
    await channels.close()
    await emulator.stop()


@pytest.fixture(scope="module")
def fuzzer() -> Iterator[Fuzzer]:
    """A fuzzer of the in-process emulator, which serves on an event loop of its own that the synchronous
    hypothesis tests run for each example; the emulator's logged bugs are kept by flow id."""
    tracebacks = InProcessTracebacks()
    logger = logging.getLogger("fleet_emulator")
    logger.addHandler(tracebacks)
    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:  # not pytest-asyncio's loop
        emulator, channels, world = runner.run(_start())
        try:
            yield Fuzzer(runner, channels, world, tracebacks)
        finally:
            runner.run(_stop(emulator, channels))
            logger.removeHandler(tracebacks)


@pytest.mark.parametrize("rpc", RPCS, ids=str)
@SHORT
@given(data=st.data())
def test_well_typed_requests_with_adversarial_values(fuzzer: Fuzzer, rpc: Rpc, data: st.DataObject) -> None:
    fuzzer.run(data.draw(examples(rpc, TYPED, fuzzer.seeds), label="example"))


@pytest.mark.parametrize("rpc", RPCS, ids=str)
@SHORT
@given(data=st.data())
def test_malformed_request_bytes(fuzzer: Fuzzer, rpc: Rpc, data: st.DataObject) -> None:
    fuzzer.run(data.draw(examples(rpc, MALFORMED, fuzzer.seeds), label="example"))


def test_the_helper_calls_kept_the_contract(fuzzer: Fuzzer) -> None:
    """The calls that set the clock before examples, restored it and deleted the admin examples'
    namespaces (run last: they are the module's examples' helpers)."""
    assert not fuzzer.helper_violations, "\n".join(f"{what}: {v}" for what, v in fuzzer.helper_violations)
