"""Streaming client load: subscriber processes, a publisher process and a replay reader, all spawned.

``deliver`` spreads the subscribers of StreamVehicleEvents over a few processes (one channel each); every
stream reads its first message (the current position) before its process waits at a barrier with the
publisher, so no event is published before everyone listens. The publisher then keeps ``in_flight``
PublishEvent calls going, back to back or paced to a rate, each stamping the event's ``occur_time`` with
its send time; the emulator keeps it, so every subscriber measures publish-to-receive latency on the one
clock of this machine. Throughput is every event received over the time from the first send to the last
receipt; a stream silent for ``IDLE_SECONDS`` stops early. ``replay`` reads a retained stream from a
message id on one stream. Every call has a deadline, and every process is stopped at the end.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier

import grpc

from bench.load import CALL_TIMEOUT_SECONDS, SPAWN, START_TIMEOUT_SECONDS, collect, stop_all
from bench.report import Measurement
from bench.stream_servers import EVENT_ID, PUBLISH_METHOD, STREAM_METHOD, sample_event
from fleet_emulator._gen.emulator.admin.v1 import admin_pb2
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as v2

DELIVERY_TIMEOUT_SECONDS = 120.0
IDLE_SECONDS = 5.0


@dataclass(frozen=True)
class Publishing:
    """What the publisher sends: ``events`` events, paced to ``per_second`` (None: back to back)."""

    events: int
    in_flight: int
    per_second: float | None = None


@dataclass(frozen=True)
class Received:
    """What one subscriber process saw: events, the wall time of the last one, latencies, failed streams."""

    events: int
    last_at: float
    latencies_s: list[float]
    failures: int


def deliver(
    address: str, subscribers: int, processes: int, publishing: Publishing, unmeasured: int
) -> Measurement:
    """Publish to ``subscribers`` streams; the latencies of each stream's first ``unmeasured`` events do
    not count (a warm-up); errors are failed publishes plus streams that failed or missed events."""
    shares = [subscribers // processes + (i < subscribers % processes) for i in range(processes)]
    shares = [share for share in shares if share]
    barrier = SPAWN.Barrier(len(shares) + 1)
    received: Queue[Received] = SPAWN.Queue()
    published: Queue[tuple[float, int]] = SPAWN.Queue()
    expected = (publishing.events, unmeasured)
    children = [
        SPAWN.Process(target=_subscriber_process, args=(address, share, expected, barrier, received))
        for share in shares
    ]
    children.append(SPAWN.Process(target=_publisher_process, args=(address, publishing, barrier, published)))
    for child in children:
        child.start()
    try:
        wait = START_TIMEOUT_SECONDS + DELIVERY_TIMEOUT_SECONDS + CALL_TIMEOUT_SECONDS
        seen = collect(received, len(shares), children, wait)
        [(started, publish_errors)] = collect(published, 1, children, wait)
    finally:
        stop_all(children)
    events = sum(part.events for part in seen)
    latencies = [latency for part in seen for latency in part.latencies_s]
    errors = publish_errors + sum(part.failures for part in seen)
    ended = max(part.last_at for part in seen) if events else time.time()
    return Measurement.from_latencies(latencies, ended - started, errors, events)


def _subscriber_process(
    address: str, streams: int, expected: tuple[int, int], barrier: Barrier, results: Queue[Received]
) -> None:
    results.put(asyncio.run(_subscribe(address, streams, expected, barrier)))


async def _subscribe(address: str, streams: int, expected: tuple[int, int], barrier: Barrier) -> Received:
    events, unmeasured = expected
    request = v2.StreamRequest(event_id=EVENT_ID).SerializeToString()
    timeout = START_TIMEOUT_SECONDS + DELIVERY_TIMEOUT_SECONDS
    async with grpc.aio.insecure_channel(address) as channel:
        open_stream = channel.unary_stream(STREAM_METHOD, None, v2.StreamResponse.FromString)
        calls = [open_stream(request, timeout=timeout, wait_for_ready=True) for _ in range(streams)]
        subscribed = [call for call in calls if await _subscribed(call)]
        await asyncio.to_thread(barrier.wait, START_TIMEOUT_SECONDS)
        per_stream = await asyncio.gather(*(_receive(call, events, unmeasured) for call in subscribed))
        for call in calls:
            call.cancel()
    return Received(
        events=sum(count for count, _, _ in per_stream),
        last_at=max((last for _, last, _ in per_stream), default=0.0),
        latencies_s=[latency for _, _, latencies in per_stream for latency in latencies],
        failures=streams - len(subscribed) + sum(count < events for count, _, _ in per_stream),
    )


async def _subscribed(call: grpc.aio.UnaryStreamCall[bytes, v2.StreamResponse]) -> bool:
    """Whether the stream's first message, the current position, came."""
    try:
        return isinstance(await call.read(), v2.StreamResponse)
    except grpc.aio.AioRpcError:
        return False


