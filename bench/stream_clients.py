"""Streaming client load, in one spawned process per run on the load cores: subscribers, a publisher, a
replay reader.

``deliver`` opens ``subscribers`` StreamVehicleEvents calls spread over a few HTTP/2 connections of the
lean client in ``h2_streams`` (``grpc.aio`` could not read as fast as a bare server sends), waits until
every stream has its first message (the current position), then publishes through ``grpc.aio``
``PublishEvent`` calls, ``publish_in_flight`` at a time, each stamping the event's ``occur_time`` with its
send time (the emulator keeps it). Either paced to a rate (the latency runs: every message is parsed, and
the publish-to-receive latency of the events published inside the window counts, all on this machine's
clock), or back to back (the fan-out runs) but never more than ``ahead`` events ahead of the average
subscriber, so the server is never idle and its backlog stays bounded. Publishing lasts a warm-up and the
window; the deliveries received inside the window count, and the server side's CPU is sampled at its edges.
Afterwards every stream must receive every event that was published successfully: the run waits until they
have, or until nothing has arrived for ``IDLE_SECONDS``, and streams short of events are failures.

``replay`` reads a retained stream from a message id on one stream, again and again for the window (after a
warm-up replay cut at the warm-up's end), each replay cancelled once it has every event; a replay that
stalls for ``IDLE_SECONDS`` ends the run, short of events.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import count
from multiprocessing.queues import Queue

import grpc

from bench.cpu import Placement, Usage, UsageMeter
from bench.h2_streams import GrpcStream, H2Connection
from bench.load import CALL_TIMEOUT_SECONDS, SPAWN, START_TIMEOUT_SECONDS, collect, stop_all
from bench.servers import run_on_uvloop
from bench.stream_servers import EVENT_ID, PUBLISH_METHOD, STREAM_METHOD, sample_event
from fleet_emulator._gen.emulator.admin.v1 import admin_pb2
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as v2

DELIVERY_TIMEOUT_SECONDS = 300.0
IDLE_SECONDS = 5.0
WAKE_SECONDS = 0.5
Groups = Mapping[str, Sequence[int]]


@dataclass(frozen=True)
class Delivery:
    """A delivery run: ``subscribers`` streams over ``connections`` connections; the publisher paced to
    ``per_second`` or, when None, back to back at most ``ahead`` events ahead; ``latency``: parse every
    message for its publish-to-receive latency."""

    subscribers: int
    connections: int
    warmup_seconds: float
    seconds: float
    publish_in_flight: int
    per_second: float | None = None
    ahead: int = 200
    latency: bool = False


@dataclass(frozen=True)
class Delivered:
    """What a delivery run saw."""

    seconds: float
    deliveries: int  # events received inside the window, all streams together
    published: int  # PublishEvent calls that succeeded, warm-up included
    scheduled: int | None  # events the paced publisher was to publish, None when not paced
    publish_errors: int
    unsubscribed: int  # streams that never got their first message
    incomplete: int  # streams that did not receive every published event
    missed: int  # deliveries missing, all streams together
    latencies_s: list[float]
    usage: Usage

    @property
    def errors(self) -> int:
        return self.publish_errors + self.unsubscribed + self.incomplete


@dataclass(frozen=True)
class Replayed:
    """What a replay run saw: events and seconds of the measured replays, and those that fell short."""

    events: int
    seconds: float
    replays: int
    incomplete: int
    usage: Usage
    replay_seconds: list[float] = field(default_factory=list)


def deliver(address: str, delivery: Delivery, groups: Groups, where: Placement) -> Delivered:
    """Run ``delivery`` against ``address`` from a spawned process; ``groups`` are the server side's pids."""
    results: Queue[Delivered] = SPAWN.Queue()
    args = (address, delivery, dict(groups), where, results)
    client = SPAWN.Process(target=_delivery_process, args=args, name="delivery")
    client.start()
    try:
        timeout = (
            START_TIMEOUT_SECONDS + delivery.warmup_seconds + delivery.seconds + DELIVERY_TIMEOUT_SECONDS
        )
        [delivered] = collect(results, 1, [client], timeout)
    finally:
        stop_all([client])
    return delivered


def _delivery_process(
    address: str, delivery: Delivery, groups: Groups, where: Placement, results: Queue[Delivered]
) -> None:
    results.put(run_on_uvloop(_deliver(address, delivery, groups, where), where.load))


