"""The fleet simulator over the memory backend and the demo scenario, stepped on a virtual clock."""

from __future__ import annotations

import asyncio
import operator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from fleet_emulator.backends.factory import memory_backend
from fleet_emulator.domain import reasons, simulator
from fleet_emulator.domain.clock import EmulatorClock
from fleet_emulator.domain.emulation import Emulation
from fleet_emulator.domain.errors import Unavailable
from fleet_emulator.domain.events import ConnectivityChanged, Event, MissionProgressed, MissionStage
from fleet_emulator.domain.models import (
    ChargingState,
    ConnectivityState,
    LockState,
    OperationalStatus,
    Vehicle,
)
from fleet_emulator.domain.routes import Point, bearing_degrees, distance_km
from fleet_emulator.domain.scenario import load_scenario
from fleet_emulator.domain.simulator import IDLE_BEFORE_SLEEP_S, MAX_STEP, Phase, Simulator
from fleet_emulator.domain.streams import vehicle_events_id

START = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
CITY_CENTERS = {"hamburg": Point(53.5511, 9.9937), "hanover": Point(52.3759, 9.7320)}
STAGES = [
    MissionStage.ASSIGNED,
    MissionStage.ARRIVED_AT_PICKUP,
    MissionStage.PASSENGERS_BOARDED,
    MissionStage.ARRIVED_AT_DROPOFF,
    MissionStage.COMPLETED,
]


@dataclass
class Demo:
    """The demo scenario in an emulation on a virtual clock, with a simulator over it."""

    emulation: Emulation
    clock: EmulatorClock
    simulator: Simulator

    @classmethod
    async def start(cls, seed: int = 0, rate_hz: float = 1.0) -> Demo:
        clock = EmulatorClock(START)
        emulation = Emulation.build(memory_backend(), clock)
        await emulation.fleets.seed(load_scenario(None, START))
        return cls(emulation, clock, Simulator(emulation, clock, seed=seed, rate_hz=rate_hz))

    async def advance(self, seconds: float) -> int:
        await self.clock.advance(timedelta(seconds=seconds))
        return await self.simulator.step()

    async def vehicles(self) -> dict[str, Vehicle]:
        store = self.emulation.backend.state
        return {v.id: v for f in CITY_CENTERS for v in await store.list_vehicles(f, "", 1000)}

    async def events(self, fleet_id: str = "hamburg") -> list[Event]:
        """Every event of the fleet's durable stream so far, read by polling from the start."""
        found: list[Event] = []
        cursor = "0-0"
        while True:
            batch, last = await self.emulation.streams.poll(vehicle_events_id(fleet_id), cursor)
            if not batch:
                return found
            found += [entry.event for entry in batch]
            cursor = str(last)


@pytest.fixture
async def demo() -> Demo:
    return await Demo.start()


def angle_between(a: float, b: float) -> float:
    difference = abs(a - b) % 360
    return min(difference, 360 - difference)


def position(vehicle: Vehicle) -> Point:
    return Point(vehicle.location.latitude, vehicle.location.longitude)


def stages(events: list[Event]) -> list[tuple[str, str, MissionStage]]:
    return [
        (e.vehicle_id, e.change.mission_id, e.change.stage)
        for e in events
        if isinstance(e.change, MissionProgressed)
    ]


async def test_nothing_changes_while_the_clock_stands_still(demo: Demo) -> None:
    before = await demo.vehicles()
    assert await demo.simulator.step() == 0
    assert await demo.simulator.step() == 0
    assert await demo.vehicles() == before
    assert await demo.events() == []
    assert await demo.advance(1) > 0, "once the clock moves, the fleet does"


async def test_driving_vehicles_cover_their_speed_times_the_time_towards_the_next_waypoint(
    demo: Demo,
) -> None:
    await demo.advance(1)
    before = await demo.vehicles()
    legs = {
        i: (d.route[0], d.speed_kmh)
        for i, d in demo.simulator.drivers.items()
        if d.phase in simulator.DRIVING
    }
    await demo.advance(10)
    after = await demo.vehicles()
    on_same_leg = 0
    for vehicle_id, (waypoint, speed) in legs.items():
        old, new = position(before[vehicle_id]), position(after[vehicle_id])
        moved_km, heading = distance_km(old, new), after[vehicle_id].location.heading_degrees
        assert 0 < moved_km <= speed * 10 / 3600 * (1 + 1e-9)
        assert after[vehicle_id].location.recorded_time == demo.clock.now()
        driver = demo.simulator.drivers[vehicle_id]
        if driver.phase in simulator.DRIVING and driver.route[0] == waypoint:
            on_same_leg += 1
            assert moved_km == pytest.approx(speed * 10 / 3600, rel=1e-6)
            assert angle_between(bearing_degrees(old, new), heading) < 1e-6
            assert angle_between(bearing_degrees(new, waypoint), heading) < 1e-6
            assert after[vehicle_id].location.speed_kmh == speed
            assert simulator.SPEED_KMH[0] <= speed <= simulator.SPEED_KMH[1]
    assert on_same_leg >= 3


