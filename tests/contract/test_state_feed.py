"""The state-feed contract (live full-state fan-out with conflation), run against every backend."""

from __future__ import annotations

import asyncio
import dataclasses

from fleet_emulator.backends.base import StateFeed
from fleet_emulator.domain.models import Battery, Vehicle


def state(vehicle: str, soc: float, fleet: str = "f") -> Vehicle:
    return Vehicle(id=vehicle, label=vehicle, fleet_id=fleet, battery=Battery(state_of_charge_percent=soc))


async def test_subscribers_get_changes_of_their_fleet_and_vehicles_only(feed: StateFeed) -> None:
    async with feed.subscribe("f") as everything, feed.subscribe("f", ["b"]) as only_b:
        await feed.publish(state("a", 10))
        await feed.publish(state("x", 99, fleet="other"))
        await feed.publish(state("b", 20))
        all_changes = aiter(everything)
        assert await asyncio.wait_for(anext(all_changes), 5) == state("a", 10)
        assert await asyncio.wait_for(anext(all_changes), 5) == state("b", 20)
        assert await asyncio.wait_for(anext(aiter(only_b)), 5) == state("b", 20)


async def test_a_slow_subscriber_gets_the_latest_state_per_vehicle(feed: StateFeed) -> None:
    async with feed.subscribe("f") as slow:
        for soc in range(1, 201):
            await feed.publish(state("a", soc))
            await feed.publish(state("b", 1000 + soc))
        await feed.publish(state("c", 5))
        changes = aiter(slow)
        seen: dict[str, Vehicle] = {}
        while seen.get("c") != state("c", 5):
            vehicle = await asyncio.wait_for(anext(changes), 5)
            seen[vehicle.id] = vehicle
        assert seen["a"] == state("a", 200)
        assert seen["b"] == state("b", 1200)
        assert len(slow.pending) <= 3, "never more than one pending state per vehicle"


async def test_conflation_keeps_memory_bounded_while_nobody_reads(feed: StateFeed) -> None:
    async with feed.subscribe("f") as idle:
        for soc in range(500):
            await feed.publish(dataclasses.replace(state("a", soc)))
        await feed.publish(state("z", 1))
        first = await asyncio.wait_for(anext(aiter(idle)), 5)
        assert first.id in {"a", "z"}
        assert len(idle.pending) <= 1
