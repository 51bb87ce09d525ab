"""A client that goes away frees what it held: no task, subscription or Redis connection stays behind."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis

from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as pb
from tests.api.conftest import Target
from tests.waiting import eventually

STREAM = "fleets/hamburg/vehicle-events"
CYCLES = 40
BATCHES = 3
POOL_SLACK = 10  # idle connections the pool may keep: calls of one cycle overlap the next on a busy machine


async def open_and_drop(target: Target) -> None:
    """One of each kind of subscription, each dropped by the client once the server has taken it."""
    position: Any = await target.api.PollVehicleEvents(pb.PollRequest(event_id=STREAM))
    calls: list[Any] = [
        target.api.StreamVehicleEvents(pb.StreamRequest(event_id=STREAM)),
        target.api.SubscribeToVehicleStates(pb.SubscribeToVehicleStatesRequest(fleet_id="hamburg")),
    ]
    for call in calls:
        await asyncio.wait_for(call.read(), 5)
    waiting: Any = target.api.StreamVehicleEvents(
        pb.StreamRequest(event_id=STREAM, last_message_id=position.message_id)
    )
    calls.append(waiting)
    await waiting.initial_metadata()  # the server has taken the call: it is dropped while it waits
    for call in calls:
        call.cancel()


async def redis_clients(target: Target) -> tuple[int, int]:
    """Connected and blocked clients of the emulator's Redis (0, 0 on the memory backend)."""
    if target.emulator.settings.backend != "redis":
        return 0, 0
    async with aioredis.Redis.from_url(target.emulator.settings.redis_url) as client:
        info: dict[str, Any] = await client.info("clients")
        return int(info["connected_clients"]) - 1, int(info["blocked_clients"])  # not counting this one


async def test_subscribe_cancel_cycles_leave_nothing_behind(target: Target) -> None:
    feed = target.emulator.namespaces.default.emulation.backend.feed
    await open_and_drop(target)
    await eventually(lambda: _no_subscriptions(feed), "the warm-up subscriptions are gone")
    tasks_before = len(asyncio.all_tasks())
    connected_before = (await redis_clients(target))[0]
    known = set(asyncio.all_tasks())
    connected_after: list[int] = []
    for _ in range(BATCHES):
        for _ in range(CYCLES):
            await open_and_drop(target)
        await eventually(lambda: _no_subscriptions(feed), "every live-state subscription is gone")
        try:
            await eventually(lambda: _tasks_at_most(tasks_before), f"the tasks are back to {tasks_before}")
        except AssertionError as failure:
            extra = [f"{t.get_name()}: {t.get_coro()}" for t in asyncio.all_tasks() - known]
            raise AssertionError(f"{failure}; tasks left: {extra}") from None
        await eventually(lambda: _nobody_blocked(target), "no Redis client is blocked in a read")
        connected_after.append((await redis_clients(target))[0])
    # Each waiting stream has a connection of its own while it lives: a leak would add CYCLES per batch.
    # The shared pool keeps a few idle connections, as many as calls ever ran at once (a cycle runs three).
    assert max(connected_after) <= connected_before + POOL_SLACK, (connected_before, connected_after)


async def _no_subscriptions(feed: Any) -> bool:
    return not feed.fanout.subscriptions


async def _tasks_at_most(count: int) -> bool:
    return len(asyncio.all_tasks()) <= count


async def _nobody_blocked(target: Target) -> bool:
    return (await redis_clients(target))[1] == 0
