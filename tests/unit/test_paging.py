"""Pagination rules of API.md section 2, through the domain service over the in-memory store."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from fleet_emulator.backends.base import StateStore
from fleet_emulator.backends.memory import MemoryStateStore
from fleet_emulator.domain import paging, reasons
from fleet_emulator.domain.clock import EmulatorClock
from fleet_emulator.domain.errors import InvalidArgument, NotFound
from fleet_emulator.domain.models import Fleet, Vehicle
from fleet_emulator.domain.scenario import Scenario
from fleet_emulator.domain.service import FleetService

START = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def vehicle(n: int, fleet_id: str = "big") -> Vehicle:
    return Vehicle(id=f"00000000-0000-4000-8000-{n:012d}", label=str(n), fleet_id=fleet_id)


@pytest.fixture
async def service() -> FleetService:
    """A service over 1200 vehicles in fleet `big`, 3 in `small`, on a virtual clock."""
    svc = FleetService(MemoryStateStore(), EmulatorClock(START))
    fleets = (Fleet("big", "Big", "Hamburg", "Europe/Berlin"), Fleet("small", "Small", "Hanover", "UTC"))
    vehicles = [vehicle(n) for n in range(1200)] + [vehicle(n, "small") for n in range(5000, 5003)]
    await svc.seed(Scenario("paging", fleets, tuple(vehicles)))
    return svc


async def test_unset_page_size_gives_the_default(service: FleetService) -> None:
    page = await service.list_vehicles("big", 0, "")
    assert len(page.items) == paging.DEFAULT_PAGE_SIZE == 50
    assert page.next_page_token


async def test_page_size_above_the_maximum_is_coerced(service: FleetService) -> None:
    page = await service.list_vehicles("big", 5000, "")
    assert len(page.items) == paging.MAX_PAGE_SIZE == 1000
    rest = await service.list_vehicles("big", 5000, page.next_page_token)
    assert len(rest.items) == 200
    assert rest.next_page_token == ""


async def test_negative_page_size_is_invalid_with_a_violation_on_page_size(service: FleetService) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await service.list_vehicles("big", -1, "")
    assert caught.value.reason is reasons.FIELD_INVALID
    assert [v.field for v in caught.value.violations] == ["page_size"]


async def test_every_invalid_field_is_reported_at_once(service: FleetService) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await service.list_vehicles("", -3, "")
    assert {v.field for v in caught.value.violations} == {"fleet_id", "page_size"}


async def test_last_page_and_only_the_last_has_an_empty_token(service: FleetService) -> None:
    page = await service.list_vehicles("small", 2, "")
    assert len(page.items) == 2
    assert page.next_page_token
    last = await service.list_vehicles("small", 2, page.next_page_token)
    assert [v.label for v in last.items] == ["5002"]
    assert last.next_page_token == ""
    exact = await service.list_vehicles("small", 3, "")
    assert len(exact.items) == 3
    assert exact.next_page_token == "", "a page that ends the list exactly must not offer another"


async def test_token_is_bound_to_the_fleet_id(service: FleetService) -> None:
    token = (await service.list_vehicles("big", 10, "")).next_page_token
    with pytest.raises(InvalidArgument) as caught:
        await service.list_vehicles("small", 10, token)
    assert caught.value.reason is reasons.PAGE_TOKEN_MISMATCH
    assert [v.field for v in caught.value.violations] == ["page_token"]


async def test_token_is_bound_to_the_rpc(service: FleetService) -> None:
    token = (await service.list_vehicles("big", 10, "")).next_page_token
    with pytest.raises(InvalidArgument):
        await service.list_fleets(1, token)


@pytest.mark.parametrize(
    "token", ["garbage", "c688a598-9a67-4dde-b2b3-98992a051bb0", "C688A598-9A67-4DDE-B2B3-98992A051BB0", "%%"]
)
async def test_unknown_or_garbled_token_is_not_found(service: FleetService, token: str) -> None:
    with pytest.raises(NotFound) as caught:
        await service.list_vehicles("big", 10, token)
    assert caught.value.reason is reasons.PAGE_TOKEN_NOT_FOUND


async def test_token_expires_on_the_emulator_clock(service: FleetService) -> None:
    token = (await service.list_vehicles("big", 10, "")).next_page_token
    assert isinstance(service.clock, EmulatorClock)
    await service.clock.advance(paging.TOKEN_LIFETIME - timedelta(seconds=1))
    assert (await service.list_vehicles("big", 10, token)).items
    await service.clock.advance(timedelta(seconds=1))
    with pytest.raises(NotFound) as caught:
        await service.list_vehicles("big", 10, token)
    assert caught.value.reason is reasons.PAGE_TOKEN_EXPIRED


async def test_tokens_are_opaque_and_url_safe(service: FleetService) -> None:
    token = (await service.list_vehicles("big", 10, "")).next_page_token
    assert paging.is_well_formed(token)
    assert all(c.isalnum() or c == "-" for c in token)
    assert "big" not in token


async def test_key_set_paging_survives_additions_and_removals(service: FleetService) -> None:
    """Vehicles added or removed between pages cause no duplicate and no skip of those that stayed."""
    store = service.store
    before = {v.id for v in await store.list_vehicles("big", "", 10_000)}
    seen: list[str] = []
    removed: set[str] = set()
    added_after: set[str] = set()
    token = ""
    step = 0
    while True:
        page = await service.list_vehicles("big", 37, token)
        seen += [v.id for v in page.items]
        if not page.next_page_token:
            break
        token = page.next_page_token
        step += 1
        # remove one vehicle already seen and one not yet seen, add one before and one after the cursor
        await store.delete_vehicle(seen[0 if step == 1 else -2])
        removed.add(seen[0 if step == 1 else -2])
        unseen = sorted(before - set(seen) - removed)
        if unseen:
            await store.delete_vehicle(unseen[-1])
            removed.add(unseen[-1])
        added_after.add((await _add(store, vehicle(100_000 + step))).id)
        await _add(store, dataclasses.replace(vehicle(0), id=f"00000000-0000-3000-8000-{step:012d}"))
    assert len(seen) == len(set(seen)), "no vehicle may appear twice"
    stayed = before - removed
    assert stayed <= set(seen), f"skipped vehicles: {sorted(stayed - set(seen))[:5]}"
    assert added_after <= set(seen), "vehicles added behind the cursor's key show up on later pages"


async def _add(store: StateStore, new: Vehicle) -> Vehicle:
    assert await store.get_vehicle(new.id) is None, "the test must add, not replace"
    await store.put_vehicle(new)
    return new


async def test_list_fleets_pages_in_id_order(service: FleetService) -> None:
    first = await service.list_fleets(1, "")
    assert [v.fleet.id for v in first.items] == ["big"]
    assert first.items[0].vehicle_count == 1200
    second = await service.list_fleets(1, first.next_page_token)
    assert [v.fleet.id for v in second.items] == ["small"]
    assert second.next_page_token == ""