async def _receive(
    call: grpc.aio.UnaryStreamCall[bytes, v2.StreamResponse], events: int, unmeasured: int
) -> tuple[int, float, list[float]]:
    """Read ``events`` events, or fewer if the stream fails or stays silent for ``IDLE_SECONDS``; their
    count, the wall time of the last one (0 when none came) and their latencies."""
    loop = asyncio.get_running_loop()
    count, last_ns, latencies = 0, 0, []
    try:
        async with asyncio.timeout(IDLE_SECONDS) as idle:
            while count < events:
                message = await call.read()
                if not isinstance(message, v2.StreamResponse):
                    break  # the stream ended
                last_ns = time.time_ns()
                idle.reschedule(loop.time() + IDLE_SECONDS)
                count += 1
                if count > unmeasured:
                    latencies.append((last_ns - message.event.occur_time.ToNanoseconds()) / 1e9)
    except (grpc.aio.AioRpcError, TimeoutError):
        pass  # counted as a failure by the events missing
    return count, last_ns / 1e9, latencies


def _publisher_process(
    address: str, publishing: Publishing, barrier: Barrier, results: Queue[tuple[float, int]]
) -> None:
    results.put(asyncio.run(_publish(address, publishing, barrier)))


async def _publish(address: str, publishing: Publishing, barrier: Barrier) -> tuple[float, int]:
    """Publish every event; the wall time of the first send and the number of failed calls."""
    async with grpc.aio.insecure_channel(address) as channel:
        send = channel.unary_unary(PUBLISH_METHOD, None, admin_pb2.PublishEventResponse.FromString)
        await asyncio.wait_for(channel.channel_ready(), START_TIMEOUT_SECONDS)
        await asyncio.to_thread(barrier.wait, START_TIMEOUT_SECONDS)
        started = time.time()
        indices = iter(range(publishing.events))
        errors = await asyncio.gather(
            *(
                _publish_some(send, indices, started, publishing.per_second)
                for _ in range(publishing.in_flight)
            )
        )
    return started, sum(errors)


async def _publish_some(
    send: grpc.aio.UnaryUnaryMultiCallable[bytes, admin_pb2.PublishEventResponse],
    indices: Iterator[int],
    started: float,
    per_second: float | None,
) -> int:
    """Publish the events whose index this caller takes from ``indices``; the number of failed calls."""
    request = admin_pb2.PublishEventRequest(event=sample_event())
    errors = 0
    for index in indices:
        if per_second is not None:
            await asyncio.sleep(started + index / per_second - time.time())
        request.event.occur_time.FromNanoseconds(time.time_ns())
        try:
            await send(request.SerializeToString(), timeout=CALL_TIMEOUT_SECONDS)
        except grpc.aio.AioRpcError:
            errors += 1
    return errors


def replay(address: str, last_message_id: str, events: int) -> Measurement:
    """Read ``events`` events after ``last_message_id`` on one stream, from a spawned client process."""
    results: Queue[tuple[int, float]] = SPAWN.Queue()
    client = SPAWN.Process(target=_replay_process, args=(address, last_message_id, events, results))
    client.start()
    try:
        [(count, seconds)] = collect(results, 1, [client], START_TIMEOUT_SECONDS + DELIVERY_TIMEOUT_SECONDS)
    finally:
        stop_all([client])
    return Measurement.from_latencies([], seconds, int(count < events), count)


def _replay_process(
    address: str, last_message_id: str, events: int, results: Queue[tuple[int, float]]
) -> None:
    results.put(asyncio.run(_replay(address, last_message_id, events)))


async def _replay(address: str, last_message_id: str, events: int) -> tuple[int, float]:
    """The events read (``events`` unless the stream failed) and the seconds from the call to the last."""
    request = v2.StreamRequest(event_id=EVENT_ID, last_message_id=last_message_id).SerializeToString()
    async with grpc.aio.insecure_channel(address) as channel:
        open_stream = channel.unary_stream(STREAM_METHOD, None, v2.StreamResponse.FromString)
        await asyncio.wait_for(channel.channel_ready(), START_TIMEOUT_SECONDS)
        started = time.perf_counter()
        call = open_stream(request, timeout=DELIVERY_TIMEOUT_SECONDS)
        count = 0
        try:
            async for _ in call:
                count += 1
                if count == events:
                    break
        except grpc.aio.AioRpcError:
            pass  # counted as an error by the events missing
        seconds = time.perf_counter() - started
        call.cancel()
    return count, seconds