class _Progress:
    """Messages received, all told and inside the window, and a future that the next arrival completes."""

    def __init__(self, window_ns: tuple[int, int]) -> None:
        self.window_ns = window_ns
        self.total = 0
        self.inside = 0
        self.arrived: asyncio.Future[None] | None = None

    def add(self, messages: int, now_ns: int) -> None:
        self.total += messages
        if self.window_ns[0] <= now_ns < self.window_ns[1]:
            self.inside += messages
        if self.arrived is not None and not self.arrived.done():
            self.arrived.set_result(None)

    async def next_arrival(self, within: float) -> None:
        """Wait for the next arrival, at most ``within`` seconds."""
        if self.arrived is None or self.arrived.done():
            self.arrived = asyncio.get_running_loop().create_future()
        await asyncio.wait([self.arrived], timeout=within)


class _Latencies:
    """Publish-to-receive latencies of the events published inside the window (set once it is known)."""

    def __init__(self) -> None:
        self.window_ns = (0, 0)
        self.seconds: list[float] = []

    def measure(self, data: bytes, now_ns: int) -> None:
        message = v2.StreamResponse.FromString(data)
        if message.HasField("event"):
            occurred = message.event.occur_time.ToNanoseconds()
            if self.window_ns[0] <= occurred < self.window_ns[1]:
                self.seconds.append((now_ns - occurred) / 1e9)


async def _subscribe(
    address: str, delivery: Delivery, latencies: _Latencies
) -> tuple[list[H2Connection], list[GrpcStream]]:
    """Open every stream; wait for each one's first message (its position)."""
    host, port = address.rsplit(":", 1)
    connections = [await H2Connection.open(host, int(port)) for _ in range(delivery.connections)]
    request = v2.StreamRequest(event_id=EVENT_ID).SerializeToString()
    on_message = latencies.measure if delivery.latency else None
    streams = [
        connections[i % len(connections)].call(STREAM_METHOD, request, on_message)[1]
        for i in range(delivery.subscribers)
    ]
    positions = [asyncio.ensure_future(s.reach(1)) for s in streams] + [s.ended for s in streams]
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while any(s.count < 1 and not s.ended.done() for s in streams) and time.monotonic() < deadline:
        await asyncio.wait(positions, timeout=WAKE_SECONDS, return_when=asyncio.FIRST_COMPLETED)
        positions = [p for p in positions if not p.done()]
    return connections, streams


async def _deliver(address: str, delivery: Delivery, groups: Groups, where: Placement) -> Delivered:
    latencies = _Latencies()
    connections, streams = await _subscribe(address, delivery, latencies)
    subscribed = [s for s in streams if s.count >= 1 and not s.ended.done()]
    async with grpc.aio.insecure_channel(address) as channel:
        publish = channel.unary_unary(
            PUBLISH_METHOD,
            admin_pb2.PublishEventRequest.SerializeToString,
            admin_pb2.PublishEventResponse.FromString,
        )
        await asyncio.wait_for(channel.channel_ready(), START_TIMEOUT_SECONDS)
        started_ns = time.time_ns()
        window_ns = (
            started_ns + round(delivery.warmup_seconds * 1e9),
            started_ns + round((delivery.warmup_seconds + delivery.seconds) * 1e9),
        )
        latencies.window_ns = window_ns
        progress = _Progress(window_ns)
        progress.total = -len(subscribed)  # their positions came already
        for connection in connections:
            connection.on_messages = progress.add
        usage_task = asyncio.ensure_future(_usage(groups, where, window_ns))
        sent = count()
        outcomes = await asyncio.gather(
            *(
                _publish_some(publish, sent, delivery, progress, len(subscribed), started_ns, window_ns[1])
                for _ in range(delivery.publish_in_flight)
            )
        )
        usage = await usage_task
    published = sum(ok for ok, _ in outcomes)
    await _drain(subscribed, published, progress)
    missed = sum(max(0, published - (s.count - 1)) for s in subscribed)
    for connection in connections:
        connection.close()
    return Delivered(
        seconds=delivery.seconds,
        deliveries=progress.inside,
        published=published,
        scheduled=None
        if delivery.per_second is None
        else round(delivery.per_second * (delivery.warmup_seconds + delivery.seconds)),
        publish_errors=sum(errors for _, errors in outcomes),
        unsubscribed=len(streams) - len(subscribed),
        incomplete=sum(s.count - 1 < published for s in subscribed),
        missed=missed,
        latencies_s=latencies.seconds,
        usage=usage,
    )


async def _usage(groups: Groups, where: Placement, window_ns: tuple[int, int]) -> Usage:
    """The server side's CPU over the window."""
    meter = UsageMeter(groups, where, load=[os.getpid()])
    await asyncio.sleep(max(0.0, (window_ns[0] - time.time_ns()) / 1e9))
    meter.start()
    await asyncio.sleep(max(0.0, (window_ns[1] - time.time_ns()) / 1e9))
    return meter.stop()


