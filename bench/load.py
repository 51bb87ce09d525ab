"""Closed-loop unary client load from several spawned client processes, measured in common windows.

Each client process opens one channel, makes one call to connect, then waits at a barrier with the other
client processes so that all start together; it then keeps ``in_flight_per_process`` calls going (each
sends its next call when the previous answer arrives) through a warm-up and a measuring window. Calls that
finish inside the measuring window count, with their latency. The same code drives every server, in
turns; the response is parsed into the method's real response message, as a real client would.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import queue
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from time import perf_counter
from typing import TypeVar

import grpc
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.message import Message

import fleet_emulator.api.versions  # noqa: F401 - registers every served version's messages in the pool
from bench.report import Measurement

SPAWN = multiprocessing.get_context("spawn")
T = TypeVar("T")
CALL_TIMEOUT_SECONDS = 10.0
COLLECT_POLL_SECONDS = 0.5
START_TIMEOUT_SECONDS = 60.0

Samples = tuple[list[float], int]  # latencies in seconds of the calls that counted, and failed calls


@dataclass(frozen=True)
class StreamLoad:
    """The streaming load: subscriber processes; calls in flight in the publisher; a fan-out run publishes
    ``fanout_deliveries`` / subscribers events, at most ``fanout_max_events``; the latency run's rate,
    warm-up (not measured) and length; the number of events replayed; and raw Redis XADDs."""

    subscriber_processes: int = 2
    publish_in_flight: int = 16
    fanout_deliveries: int = 30_000
    fanout_max_events: int = 2_000
    latency_per_second: float = 100.0
    latency_warmup_seconds: float = 1.0
    latency_seconds: float = 4.0
    replay_events: int = 100_000
    redis_writes: int = 20_000

    def events_for(self, subscribers: int) -> int:
        return min(self.fanout_max_events, self.fanout_deliveries // subscribers)


@dataclass(frozen=True)
class ScenarioLoad:
    """Vehicles in the scenario (spread over ``FLEETS``), loads per backend, the quiet window before them
    and the pace of the GetVehicle probe."""

    vehicles: int = 10_000
    rounds: int = 2
    quiet_seconds: float = 5.0
    probe_per_second: float = 200.0


@dataclass(frozen=True)
class Load:
    """The client load: client processes, calls in flight in each, and windows (one per server per round)
    of the unary benchmarks, and the streaming load."""

    client_processes: int = 4
    in_flight_per_process: int = 8
    warmup_seconds: float = 1.0
    measure_seconds: float = 4.0
    rounds: int = 2
    streams: StreamLoad = StreamLoad()
    scenario: ScenarioLoad = ScenarioLoad()


@dataclass(frozen=True)
class UnaryCall:
    """One unary call as the clients send it: the method path and the serialized request."""

    method: str
    request: bytes


def measure_unary_in_turns(addresses: Sequence[str], call: UnaryCall, load: Load) -> list[Measurement]:
    """Drive ``call`` against each address in turn, ``load.rounds`` times, so that drift hits all alike."""
    latencies: dict[str, list[float]] = {address: [] for address in addresses}
    errors = dict.fromkeys(addresses, 0)
    for _ in range(load.rounds):
        for address in addresses:
            round_latencies, round_errors = drive_unary(address, call, load)
            latencies[address] += round_latencies
            errors[address] += round_errors
    seconds = load.rounds * load.measure_seconds
    return [Measurement.from_latencies(latencies[a], seconds, errors[a]) for a in addresses]


def drive_unary(address: str, call: UnaryCall, load: Load) -> Samples:
    """One measuring window of ``call`` against ``address`` from every client process, combined."""
    barrier = SPAWN.Barrier(load.client_processes)
    results: Queue[Samples] = SPAWN.Queue()
    args = (address, call, load, barrier, results)
    clients = [SPAWN.Process(target=_client_process, args=args) for _ in range(load.client_processes)]
    for client in clients:
        client.start()
    wait = START_TIMEOUT_SECONDS + load.warmup_seconds + load.measure_seconds + CALL_TIMEOUT_SECONDS
    try:
        samples = collect(results, len(clients), clients, wait)
    finally:
        stop_all(clients)
    return [lat for lats, _ in samples for lat in lats], sum(errors for _, errors in samples)


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


def _client_process(
    address: str, call: UnaryCall, load: Load, barrier: Barrier, results: Queue[Samples]
) -> None:
    results.put(asyncio.run(_drive(address, call, load, barrier)))


def _response_class(method: str) -> type[Message]:
    """The generated response message class of a method path such as ``/pkg.Service/Method``."""
    full_name = method.lstrip("/").replace("/", ".")
    return message_factory.GetMessageClass(descriptor_pool.Default().FindMethodByName(full_name).output_type)


async def _drive(address: str, call: UnaryCall, load: Load, barrier: Barrier) -> Samples:
    parse = _response_class(call.method).FromString
    async with grpc.aio.insecure_channel(address) as channel:
        send = channel.unary_unary(call.method, request_serializer=None, response_deserializer=parse)
        await send(call.request, timeout=CALL_TIMEOUT_SECONDS, wait_for_ready=True)
        await asyncio.to_thread(barrier.wait, START_TIMEOUT_SECONDS)
        start = perf_counter() + load.warmup_seconds
        window = (start, start + load.measure_seconds)
        per_caller = await asyncio.gather(
            *(_call_in_a_loop(send, call.request, window) for _ in range(load.in_flight_per_process))
        )
    return [lat for lats, _ in per_caller for lat in lats], sum(errors for _, errors in per_caller)


async def _call_in_a_loop(
    send: grpc.aio.UnaryUnaryMultiCallable[bytes, Message], request: bytes, window: tuple[float, float]
) -> Samples:
    """Call back to back until the window ends; keep the latencies of the calls that finished inside it."""
    window_start, window_end = window
    latencies: list[float] = []
    errors = 0
    while (sent := perf_counter()) < window_end:
        try:
            await send(request, timeout=CALL_TIMEOUT_SECONDS)
        except grpc.aio.AioRpcError:
            errors += 1
            continue
        done = perf_counter()
        if window_start <= done < window_end:
            latencies.append(done - sent)
    return latencies, errors