async def test_charge_goes_down_while_driving_and_up_while_charging(demo: Demo) -> None:
    await demo.advance(1)
    before = await demo.vehicles()
    phases = {i: d.phase for i, d in demo.simulator.drivers.items()}
    await demo.advance(60)
    after = await demo.vehicles()
    driving = [i for i, p in phases.items() if p in simulator.DRIVING]
    charging = [
        i
        for i, p in phases.items()
        if p is Phase.CHARGING and after[i].operational_status is OperationalStatus.CHARGING
    ]
    assert len(driving) >= 3
    assert len(charging) >= 3
    for i in driving:
        assert after[i].battery.state_of_charge_percent < before[i].battery.state_of_charge_percent
        assert after[i].battery.range_km < before[i].battery.range_km
    for i in charging:
        assert after[i].battery.state_of_charge_percent > before[i].battery.state_of_charge_percent
        assert after[i].battery.range_km > before[i].battery.range_km
        assert after[i].battery.charging_state is ChargingState.CHARGING


async def test_a_vehicle_low_on_charge_goes_charging_until_it_is_full(demo: Demo) -> None:
    parked_online = (OperationalStatus.AVAILABLE, ConnectivityState.ONLINE)
    low = next(
        v for v in (await demo.vehicles()).values() if (v.operational_status, v.connectivity) == parked_online
    )
    await demo.emulation.updates.update(low.id, lambda v: simulator.with_charge(v, 15.0))

    await demo.advance(1)
    charging = (await demo.vehicles())[low.id]
    assert charging.operational_status is OperationalStatus.CHARGING
    assert charging.battery.charging_state is ChargingState.CHARGING
    assert charging.battery.state_of_charge_percent > 15.0

    await demo.emulation.updates.update(low.id, lambda v: simulator.with_charge(v, 99.9))
    await demo.advance(30)
    full = (await demo.vehicles())[low.id]
    assert full.operational_status is OperationalStatus.AVAILABLE
    assert full.battery.charging_state is ChargingState.COMPLETE
    assert full.battery.state_of_charge_percent == 100.0
    assert full.battery.range_km == pytest.approx(86 / simulator.CONSUMPTION_KWH_PER_KM)


async def test_missions_go_through_their_stages_in_order_on_the_fleet_stream(demo: Demo) -> None:
    for _ in range(120):
        await demo.advance(60)
    events = await demo.events("hamburg")
    missions: dict[str, list[MissionStage]] = {}
    for _, mission_id, stage in stages(events):
        missions.setdefault(mission_id, []).append(stage)
    assert all(seen == STAGES[: len(seen)] for seen in missions.values()), missions
    assert sum(seen == STAGES for seen in missions.values()) >= 20
    assert {e.fleet_id for e in events} == {"hamburg"}
    with_open_mission = {v for v, mission_id, _ in stages(events) if missions[mission_id][-1] != STAGES[-1]}
    on_mission = {
        v.id
        for v in (await demo.vehicles()).values()
        if v.fleet_id == "hamburg" and v.operational_status is OperationalStatus.ON_MISSION
    }
    assert with_open_mission == on_mission


