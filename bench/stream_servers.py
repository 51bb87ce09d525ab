"""The streaming side of the servers under test: the event every benchmark publishes, the emulator's prefill
and the bare ``grpc.aio`` baseline for StreamVehicleEvents.

All events are one battery change of a Hamburg vehicle with every field filled in, so the emulator stores
and sends them as they are and the baseline's messages have the same size. The baseline is a bare durable
log: ``PublishEvent`` appends the request's bytes (its field 1, the event, is also field 1 of a
``StreamResponse``) plus a fixed message id and answers fixed bytes; ``StreamVehicleEvents`` sends the
current position then every later message, or with ``last_message_id`` every message from the start (the
replay), all as pre-serialized bytes, so it costs nothing but gRPC. The emulator is prefilled in its own
process through its domain (``EventStreams.publish``), many appends at a time.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from typing import Any

import grpc

from bench.servers import serve_bare
from bench.unary import HAMBURG_VEHICLE_ID
from fleet_emulator._gen.emulator.admin.v1 import admin_pb2
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as v2
from fleet_emulator.api.versions import V2Servicer
from fleet_emulator.domain.events import BatteryChanged, Event
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


def _message_id() -> str:
    """A message id of today's length, as the emulator gives the first event of a millisecond."""
    return f"{time.time_ns() // 1_000_000}-0"


def stream_message(event: v2.Event) -> bytes:
    """The serialized StreamResponse carrying ``event``."""
    return v2.StreamResponse(event=event, message_id=_message_id()).SerializeToString()


def publish_reply(event: v2.Event) -> bytes:
    """The serialized PublishEventResponse for ``event``."""
    return admin_pb2.PublishEventResponse(message_id=_message_id(), event=event).SerializeToString()


async def prefill_stream(count: int, emulator: Emulator) -> None:
    """Publish ``count`` sample events on Hamburg's stream, which must start empty (see START_POSITION)."""
    streams = emulator.namespaces.default.emulation.streams
    if await streams.log.last_id(EVENT_ID) != ZERO:
        raise RuntimeError(f"{EVENT_ID} is not empty: start the emulator on an empty backend")
    for start in range(0, count, PREFILL_CONCURRENCY):
        batch = range(start, min(count, start + PREFILL_CONCURRENCY))
        await asyncio.gather(*(streams.publish(_domain_event()) for _ in batch))


class BareLog:
    """The baseline's stream: serialized messages in a list and a wake-up event replaced on every append."""

    def __init__(self, reply: bytes, replay_message: bytes, replay_count: int) -> None:
        self.reply = reply
        self.messages = [replay_message] * replay_count
        self.message_id = v2.StreamResponse(message_id=_message_id()).SerializeToString()
        self.appended = asyncio.Event()

    async def publish(self, request: bytes, context: Any) -> bytes:
        self.messages.append(request + self.message_id)
        self.appended.set()
        self.appended = asyncio.Event()
        return self.reply

    async def stream(self, request: bytes, context: Any) -> AsyncIterator[bytes]:
        if v2.StreamRequest.FromString(request).HasField("last_message_id"):
            cursor = 0
        else:
            cursor = len(self.messages)
            yield self.message_id
        while True:
            while cursor < len(self.messages):
                yield self.messages[cursor]
                cursor += 1
            await self.appended.wait()

    def handlers(self) -> tuple[grpc.GenericRpcHandler[bytes, bytes], ...]:
        publish = grpc.unary_unary_rpc_method_handler(self.publish)
        stream = grpc.unary_stream_rpc_method_handler(self.stream)
        return tuple(
            grpc.method_handlers_generic_handler(path.lstrip("/").split("/")[0], {path.split("/")[-1]: h})
            for path, h in ((PUBLISH_METHOD, publish), (STREAM_METHOD, stream))
        )


def run_stream_baseline(pipe: Connection, reply: bytes, replay_message: bytes, replay_count: int) -> None:
    """Process entry point: the bare log, holding ``replay_count`` copies of ``replay_message`` to replay."""
    asyncio.run(serve_bare(pipe, BareLog(reply, replay_message, replay_count).handlers()))
