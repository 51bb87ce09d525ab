"""Events on Redis are stored as protobuf bytes (``backends/event_bytes.py``): losslessly for every kind of
change, under 200 bytes of Redis memory per retained demo event, entries written as JSON by earlier
versions still read, and an append sent again after its connection broke appended once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis

from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as v2
from fleet_emulator.api.versions import V1Servicer, V2Servicer
from fleet_emulator.backends.event_bytes import ENCODING, JSON, PROTOBUF, dump, entry, load
from fleet_emulator.backends.factory import RedisBackends
from fleet_emulator.backends.redis_events import RedisEventLog
from fleet_emulator.domain import events as ev
from fleet_emulator.domain import models
from fleet_emulator.domain.codec import encode
from fleet_emulator.domain.message_ids import ZERO, MessageId
from tests.contract.test_event_log import FOREVER, T0
from tests.redis_server import RedisServer
from tests.unit.test_simulator import Demo

pytestmark = pytest.mark.redis

STREAM = "fleets/hamburg/vehicle-events"
MAX_BYTES_PER_EVENT = 200
RESULT = ev.CommandResult("c-1", ev.VehicleCommand.HONK_HORN, "v-1", 2, T0)
CHANGES: list[ev.Change] = [
    ev.ConnectivityChanged(models.ConnectivityState.ASLEEP, models.ConnectivityState.ONLINE),
    ev.PositionChanged(models.Location(53.55, 9.99, 271.5, 31.25, T0)),
    ev.DoorsChanged((models.Door(models.DoorPosition.FRONT_LEFT, models.DoorState.OPEN),)),
    ev.LockChanged(models.LockState.UNLOCKED),
    ev.BatteryChanged(63.5, 212.25),
    ev.ChargingChanged(models.ChargingState.CHARGING),
    ev.OperationalStatusChanged(models.OperationalStatus.AVAILABLE, models.OperationalStatus.ON_MISSION),
    ev.MissionProgressed("m-1", ev.MissionStage.PASSENGERS_BOARDED),
    ev.CommandExecuted(RESULT),
]


@pytest.fixture
async def backends(redis_url: str) -> AsyncIterator[RedisBackends]:
    made = RedisBackends(redis_url)
    yield made
    await made.close()


def log_of(backends: RedisBackends) -> RedisEventLog:
    log = backends("").events
    assert isinstance(log, RedisEventLog)
    return log


@pytest.mark.parametrize("change", CHANGES, ids=lambda c: type(c).__name__)
def test_every_kind_of_event_comes_back_as_it_went_in(change: ev.Change) -> None:
    event = ev.Event("e-1", "v-1", "hamburg", T0, T0 + timedelta(milliseconds=5), "flow-1", change)
    assert load({PROTOBUF: dump(event)}) == event


def test_an_entry_decodes_its_event_only_when_read_and_v2_sends_its_bytes_without_it() -> None:
    event = ev.Event("e-2", "v-1", "hamburg", T0, T0, "flow-2", CHANGES[4])
    fields = {PROTOBUF: dump(event), "prev": "1700000000000-0"}
    sent = entry("1700000000000-1", fields)
    assert (sent.message_id, sent.previous_id, sent.stored) == (
        MessageId(1700000000000, 1),
        MessageId(1700000000000, 0),
        dump(event).encode(ENCODING),
    )
    message = V2Servicer.adapter.stream_message(sent)
    assert "event" not in vars(sent), "v2 sent the stored bytes without decoding the event"
    assert v2.StreamResponse.FromString(message.data).event == V2Servicer.adapter.event(event)
    read = entry("1700000000000-1", fields)
    assert read.event == event
    assert V1Servicer.adapter.stream_message(read).message.event == V1Servicer.adapter.event(event)


async def test_entries_hold_protobuf_and_json_entries_still_read(
    backends: RedisBackends, redis_url: str
) -> None:
    log = log_of(backends)
    event = ev.Event("e-1", "v-1", "hamburg", T0, T0, "flow-1", CHANGES[3])
    first = await log.append(STREAM, event, T0, FOREVER)
    older = ev.Event("e-0", "v-1", "hamburg", T0, T0, "", CHANGES[4])
    async with aioredis.Redis.from_url(redis_url, decode_responses=True, encoding=ENCODING) as client:
        stored: Any = await client.xrange(log.keys.stream(STREAM))
        [(_, fields)] = stored
        assert set(fields) == {"prev", PROTOBUF}
        later = f"{first.ms + 1}-0"  # as an earlier version wrote it: the event as JSON
        await client.xadd(
            log.keys.stream(STREAM), {"prev": str(first), JSON: json.dumps(encode(older))}, later
        )
    entries = await log.read(STREAM, ZERO, 10)
    assert [e.event for e in entries] == [event, older]


async def simulated_events(count: int) -> list[ev.Event]:
    """The first ``count`` events the demo's simulator publishes in Hamburg."""
    demo = await Demo.start(seed=1, rate_hz=1000)
    while len(found := await demo.events()) < count:
        await demo.advance(1)
    return found[:count]


async def test_a_retained_demo_event_takes_under_200_bytes_of_redis(
    backends: RedisBackends, redis_url: str
) -> None:
    log = log_of(backends)
    published = await simulated_events(2_000)
    now = T0
    for event in published:
        now += timedelta(milliseconds=1)
        await log.append(STREAM, event, now, FOREVER)
    async with aioredis.Redis.from_url(redis_url) as client:
        used: Any = await client.memory_usage(log.keys.stream(STREAM), samples=0)
        count = await client.xlen(log.keys.stream(STREAM))
    assert count == len(published)
    assert used / count <= MAX_BYTES_PER_EVENT, f"{used / count:.0f} bytes per event"
    assert [e.event for e in await log.read(STREAM, ZERO, 2_000)] == published


async def test_an_append_sent_again_after_redis_restarted_is_appended_once(own_redis: RedisServer) -> None:
    backends = RedisBackends(own_redis.url)
    try:
        log = log_of(backends)
        first = await log.append(STREAM, ev.Event("e-1", "v", "f", T0, T0, "", CHANGES[3]), T0, FOREVER)
        own_redis.stop()
        own_redis.start()  # the pooled connection is stale now: the next command fails once
        second = await log.append(STREAM, ev.Event("e-2", "v", "f", T0, T0, "", CHANGES[4]), T0, FOREVER)
        assert second > first
        assert [e.event.id for e in await log.read(STREAM, ZERO, 10)] == ["e-1", "e-2"]
        keys = [log.keys.stream(STREAM), log.keys.stream_last(STREAM), log.keys.stream_last_append(STREAM)]
        args: list[str | int] = [0, 0, dump(ev.Event("e-3", "v", "f", T0, T0, "", CHANGES[5])), 0, "token-3"]
        sent = await asyncio.gather(*(log._append(keys=keys, args=args) for _ in range(2)))
        assert sent[0] == sent[1], "the second send of one append answers the first one's id"
        assert [e.event.id for e in await log.read(STREAM, ZERO, 10)] == ["e-1", "e-2", "e-3"]
    finally:
        await backends.close()
