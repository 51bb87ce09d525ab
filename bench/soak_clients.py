"""The soak test's clients: stream holder processes and one traffic process, spawned, all on ``grpc.aio``.

A holder opens its share of the long-lived streams (``StreamVehicleEvents`` of a demo fleet's durable
stream, or ``SubscribeToVehicleStates`` of the fleet), ``STREAMS_PER_CHANNEL`` to a channel of its own
connection, reads everything they send, reports once every stream gave its first message, and, while the
traffic runs, closes random streams and reopens them (an event stream resumes from the last
``message_id`` it read; a broken stream is reopened the same way after a second). The traffic process
keeps the default namespace busy through the admin service, at a steady pace: ``PublishEvent`` (a lock
change) and ``UpdateVehicle`` (the battery, which also sends a live state) in turns on both fleets, plus
``GetVehicle`` and ``ListVehicles``; and every few seconds it takes a fresh namespace
(``x-emulator-namespace: soak-<n>``), seeds it by using it, opens two streams there and changes a few
vehicles, and after its lifetime closes them and leaves the namespace idle (or deletes it with
``DeleteNamespace``). Both kinds of process wait for ``multiprocessing`` events from the soak and send
their counters back on a queue when they stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import statistics
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event as EventType
from typing import Any

import grpc

from fleet_emulator._gen.emulator.admin.v1 import admin_pb2
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as v2

FLEETS = ("hamburg", "hanover")
V2 = "/moia.fleet.state.v2.FleetStateService"
ADMIN = "/emulator.admin.v1.AdminService"
NAMESPACE_HEADER = "x-emulator-namespace"
STREAMS_PER_CHANNEL = 100
CALL_TIMEOUT_SECONDS = 30.0
OPEN_TIMEOUT_SECONDS = 120.0
RETRY_SECONDS = 1.0
PUBLISH_IN_FLIGHT = 32  # at most this many traffic calls wait for an answer; beyond, the pace slips
CHANNEL_OPTIONS = (("grpc.use_local_subchannel_pool", 1),)  # one connection per channel
NAMESPACE_PUBLISHES = 5


@dataclass(frozen=True)
class Control:
    """What the soak tells its clients: the traffic started, and every client must stop (and close)."""

    traffic: EventType
    stop: EventType


@dataclass(frozen=True)
class TrafficPlan:
    per_second: float  # PublishEvent and UpdateVehicle together
    unary_per_second: float  # GetVehicle and ListVehicles together
    namespace_every: float  # seconds between fresh namespaces; 0: none
    namespace_lifetime: float  # seconds a namespace is used
    delete_namespaces: bool


def stream_kinds(streams: int) -> list[tuple[str, str]]:
    """``streams`` (kind, fleet) pairs: half event streams, half live states, each half over both fleets."""
    kinds = ("events", "states")
    return [(kinds[(i // 2) % 2], FLEETS[i % 2]) for i in range(streams)]


# ----------------------------------------------------------------------------------------------- holders


@dataclass
class Slot:
    """One long-lived stream of a holder and what it saw."""

    kind: str
    fleet: str
    last_message_id: str = ""
    received: int = 0
    opens: int = 0
    first: asyncio.Event = field(default_factory=asyncio.Event)
    call: Any = None
    task: asyncio.Task[None] | None = None
    errors: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class HolderReport:
    index: int
    streams: int
    received: int
    reopened: int
    resumed: int
    errors: dict[str, int]


class Holder:
    """A holder process's streams over its channels."""

    def __init__(self, channels: Sequence[grpc.aio.Channel], kinds: Sequence[tuple[str, str]]) -> None:
        self.slots = [Slot(kind, fleet) for kind, fleet in kinds]
        events = (v2.StreamRequest.SerializeToString, v2.StreamResponse.FromString)
        states = (
            v2.SubscribeToVehicleStatesRequest.SerializeToString,
            v2.SubscribeToVehicleStatesResponse.FromString,
        )
        self.events = [channel.unary_stream(f"{V2}/StreamVehicleEvents", *events) for channel in channels]
        self.states = [
            channel.unary_stream(f"{V2}/SubscribeToVehicleStates", *states) for channel in channels
        ]
        self.reopened = 0
        self.resumed = 0

    def _open(self, index: int, slot: Slot) -> Any:
        channel = index // STREAMS_PER_CHANNEL
        slot.opens += 1
        if slot.kind == "events":
            request = v2.StreamRequest(event_id=f"fleets/{slot.fleet}/vehicle-events")
            if slot.last_message_id:
                request.last_message_id = slot.last_message_id
                self.resumed += 1
            return self.events[channel](request, wait_for_ready=True)
        return self.states[channel](
            v2.SubscribeToVehicleStatesRequest(fleet_id=slot.fleet), wait_for_ready=True
        )

    async def _hold(self, index: int, slot: Slot) -> None:
        """Keep the slot's stream open and read it; reopen (resuming) after a failure."""
        while True:
            slot.call = self._open(index, slot)
            try:
                async for message in slot.call:
                    slot.received += 1
                    slot.first.set()
                    if slot.kind == "events" and message.message_id:
                        slot.last_message_id = message.message_id
                slot.errors["ended by the server"] += 1
            except grpc.aio.AioRpcError as error:
                slot.errors[error.code().name] += 1
            await asyncio.sleep(RETRY_SECONDS)

    def start(self, index: int) -> None:
        slot = self.slots[index]
        slot.task = asyncio.create_task(self._hold(index, slot))

    async def close(self, index: int) -> None:
        slot = self.slots[index]
        if slot.call is not None:
            slot.call.cancel()
        if slot.task is not None:
            slot.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await slot.task
        slot.task = slot.call = None

    async def reopen(self, index: int) -> None:
        await self.close(index)
        self.reopened += 1
        self.start(index)

    async def churn(self, per_second: float) -> None:
        """Close and reopen a random stream ``per_second`` times a second."""
        while True:
            await asyncio.sleep(random.expovariate(per_second))
            await self.reopen(random.randrange(len(self.slots)))


