"""The state-store contract of vehicle commands, run against every backend (memory and a real Redis):
execution counts and results remembered under idempotency keys, both atomic under concurrent callers."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from fleet_emulator.backends.base import StateStore
from tests.waiting import eventually

VEHICLE = "00000000-0000-4000-8000-000000000001"
OTHER = "00000000-0000-4000-8000-000000000002"
DAY = timedelta(hours=24)


async def test_counts_go_up_by_one_per_vehicle_and_command(store: StateStore) -> None:
    assert [await store.count_command(VEHICLE, "HONK_HORN") for _ in range(3)] == [1, 2, 3]
    assert await store.count_command(VEHICLE, "FLASH_LIGHTS") == 1
    assert await store.count_command(OTHER, "HONK_HORN") == 1


async def test_concurrent_counts_each_get_their_own_number(store: StateStore) -> None:
    counts = await asyncio.gather(*(store.count_command(VEHICLE, "HONK_HORN") for _ in range(50)))
    assert sorted(counts) == list(range(1, 51))


async def test_the_first_record_of_a_key_is_kept(store: StateStore) -> None:
    assert await store.recall_command("key-1") is None
    assert await store.remember_command("key-1", '{"n": 1}', DAY) is None
    assert await store.remember_command("key-1", '{"n": 2}', DAY) == '{"n": 1}'
    assert await store.recall_command("key-1") == '{"n": 1}'
    assert await store.recall_command("key-2") is None


async def test_of_concurrent_first_uses_one_is_stored_and_all_see_it(store: StateStore) -> None:
    outcomes = await asyncio.gather(*(store.remember_command("race", str(n), DAY) for n in range(20)))
    [stored] = [str(n) for n, kept in enumerate(outcomes) if kept is None]
    assert {kept for kept in outcomes if kept is not None} == {stored}
    assert await store.recall_command("race") == stored


async def test_a_record_is_forgotten_after_its_time(store: StateStore) -> None:
    await store.remember_command("brief", "x", timedelta(milliseconds=50))

    async def forgotten() -> bool:
        return await store.recall_command("brief") is None

    await eventually(forgotten, "the record expired")
    assert await store.remember_command("brief", "y", DAY) is None


async def test_clear_forgets_counts_and_records(store: StateStore) -> None:
    await store.count_command(VEHICLE, "LOCK")
    await store.remember_command("key", "x", DAY)
    await store.clear()
    assert await store.count_command(VEHICLE, "LOCK") == 1
    assert await store.recall_command("key") is None
