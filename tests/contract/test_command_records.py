"""The state-store contract of vehicle commands, run against every backend (memory and a real Redis):
execution counts and results remembered under idempotency keys until a time on the emulator's clock, both
atomic under concurrent callers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from fleet_emulator.backends.base import StateStore

VEHICLE = "00000000-0000-4000-8000-000000000001"
OTHER = "00000000-0000-4000-8000-000000000002"
DAY = timedelta(hours=24)
SECOND = timedelta(seconds=1)
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


async def test_counts_go_up_by_one_per_vehicle_and_command(store: StateStore) -> None:
    assert [await store.count_command(VEHICLE, "HONK_HORN") for _ in range(3)] == [1, 2, 3]
    assert await store.count_command(VEHICLE, "FLASH_LIGHTS") == 1
    assert await store.count_command(OTHER, "HONK_HORN") == 1


async def test_concurrent_counts_each_get_their_own_number(store: StateStore) -> None:
    counts = await asyncio.gather(*(store.count_command(VEHICLE, "HONK_HORN") for _ in range(50)))
    assert sorted(counts) == list(range(1, 51))


async def test_the_first_record_of_a_key_is_kept(store: StateStore) -> None:
    assert await store.remember_command("key-1", '{"n": 1}', NOW, NOW + DAY) is None
    assert await store.remember_command("key-1", '{"n": 2}', NOW, NOW + DAY) == '{"n": 1}'
    assert await store.remember_command("key-2", '{"n": 3}', NOW, NOW + DAY) is None


async def test_of_concurrent_first_uses_one_is_stored_and_all_see_it(store: StateStore) -> None:
    outcomes = await asyncio.gather(
        *(store.remember_command("race", str(n), NOW, NOW + DAY) for n in range(20))
    )
    [stored] = [str(n) for n, kept in enumerate(outcomes) if kept is None]
    assert {kept for kept in outcomes if kept is not None} == {stored}
    assert await store.remember_command("race", "late", NOW, NOW + DAY) == stored


async def test_a_record_expires_on_the_emulator_clock_not_in_real_time(store: StateStore) -> None:
    await store.remember_command("key", "x", NOW, NOW + DAY)
    assert await store.remember_command("key", "y", NOW + DAY - SECOND, NOW + 2 * DAY) == "x"
    assert await store.remember_command("key", "z", NOW + DAY, NOW + 2 * DAY) is None
    assert await store.remember_command("key", "w", NOW + DAY, NOW + 2 * DAY) == "z"


async def test_a_claim_is_replaced_by_its_result_or_forgotten(store: StateStore) -> None:
    assert await store.remember_command("done", "", NOW, NOW + SECOND) is None
    await store.replace_command("done", "result", NOW, NOW + DAY)
    assert await store.remember_command("done", "", NOW + 2 * SECOND, NOW + DAY) == "result"
    assert await store.remember_command("failed", "", NOW, NOW + SECOND) is None
    await store.forget_command("failed")
    assert await store.remember_command("failed", "again", NOW, NOW + DAY) is None


async def test_clear_forgets_counts_and_records(store: StateStore) -> None:
    await store.count_command(VEHICLE, "LOCK")
    await store.remember_command("key", "x", NOW, NOW + DAY)
    await store.clear()
    assert await store.count_command(VEHICLE, "LOCK") == 1
    assert await store.remember_command("key", "y", NOW, NOW + DAY) is None