def holder_process(
    address: str, share: tuple[int, int, int], reopen_per_second: float, control: Control, results: Queue[Any]
) -> None:
    """Process entry point: ``share`` is the holder's index, its first stream and its number of streams."""
    asyncio.run(_holder(address, share, reopen_per_second, control, results))


@contextlib.asynccontextmanager
async def _channels(address: str, count: int) -> AsyncIterator[list[grpc.aio.Channel]]:
    channels = [grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS) for _ in range(count)]
    try:
        yield channels
    finally:
        await asyncio.gather(*(channel.close(None) for channel in channels))


async def _holder(
    address: str, share: tuple[int, int, int], reopen_per_second: float, control: Control, results: Queue[Any]
) -> None:
    """Open the share's streams (a slice of ``stream_kinds``), report ("opened", index, count), churn while
    the traffic runs, close everything on stop and report a ``HolderReport``."""
    index, first, streams = share
    kinds = stream_kinds(first + streams)[first:]
    async with _channels(address, -(-streams // STREAMS_PER_CHANNEL)) as channels:
        holder = Holder(channels, kinds)
        for i in range(len(holder.slots)):
            holder.start(i)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(OPEN_TIMEOUT_SECONDS):
                await asyncio.gather(*(slot.first.wait() for slot in holder.slots))
        results.put(("opened", index, sum(slot.first.is_set() for slot in holder.slots)))
        await asyncio.to_thread(_either, control.traffic, control.stop)
        churn = asyncio.create_task(holder.churn(reopen_per_second)) if reopen_per_second > 0 else None
        await asyncio.to_thread(control.stop.wait)
        if churn is not None:
            churn.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await churn
        await asyncio.gather(*(holder.close(i) for i in range(len(holder.slots))))
    errors: Counter[str] = Counter()
    for slot in holder.slots:
        errors.update(slot.errors)
    received = sum(slot.received for slot in holder.slots)
    results.put(
        HolderReport(index, len(holder.slots), received, holder.reopened, holder.resumed, dict(errors))
    )


def _either(first: EventType, second: EventType) -> None:
    """Wait until one of two ``multiprocessing`` events is set."""
    while not (first.wait(0.2) or second.is_set()):
        pass


# ----------------------------------------------------------------------------------------------- traffic


@dataclass
class Calls:
    """Latencies (seconds) and failures of one kind of call."""

    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        p99 = ordered[max(0, -(-99 * len(ordered) // 100) - 1)] * 1000 if ordered else None
        return {
            "ok": len(ordered),
            "errors": dict(self.errors),
            "p50_ms": round(statistics.median(ordered) * 1000, 2) if ordered else None,
            "p99_ms": None if p99 is None else round(p99, 2),
        }


@dataclass(frozen=True)
class TrafficReport:
    calls: dict[str, dict[str, Any]]
    namespaces: int
    namespace_stream_messages: int


class Traffic:
    def __init__(self, channel: grpc.aio.Channel, vehicles: dict[str, list[str]], plan: TrafficPlan) -> None:
        self.channel = channel
        self.vehicles = vehicles
        self.plan = plan
        self.calls: dict[str, Calls] = {}
        self.in_flight = asyncio.Semaphore(PUBLISH_IN_FLIGHT)
        self.namespaces = 0
        self.namespace_messages = 0
        self.tasks: set[asyncio.Task[None]] = set()

    async def call(self, name: str, method: str, request: Any, namespace: str = "") -> None:
        """One unary call, timed and counted under ``name``."""
        metadata = ((NAMESPACE_HEADER, namespace),) if namespace else ()
        send = self.channel.unary_unary(method, type(request).SerializeToString, None)
        calls = self.calls.setdefault(name, Calls())
        sent = time.perf_counter()
        try:
            await send(request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS)
            calls.latencies.append(time.perf_counter() - sent)
        except grpc.aio.AioRpcError as error:
            calls.errors[error.code().name] += 1

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _limited(self, name: str, method: str, request: Any, namespace: str = "") -> None:
        try:
            await self.call(name, method, request, namespace)
        finally:
            self.in_flight.release()

    async def paced(self, per_second: float, next_call: Callable[[int], tuple[Any, ...]]) -> None:
        """``next_call(n)`` gives the n-th call; send one every 1/``per_second`` s, not waiting for the
        answers (but for a free place among ``PUBLISH_IN_FLIGHT``)."""
        started, n = time.monotonic(), 0
        while True:
            n += 1
            await asyncio.sleep(max(0.0, started + n / per_second - time.monotonic()))
            await self.in_flight.acquire()
            self._spawn(self._limited(*next_call(n)))

    def change(self, n: int, namespace: str = "") -> tuple[str, str, Any, str]:
        """The n-th change: a published lock change or a battery update, fleets and vehicles in turns."""
        fleet = FLEETS[n % 2]
        vehicle_id = random.choice(self.vehicles[fleet])
        if (n // 2) % 2:
            lock = random.choice((v2.LOCK_STATE_LOCKED, v2.LOCK_STATE_UNLOCKED))
            event = v2.Event(vehicle_id=vehicle_id, lock_changed=v2.LockChanged(lock_state=lock))
            return (
                "PublishEvent",
                f"{ADMIN}/PublishEvent",
                admin_pb2.PublishEventRequest(event=event),
                namespace,
            )
        soc = round(random.uniform(15, 95), 1)
        vehicle = v2.Vehicle(id=vehicle_id, battery=v2.Battery(state_of_charge_percent=soc))
        request = admin_pb2.UpdateVehicleRequest(vehicle=vehicle)
        request.update_mask.paths.append("battery.state_of_charge_percent")
        return "UpdateVehicle", f"{ADMIN}/UpdateVehicle", request, namespace

    def read(self, n: int) -> tuple[str, str, Any]:
        fleet = FLEETS[n % 2]
        if (n // 2) % 2:
            request = v2.ListVehiclesRequest(fleet_id=fleet, page_size=50)
            return "ListVehicles", f"{V2}/ListVehicles", request
        request_get = v2.GetVehicleRequest(vehicle_id=random.choice(self.vehicles[fleet]))
        return "GetVehicle", f"{V2}/GetVehicle", request_get

    async def namespace_life(self, n: int) -> None:
        """Use a fresh namespace for ``namespace_lifetime`` seconds: reads, changes and two streams."""
        name = f"soak-{n:04d}"
        listing = v2.ListVehiclesRequest(fleet_id="hamburg")
        await self.call("namespace ListVehicles", f"{V2}/ListVehicles", listing, name)
        metadata = ((NAMESPACE_HEADER, name),)
        events = self.channel.unary_stream(
            f"{V2}/StreamVehicleEvents", v2.StreamRequest.SerializeToString, None
        )
        states = self.channel.unary_stream(
            f"{V2}/SubscribeToVehicleStates", v2.SubscribeToVehicleStatesRequest.SerializeToString, None
        )
        calls = [
            events(v2.StreamRequest(event_id="fleets/hamburg/vehicle-events"), metadata=metadata),
            states(v2.SubscribeToVehicleStatesRequest(fleet_id="hamburg"), metadata=metadata),
        ]
        readers = [asyncio.create_task(self._drain(call)) for call in calls]
        try:
            for k in range(NAMESPACE_PUBLISHES):
                label, method, request, _ = self.change(k, name)
                await self.call(f"namespace {label}", method, request, name)
            await asyncio.sleep(self.plan.namespace_lifetime)
        finally:
            for call in calls:
                call.cancel()
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
        if self.plan.delete_namespaces:
            request = admin_pb2.DeleteNamespaceRequest(namespace=name)
            await self.call("DeleteNamespace", f"{ADMIN}/DeleteNamespace", request)

    async def _drain(self, call: Any) -> None:
        with contextlib.suppress(grpc.aio.AioRpcError):
            async for _ in call:
                self.namespace_messages += 1

    async def namespaces_in_turn(self) -> None:
        while True:
            self.namespaces += 1
            self._spawn(self.namespace_life(self.namespaces))
            await asyncio.sleep(self.plan.namespace_every)

    def report(self) -> TrafficReport:
        calls = {name: calls.summary() for name, calls in sorted(self.calls.items())}
        return TrafficReport(calls, self.namespaces, self.namespace_messages)


async def demo_vehicles(channel: grpc.aio.Channel) -> dict[str, list[str]]:
    """The vehicle ids of each demo fleet."""
    send = channel.unary_unary(
        f"{V2}/ListVehicles", v2.ListVehiclesRequest.SerializeToString, v2.ListVehiclesResponse.FromString
    )
    vehicles = {}
    for fleet in FLEETS:
        page = await send(
            v2.ListVehiclesRequest(fleet_id=fleet, page_size=1000), timeout=CALL_TIMEOUT_SECONDS
        )
        vehicles[fleet] = [vehicle.id for vehicle in page.vehicles]
    return vehicles


def traffic_process(address: str, plan: TrafficPlan, control: Control, results: Queue[Any]) -> None:
    asyncio.run(_traffic(address, plan, control, results))


async def _traffic(address: str, plan: TrafficPlan, control: Control, results: Queue[Any]) -> None:
    """Report "ready" once connected, run the traffic from ``control.traffic`` to ``control.stop``, then
    report a ``TrafficReport``."""
    async with grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS) as channel:
        traffic = Traffic(channel, await demo_vehicles(channel), plan)
        results.put(("ready",))
        await asyncio.to_thread(_either, control.traffic, control.stop)
        loops = [
            traffic.paced(plan.per_second, traffic.change),
            traffic.paced(plan.unary_per_second, traffic.read),
        ]
        if plan.namespace_every > 0:
            loops.append(traffic.namespaces_in_turn())
        running = [asyncio.create_task(loop) for loop in loops]
        await asyncio.to_thread(control.stop.wait)
        for task in [*running, *traffic.tasks]:
            task.cancel()  # calls still waiting for an answer, and the namespaces in use
        await asyncio.gather(*running, *traffic.tasks, return_exceptions=True)
    results.put(traffic.report())
