"""A client that goes away frees what it held: no task, subscription or Redis connection stays behind."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis

from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as pb
from tests.api.conftest import Target
from tests.waiting import eventually

STREAM = "fleets/hamburg/vehicle-events"
CYCLES = 60
CALLS_PER_CYCLE = 3


async def open_and_drop(target: Target) -> None:
    """One of each kind of subscription, each cancelled by the client after its first message."""
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


async def redis_clients(target: Target) -> int:
    if target.emulator.settings.backend != "redis":
        return 0
    async with aioredis.Redis.from_url(target.emulator.settings.redis_url) as client:
        info: dict[str, Any] = await client.info("clients")
        return int(info["connected_clients"]) - 1  # not counting this one


async def test_subscribe_cancel_cycles_leave_nothing_behind(target: Target) -> None:
    feed = target.emulator.backend.feed
    clients_seen = []
    for _ in range(3):  # warm-up: the connection pool keeps one or two idle connections
        await open_and_drop(target)
        await eventually(lambda: _no_subscriptions(feed), "the warm-up subscriptions are gone")
        clients_seen.append(await redis_clients(target))
    tasks_before = len(asyncio.all_tasks())
    known = set(asyncio.all_tasks())
    clients_before = max(clients_seen)

    for _ in range(CYCLES):
        await open_and_drop(target)

    await eventually(lambda: _no_subscriptions(feed), "every live-state subscription is gone")

    async def tasks_settled() -> bool:
        return len(asyncio.all_tasks()) <= tasks_before

    async def clients_settled() -> bool:
        return await redis_clients(target) <= clients_before + CALLS_PER_CYCLE

    try:
        await eventually(tasks_settled, f"the tasks are back to {tasks_before}")
    except AssertionError as failure:
        extra = [f"{t.get_name()}: {t.get_coro()}" for t in asyncio.all_tasks() - known]
        raise AssertionError(f"{failure}; tasks left: {extra}") from None
    # The pool keeps idle connections up to the most ever used at once (a cycle holds up to three), so
    # the count may end a little above the warm-up's; a leak would add connections with every cycle.
    await eventually(clients_settled, f"Redis clients are at most {clients_before} + {CALLS_PER_CYCLE}")


async def _no_subscriptions(feed: Any) -> bool:
    return not feed.fanout.subscriptions
