"""The streaming side of the servers under test: the event every benchmark publishes, the emulator's prefill
and the bare ``grpc.aio`` baseline for StreamVehicleEvents.

All events are one battery change of a Hamburg vehicle with every field filled in, so the emulator stores and
sends them as they are and the baseline's messages have the same type and size. The baseline is a bare log
that does what a minimal servicer must: ``PublishEvent`` parses the request, builds the ``StreamResponse``
(the event and a message id) once, appends it to an in-process list and wakes the subscribers, and answers a
``PublishEventResponse``; ``StreamVehicleEvents`` sends the current position then every later message, or with
``last_message_id`` every message from the start (the replay). Both first send the emulator's response header
(``x-flow-id``, a new id per call, as ``servers.BareFleetState`` does). Messages are built once and serialized
by grpc on every send, as the emulator's are. The emulator is prefilled in its own process through its domain
(``EventStreams.publish``), many appends at a time.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Collection
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from typing import Any

import grpc

from bench.servers import run_on_uvloop, serve_bare
from bench.unary import HAMBURG_VEHICLE_ID
from fleet_emulator._gen.emulator.admin.v1 import admin_pb2
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as v2
from fleet_emulator.api.versions import V2Servicer
from fleet_emulator.domain.events import BatteryChanged, Event
from fleet_emulator.domain.flow import FLOW_ID_HEADER, new_flow_id
from fleet_emulator.domain.message_ids import ZERO
from fleet_emulator.server import Emulator

EVENT_ID = "fleets/hamburg/vehicle-events"
STREAM_METHOD = "/moia.fleet.state.v2.FleetStateService/StreamVehicleEvents"
PUBLISH_METHOD = "/emulator.admin.v1.AdminService/PublishEvent"
PREFILL_CONCURRENCY = 50  # below the Redis backend's connection pool (100 in redis-py 8)
START_POSITION = str(ZERO)  # the position before the first event of a stream that started empty


def _domain_event() -> Event:
    """A complete event, stamped now, with a fresh id and flow id."""
    now = datetime.now(UTC)
    change = BatteryChanged(state_of_charge_percent=81.5, range_km=243.25)
    return Event(str(uuid.uuid4()), HAMBURG_VEHICLE_ID, "hamburg", now, now, str(uuid.uuid4()), change)


def sample_event() -> v2.Event:
    """The sample event as the emulator sends it in v2."""
    message: v2.Event = V2Servicer.adapter.event(_domain_event())
    return message


def _message_id(sequence: int = 0) -> str:
    """A message id of today's length, as the emulator gives the events of a millisecond."""
    return f"{time.time_ns() // 1_000_000}-{sequence}"


def stream_message(event: v2.Event) -> bytes:
    """The serialized StreamResponse carrying ``event``."""
    return v2.StreamResponse(event=event, message_id=_message_id()).SerializeToString()


async def prefill_stream(count: int, emulator: Emulator) -> None:
    """Publish ``count`` sample events on Hamburg's stream, which must start empty (see START_POSITION)."""
    streams = emulator.namespaces.default.emulation.streams
    if await streams.log.last_id(EVENT_ID) != ZERO:
        raise RuntimeError(f"{EVENT_ID} is not empty: start the emulator on an empty backend")
    for start in range(0, count, PREFILL_CONCURRENCY):
        batch = range(start, min(count, start + PREFILL_CONCURRENCY))
        await asyncio.gather(*(streams.publish(_domain_event()) for _ in batch))


class BareLog:
    """The baseline's stream: messages in a list and a wake-up event replaced on every append."""

    def __init__(self, replay_message: bytes, replay_count: int) -> None:
        self.messages = [v2.StreamResponse.FromString(replay_message)] * replay_count
        self.position = v2.StreamResponse(message_id=_message_id())
        self.appended = asyncio.Event()
        self.sequence = 0

    async def publish(
        self, request: admin_pb2.PublishEventRequest, context: Any
    ) -> admin_pb2.PublishEventResponse:
        await context.send_initial_metadata(((FLOW_ID_HEADER, new_flow_id()),))
        self.sequence += 1
        message = v2.StreamResponse(event=request.event, message_id=_message_id(self.sequence % 10))
        self.messages.append(message)
        self.appended.set()
        self.appended = asyncio.Event()
        return admin_pb2.PublishEventResponse(message_id=message.message_id, event=message.event)

    async def stream(self, request: v2.StreamRequest, context: Any) -> AsyncIterator[v2.StreamResponse]:
        await context.send_initial_metadata(((FLOW_ID_HEADER, new_flow_id()),))
        if request.HasField("last_message_id"):
            cursor = 0
        else:
            cursor = len(self.messages)
            yield self.position
        while True:
            while cursor < len(self.messages):
                yield self.messages[cursor]
                cursor += 1
            await self.appended.wait()

    def handlers(self) -> tuple[grpc.GenericRpcHandler[Any, Any], ...]:
        publish = grpc.unary_unary_rpc_method_handler(
            self.publish,
            request_deserializer=admin_pb2.PublishEventRequest.FromString,
            response_serializer=admin_pb2.PublishEventResponse.SerializeToString,
        )
        stream = grpc.unary_stream_rpc_method_handler(
            self.stream,
            request_deserializer=v2.StreamRequest.FromString,
            response_serializer=v2.StreamResponse.SerializeToString,
        )
        return tuple(
            grpc.method_handlers_generic_handler(path.lstrip("/").split("/")[0], {path.split("/")[-1]: h})
            for path, h in ((PUBLISH_METHOD, publish), (STREAM_METHOD, stream))
        )


def run_stream_baseline(
    pipe: Connection, replay_message: bytes, replay_count: int, cores: Collection[int] = ()
) -> None:
    """Process entry point: the bare log, holding ``replay_count`` copies of ``replay_message`` to replay."""
    run_on_uvloop(serve_bare(pipe, BareLog(replay_message, replay_count).handlers()), cores)
