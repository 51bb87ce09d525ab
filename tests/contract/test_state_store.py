"""The state-store contract, run against every backend (memory and a real Redis)."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

from fleet_emulator.backends.base import StateStore
from fleet_emulator.domain.models import ConnectivityState, Fleet, Vehicle
from fleet_emulator.domain.paging import PageCursor
from fleet_emulator.domain.scenario import load_scenario

NOW = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)


def vehicle(n: int, fleet_id: str = "a") -> Vehicle:
    return Vehicle(id=f"00000000-0000-4000-8000-{n:012d}", label=str(n), fleet_id=fleet_id).stamped(NOW)


async def fill(store: StateStore) -> None:
    for fleet_id in ("b", "a", "c"):
        await store.put_fleet(Fleet(fleet_id, fleet_id.upper(), "City", "UTC", NOW))
    for n in (5, 1, 3, 2, 4):
        await store.put_vehicle(vehicle(n))
    await store.put_vehicle(vehicle(9, "b"))


async def test_ping_answers(store: StateStore) -> None:
    await store.ping()


async def test_round_trips_every_field_of_the_demo(store: StateStore) -> None:
    scenario = load_scenario(None, NOW)
    for fleet in scenario.fleets:
        await store.put_fleet(fleet)
    for v in scenario.vehicles:
        await store.put_vehicle(v)
    for fleet in scenario.fleets:
        assert await store.get_fleet(fleet.id) == fleet
    for v in scenario.vehicles:
        assert await store.get_vehicle(v.id) == v


async def test_put_all_stores_a_scenario_at_once(store: StateStore) -> None:
    many = [vehicle(n, "a" if n % 3 else "b") for n in range(1, 1201)]  # more than one batch
    fleets = [Fleet(i, i.upper(), "City", "UTC", NOW) for i in ("b", "a")]
    await store.put_all(fleets, many)
    assert [f.id for f in await store.list_fleets("", 10)] == ["a", "b"]
    assert await store.count_vehicles("a") == 800
    assert await store.count_vehicles("b") == 400
    assert await store.get_vehicle(many[-1].id) == many[-1]
    moved = [dataclasses.replace(v, fleet_id="a") for v in many if v.fleet_id == "b"]
    await store.put_all([], moved)  # a vehicle that moves leaves its old fleet, as with put_vehicle
    assert (await store.count_vehicles("a"), await store.count_vehicles("b")) == (1200, 0)
    assert [v.id for v in await store.list_vehicles("a", "", 1200)] == sorted(v.id for v in many)


async def test_lists_in_id_order_after_a_key(store: StateStore) -> None:
    await fill(store)
    assert [f.id for f in await store.list_fleets("", 10)] == ["a", "b", "c"]
    assert [f.id for f in await store.list_fleets("a", 1)] == ["b"]
    assert [v.label for v in await store.list_vehicles("a", "", 3)] == ["1", "2", "3"]
    assert [v.label for v in await store.list_vehicles("a", vehicle(3).id, 10)] == ["4", "5"]
    assert await store.list_vehicles("a", vehicle(5).id, 10) == []
    assert await store.list_vehicles("nope", "", 10) == []
    assert await store.count_vehicles("a") == 5
    assert await store.count_vehicles("b") == 1
    assert await store.count_vehicles("nope") == 0


async def test_put_replaces_and_moves_between_fleets(store: StateStore) -> None:
    await fill(store)
    changed = dataclasses.replace(vehicle(2), connectivity=ConnectivityState.ASLEEP).stamped(NOW)
    await store.put_vehicle(changed)
    assert await store.get_vehicle(changed.id) == changed
    assert await store.count_vehicles("a") == 5
    moved = dataclasses.replace(changed, fleet_id="b")
    await store.put_vehicle(moved)
    assert [v.label for v in await store.list_vehicles("a", "", 10)] == ["1", "3", "4", "5"]
    assert [v.label for v in await store.list_vehicles("b", "", 10)] == ["2", "9"]


async def test_replace_stores_only_over_the_state_it_was_given(store: StateStore) -> None:
    await fill(store)
    read = await store.get_vehicle(vehicle(2).id)
    assert read is not None
    moved = dataclasses.replace(read, fleet_id="b", label="moved")
    assert await store.replace_vehicle(read, moved)
    assert await store.get_vehicle(read.id) == moved
    assert [v.label for v in await store.list_vehicles("b", "", 10)] == ["moved", "9"]
    assert not await store.replace_vehicle(read, dataclasses.replace(read, label="stale"))
    assert await store.get_vehicle(read.id) == moved
    await store.delete_vehicle(read.id)
    assert not await store.replace_vehicle(moved, read)


async def test_of_concurrent_replacements_of_one_state_one_wins(store: StateStore) -> None:
    await fill(store)
    read = await store.get_vehicle(vehicle(3).id)
    assert read is not None
    changes = [dataclasses.replace(read, label=f"change {n}") for n in range(10)]
    won = await asyncio.gather(*(store.replace_vehicle(read, c) for c in changes))
    assert won.count(True) == 1
    assert await store.get_vehicle(read.id) == changes[won.index(True)]


async def test_delete_vehicle_and_fleet(store: StateStore) -> None:
    await fill(store)
    assert await store.delete_vehicle(vehicle(3).id) is True
    assert await store.delete_vehicle(vehicle(3).id) is False
    assert await store.get_vehicle(vehicle(3).id) is None
    assert await store.count_vehicles("a") == 4
    assert await store.delete_fleet("a") is True
    assert await store.delete_fleet("a") is False
    assert await store.get_fleet("a") is None
    assert await store.get_vehicle(vehicle(1).id) is None
    assert [f.id for f in await store.list_fleets("", 10)] == ["b", "c"]
    assert await store.get_vehicle(vehicle(9, "b").id) is not None


async def test_cursors_round_trip_and_clear_forgets_everything(store: StateStore) -> None:
    await fill(store)
    cursor = PageCursor("binding", vehicle(2).id, NOW + timedelta(hours=1))
    await store.save_cursor("t-1", cursor, timedelta(hours=2))
    assert await store.load_cursor("t-1") == cursor
    assert await store.load_cursor("t-2") is None
    await store.clear()
    assert await store.list_fleets("", 10) == []
    assert await store.get_vehicle(vehicle(1).id) is None
    assert await store.load_cursor("t-1") is None