async def test_every_state_matches_what_the_vehicle_is_doing(demo: Demo) -> None:
    for _ in range(180):
        await demo.advance(20)
        for vehicle in (await demo.vehicles()).values():
            driver = demo.simulator.drivers.get(vehicle.id)
            if driver is None or vehicle.operational_status not in simulator.PHASE_OF_STATUS:
                continue
            assert driver.phase is not None
            assert vehicle.operational_status is driver.phase.status
            assert (vehicle.lock_state is LockState.UNLOCKED) == (driver.phase in simulator.STOPS)
            assert (vehicle.location.speed_kmh > 0) == (driver.phase in simulator.DRIVING)
            if driver.phase in simulator.DRIVING and driver.route:
                towards = bearing_degrees(position(vehicle), driver.route[0])
                assert angle_between(vehicle.location.heading_degrees, towards) < 1e-6
            assert (vehicle.battery.charging_state is ChargingState.CHARGING) == (
                driver.phase is Phase.CHARGING
            )
            assert vehicle.connectivity is ConnectivityState.ONLINE or driver.phase is Phase.PARKED
            assert 0 <= vehicle.battery.state_of_charge_percent <= 100


async def test_parked_vehicles_fall_asleep_after_the_idle_time_and_wake_up_for_a_mission(demo: Demo) -> None:
    await demo.advance(1)
    vehicles = await demo.vehicles()
    idle = [
        i
        for i, d in demo.simulator.drivers.items()
        if d.phase is Phase.PARKED
        and vehicles[i].connectivity is ConnectivityState.ONLINE
        and d.timer_s > IDLE_BEFORE_SLEEP_S
    ]
    assert len(idle) >= 2
    await demo.advance(IDLE_BEFORE_SLEEP_S - 2)
    vehicles = await demo.vehicles()
    assert all(vehicles[i].connectivity is ConnectivityState.ONLINE for i in idle)
    await demo.advance(2)
    vehicles = await demo.vehicles()
    assert all(vehicles[i].connectivity is ConnectivityState.ASLEEP for i in idle)

    for _ in range(40):
        await demo.advance(30)
    events = await demo.events("hamburg") + await demo.events("hanover")
    for i in idle:
        woken = [e.change for e in events if e.vehicle_id == i and isinstance(e.change, ConnectivityChanged)]
        assert woken[:2] == [
            ConnectivityChanged(ConnectivityState.ONLINE, ConnectivityState.ASLEEP),
            ConnectivityChanged(ConnectivityState.ASLEEP, ConnectivityState.ONLINE),
        ]
        assert next(s for v, _, s in stages(events) if v == i) is MissionStage.ASSIGNED


async def test_the_same_seed_and_clock_give_the_same_fleet_and_another_seed_another() -> None:
    runs = [await Demo.start(seed) for seed in (7, 7, 8)]
    for demo in runs:
        for seconds in [1, 0, 5, 30, 120, 600, 3600, 45, 2, 300] * 3:
            await demo.advance(seconds)
    states = [await demo.vehicles() for demo in runs]
    histories = [
        [(e.vehicle_id, e.occur_time, e.change) for f in CITY_CENTERS for e in await demo.events(f)]
        for demo in runs
    ]
    assert states[0] == states[1]
    assert histories[0] == histories[1]
    assert states[0] != states[2]
    assert histories[0] != histories[2]


async def test_one_long_step_ends_where_many_short_ones_do() -> None:
    coarse, fine = await Demo.start(), await Demo.start()
    await coarse.advance(1)
    await coarse.advance(240)
    await fine.advance(1)
    for _ in range(24):
        await fine.advance(10)
    fine_vehicles = await fine.vehicles()
    statuses = operator.attrgetter(
        "operational_status", "connectivity", "lock_state", "battery.charging_state"
    )
    for vehicle_id, one in (await coarse.vehicles()).items():
        other = fine_vehicles[vehicle_id]
        assert position(one) == pytest.approx(position(other), abs=1e-9)
        assert one.battery.state_of_charge_percent == pytest.approx(other.battery.state_of_charge_percent)
        assert statuses(one) == statuses(other)
    by_vehicle = [sorted(stages(await demo.events()), key=lambda s: s[0]) for demo in (coarse, fine)]
    assert by_vehicle[0] == by_vehicle[1]


async def test_a_big_clock_jump_is_simulated_as_one_capped_step(demo: Demo) -> None:
    await demo.advance(1)
    before = await demo.vehicles()
    await demo.advance(6 * 3600)
    after = await demo.vehicles()
    hours = MAX_STEP.total_seconds() / 3600
    for vehicle_id, vehicle in after.items():
        charged = vehicle.battery.state_of_charge_percent - before[vehicle_id].battery.state_of_charge_percent
        assert charged <= simulator.percent_of(vehicle, simulator.CHARGING_KW * hours) + 1e-9
        most_km = simulator.SPEED_KMH[1] * hours
        assert -charged <= simulator.percent_of(vehicle, simulator.CONSUMPTION_KWH_PER_KM * most_km) + 1e-9
        assert distance_km(position(vehicle), CITY_CENTERS[vehicle.fleet_id]) < 15
        assert 0 <= vehicle.battery.state_of_charge_percent <= 100
        assert vehicle.battery.range_km >= 0
        assert vehicle.location.speed_kmh >= 0