async def _publish_some(
    publish: grpc.aio.UnaryUnaryMultiCallable[admin_pb2.PublishEventRequest, admin_pb2.PublishEventResponse],
    sent: count[int],
    delivery: Delivery,
    progress: _Progress,
    subscribers: int,
    started_ns: int,
    end_ns: int,
) -> tuple[int, int]:
    """Publish until the window ends; the calls that succeeded and those that failed."""
    request = admin_pb2.PublishEventRequest(event=sample_event())
    ok = errors = 0
    while True:
        index = next(sent)
        if delivery.per_second is not None:
            at_ns = started_ns + round(index * 1e9 / delivery.per_second)
            if at_ns >= end_ns:
                return ok, errors
            await asyncio.sleep((at_ns - time.time_ns()) / 1e9)
        else:
            while index - progress.total / max(1, subscribers) > delivery.ahead and time.time_ns() < end_ns:
                await progress.next_arrival(WAKE_SECONDS)
        if delivery.per_second is None and time.time_ns() >= end_ns:
            return ok, errors
        request.event.occur_time.FromNanoseconds(time.time_ns())
        request.event.id = str(uuid.uuid4())  # a new event: PublishEvent appends an event id only once
        try:
            await publish(request, timeout=CALL_TIMEOUT_SECONDS)
            ok += 1
        except grpc.aio.AioRpcError:
            errors += 1


async def _drain(streams: Sequence[GrpcStream], published: int, progress: _Progress) -> None:
    """Wait until every stream has every published event, or nothing came for ``IDLE_SECONDS``."""
    deadline = time.monotonic() + DELIVERY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if all(s.count - 1 >= published or s.ended.done() for s in streams):
            return
        before = progress.total
        await progress.next_arrival(IDLE_SECONDS)
        if progress.total == before:
            return


def replay(
    address: str,
    last_message_id: str,
    events: int,
    windows: tuple[float, float],
    groups: Groups,
    where: Placement,
) -> Replayed:
    """Replay ``events`` events after ``last_message_id`` for a (warm-up, window) of seconds."""
    results: Queue[Replayed] = SPAWN.Queue()
    args = (address, last_message_id, events, windows, dict(groups), where, results)
    client = SPAWN.Process(target=_replay_process, args=args, name="replay")
    client.start()
    try:
        timeout = START_TIMEOUT_SECONDS + sum(windows) + 2 * DELIVERY_TIMEOUT_SECONDS
        [replayed] = collect(results, 1, [client], timeout)
    finally:
        stop_all([client])
    return replayed


def _replay_process(
    address: str,
    last_message_id: str,
    events: int,
    windows: tuple[float, float],
    groups: Groups,
    where: Placement,
    results: Queue[Replayed],
) -> None:
    results.put(run_on_uvloop(_replay(address, last_message_id, events, windows, groups, where), where.load))


async def _replay(
    address: str,
    last_message_id: str,
    events: int,
    windows: tuple[float, float],
    groups: Groups,
    where: Placement,
) -> Replayed:
    host, port = address.rsplit(":", 1)
    connection = await H2Connection.open(host, int(port))
    request = v2.StreamRequest(event_id=EVENT_ID, last_message_id=last_message_id).SerializeToString()

    async def one(within: float) -> tuple[int, float]:
        """One replay, cut after ``within`` seconds or ``IDLE_SECONDS`` without a message; the events read
        and the seconds taken."""
        started = time.perf_counter()
        stream_id, stream = connection.call(STREAM_METHOD, request)
        done, seen = [stream.reach(events), stream.ended], -1
        while stream.count > seen and (left := started + within - time.perf_counter()) > 0:
            seen = stream.count
            finished, _ = await asyncio.wait(
                done, timeout=min(left, IDLE_SECONDS), return_when="FIRST_COMPLETED"
            )
            if finished:
                break
        seconds = time.perf_counter() - started
        connection.cancel(stream_id)
        return stream.count, seconds

    warmup, window = windows
    if warmup > 0:
        await one(warmup)
    meter = UsageMeter(groups, where, load=[os.getpid()])
    meter.start()
    started = time.perf_counter()
    read, incomplete, durations = 0, 0, list[float]()
    while not durations or time.perf_counter() - started < window:
        got, seconds = await one(DELIVERY_TIMEOUT_SECONDS)
        read += got
        durations.append(seconds)
        if got < events:
            incomplete += 1
            break  # the next would fail the same way
    usage = meter.stop()
    connection.close()
    return Replayed(read, sum(durations), len(durations), incomplete, usage, durations)