async def test_vehicles_in_maintenance_out_of_service_or_offline_stay_put(demo: Demo) -> None:
    before = await demo.vehicles()
    for _ in range(60):
        await demo.advance(60)
    after = await demo.vehicles()
    events = await demo.events("hamburg") + await demo.events("hanover")
    left_alone = [
        i
        for i, v in before.items()
        if v.connectivity is ConnectivityState.OFFLINE
        or v.operational_status in (OperationalStatus.MAINTENANCE, OperationalStatus.OUT_OF_SERVICE)
    ]
    assert len(left_alone) >= 5
    assert all(after[i] == before[i] for i in left_alone)
    assert not [e for e in events if e.vehicle_id in left_alone]


async def test_a_mission_taken_away_through_the_api_is_cancelled(demo: Demo) -> None:
    await demo.advance(1)
    vehicle_id, driver = next((i, d) for i, d in demo.simulator.drivers.items() if d.phase is Phase.TO_PICKUP)
    mission_id = driver.mission_id
    await demo.emulation.updates.update(
        vehicle_id, lambda v: replace(v, operational_status=OperationalStatus.AVAILABLE)
    )
    await demo.advance(1)
    assert (vehicle_id, mission_id, MissionStage.CANCELLED) in stages(await demo.events())
    vehicle = (await demo.vehicles())[vehicle_id]
    assert (vehicle.location.speed_kmh, vehicle.lock_state) == (0.0, LockState.LOCKED)
    assert demo.simulator.drivers[vehicle_id].phase is Phase.PARKED


async def test_run_steps_every_one_over_rate_hz_seconds_and_survives_an_unavailable_backend(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    demo = await Demo.start(rate_hz=4)
    sleeps: list[float] = []
    real_step = demo.simulator.step

    async def step() -> int:
        if len(sleeps) == 1:
            raise Unavailable(reasons.BACKEND_UNAVAILABLE, "down for a moment", timedelta(seconds=1))
        return await real_step()

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 4:
            raise asyncio.CancelledError
        await demo.clock.advance(timedelta(seconds=seconds))

    monkeypatch.setattr(demo.simulator, "step", step)
    monkeypatch.setattr(simulator, "asyncio", SimpleNamespace(sleep=sleep))
    with pytest.raises(asyncio.CancelledError):
        await demo.simulator.run()
    assert sleeps == [0.25] * 4
    moved = [v for v in (await demo.vehicles()).values() if v.location.speed_kmh > 0]
    assert moved
    assert {v.location.recorded_time for v in moved} == {START + timedelta(seconds=0.75)}


@pytest.mark.parametrize("rate_hz", [0.0, -1.0])
async def test_rate_must_be_positive(demo: Demo, rate_hz: float) -> None:
    with pytest.raises(ValueError, match="rate_hz"):
        Simulator(demo.emulation, demo.clock, rate_hz=rate_hz)


async def test_run_steps_only_while_this_process_holds_the_lease(monkeypatch: pytest.MonkeyPatch) -> None:
    demo = await Demo.start(rate_hz=4)
    held = [False, False, True, True]  # another replica simulates for two rounds, then this one
    asked: list[timedelta] = []
    stepped: list[int] = []

    class Turns:
        async def hold(self, ttl: timedelta) -> bool:
            asked.append(ttl)
            return held[len(asked) - 1]

    async def step() -> int:
        stepped.append(len(asked))
        return 0

    async def sleep(seconds: float) -> None:
        if len(asked) == len(held):
            raise asyncio.CancelledError

    demo.simulator.lease = Turns()
    monkeypatch.setattr(demo.simulator, "step", step)
    monkeypatch.setattr(simulator, "asyncio", SimpleNamespace(sleep=sleep))
    with pytest.raises(asyncio.CancelledError):
        await demo.simulator.run()
    assert stepped == [3, 4]
    assert set(asked) == {simulator.MIN_LEASE}, "at 4 steps a second, three missed steps are under 5 s"
