"""A simulator that makes the emulated fleet look alive, on the emulator's clock. Each vehicle it drives has a
``Driver``, a small state machine: parked (locked; asleep after ``IDLE_BEFORE_SLEEP_S`` online; a mission
after a random wait), then on a mission: to the pickup along a street-like route, boarding (unlocked), to
the dropoff, alighting (unlocked), and parked again; a parked vehicle low on charge charges where it stands
until full. ``Simulator.step`` advances every driven vehicle by the emulator time since the previous step
(at most ``MAX_STEP``), writes each changed vehicle through ``VehicleUpdates.update`` (so the usual events
and live states follow) and publishes the ``MissionProgressed`` events. Within a step time is spent
transition by transition, so the outcome does not depend on how finely the clock was advanced; randomness
comes from one ``random.Random`` per vehicle, seeded from the simulator's seed and the vehicle id, so the
same seed, fleet and clock advances give the same states and events. Replicas on one Redis each run a
simulator, but only the one holding the simulator's lease steps: the others take over if it stops.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from fleet_emulator.backends.base import Lease
from fleet_emulator.domain import routes
from fleet_emulator.domain.background import keep_cancellation
from fleet_emulator.domain.clock import EmulatorClock
from fleet_emulator.domain.emulation import Emulation
from fleet_emulator.domain.errors import NotFound, Unavailable
from fleet_emulator.domain.events import Event, MissionProgressed, MissionStage
from fleet_emulator.domain.models import (
    EPOCH,
    ChargingState,
    ConnectivityState,
    LockState,
    OperationalStatus,
    Vehicle,
)
from fleet_emulator.domain.routes import Point

log = logging.getLogger(__name__)

MAX_STEP = timedelta(minutes=5)
MIN_LEASE = timedelta(seconds=5)  # how long the simulator's lease lasts unless renewed, at least
LEASE_STEPS = 3  # steps that may be missed before another replica takes the lease over
PAGE_SIZE = 500
IDLE_BEFORE_SLEEP_S = 300.0
MISSION_WAIT_S = (60.0, 1200.0)
STOP_S = (30.0, 90.0)
SPEED_KMH = (20.0, 45.0)
TRIP_RADIUS_KM = 3.0
LOW_CHARGE_PERCENT = 20.0
FULL_PERCENT = 100.0
CONSUMPTION_KWH_PER_KM = 0.33
CHARGING_KW = 50.0
DEFAULT_CAPACITY_KWH = 60.0


class Phase(enum.Enum):
    """A part of a vehicle's routine: the status it shows, and the mission stage reached on entering it."""

    PARKED = (OperationalStatus.AVAILABLE, MissionStage.COMPLETED)
    CHARGING = (OperationalStatus.CHARGING, None)
    TO_PICKUP = (OperationalStatus.ON_MISSION, MissionStage.ASSIGNED)
    BOARDING = (OperationalStatus.ON_MISSION, MissionStage.ARRIVED_AT_PICKUP)
    TO_DROPOFF = (OperationalStatus.ON_MISSION, MissionStage.PASSENGERS_BOARDED)
    ALIGHTING = (OperationalStatus.ON_MISSION, MissionStage.ARRIVED_AT_DROPOFF)

    def __init__(self, status: OperationalStatus, stage: MissionStage | None) -> None:
        self.status = status
        self.stage = stage


DRIVING = (Phase.TO_PICKUP, Phase.TO_DROPOFF)
STOPS = (Phase.BOARDING, Phase.ALIGHTING)
NEXT_ON_MISSION = {
    Phase.TO_PICKUP: Phase.BOARDING,
    Phase.BOARDING: Phase.TO_DROPOFF,
    Phase.TO_DROPOFF: Phase.ALIGHTING,
    Phase.ALIGHTING: Phase.PARKED,
}
PHASE_OF_STATUS = {
    OperationalStatus.AVAILABLE: Phase.PARKED,
    OperationalStatus.ON_MISSION: Phase.TO_PICKUP,
    OperationalStatus.CHARGING: Phase.CHARGING,
}
"""The phase a vehicle is taken over in, by its stored status; vehicles in other statuses are not driven."""


def position(vehicle: Vehicle) -> Point:
    return Point(vehicle.location.latitude, vehicle.location.longitude)


def percent_of(vehicle: Vehicle, kwh: float) -> float:
    """How many percent of the vehicle's battery ``kwh`` are."""
    return kwh / (vehicle.spec.battery_capacity_kwh or DEFAULT_CAPACITY_KWH) * 100


def with_charge(vehicle: Vehicle, percent: float) -> Vehicle:
    """The vehicle with its state of charge set (within 0-100) and its range to match."""
    percent = min(FULL_PERCENT, max(0.0, percent))
    range_km = percent / percent_of(vehicle, CONSUMPTION_KWH_PER_KM)
    battery = replace(vehicle.battery, state_of_charge_percent=percent, range_km=range_km)
    return replace(vehicle, battery=battery)


def stopped(vehicle: Vehicle, lock_state: LockState) -> Vehicle:
    location = replace(vehicle.location, speed_kmh=0.0)
    return replace(vehicle, location=location, lock_state=lock_state)


def with_charging_state(vehicle: Vehicle, state: ChargingState) -> Vehicle:
    return replace(vehicle, battery=replace(vehicle.battery, charging_state=state))


@dataclass
class Driver:
    """What the simulator knows about one vehicle beyond its stored state: phase, mission, route, timers."""

    rng: random.Random
    home: Point
    phase: Phase | None = None
    mission_id: str = ""
    route: list[Point] = field(default_factory=list)
    speed_kmh: float = 0.0
    timer_s: float = 0.0
    """Seconds left at a stop, or until the next mission while parked."""
    awake_s: float = 0.0
    """Seconds left, while parked, before an online vehicle falls asleep."""
    reached: list[tuple[str, MissionStage]] = field(default_factory=list)
    """Mission stages reached during the current ``advance``, in order."""

    def advance(
        self, vehicle: Vehicle, seconds: float, now: datetime
    ) -> tuple[Vehicle, list[tuple[str, MissionStage]]]:
        """The vehicle after ``seconds`` more of its routine, and the mission stages reached meanwhile."""
        self.reached = []
        moved = vehicle
        if self.phase is None or self.phase.status is not vehicle.operational_status:
            moved = self._take_over(moved)
        while seconds > 0:
            used, moved = self._spend(moved, seconds)
            seconds -= used
        if moved.location != vehicle.location:
            moved = replace(moved, location=replace(moved.location, recorded_time=now))
        return moved, self.reached

    def _take_over(self, vehicle: Vehicle) -> Vehicle:
        """Start from the stored status: a new vehicle, or one whose status was changed through the API."""
        if self.mission_id:
            self.reached.append((self.mission_id, MissionStage.CANCELLED))
            self.mission_id = ""
        return self._enter(vehicle, PHASE_OF_STATUS[vehicle.operational_status])

    def _spend(self, vehicle: Vehicle, seconds: float) -> tuple[float, Vehicle]:
        """Spend up to ``seconds`` in the current phase (less when it ends sooner); returns the time used."""
        assert self.phase is not None
        if self.phase in DRIVING:
            return self._drive(vehicle, seconds)
        if self.phase in STOPS:
            used = min(seconds, self.timer_s)
            self.timer_s -= used
            return used, (self._enter(vehicle, NEXT_ON_MISSION[self.phase]) if self.timer_s <= 0 else vehicle)
        if self.phase is Phase.CHARGING:
            return self._charge(vehicle, seconds)
        return self._park(vehicle, seconds)

    def _enter(self, vehicle: Vehicle, phase: Phase) -> Vehicle:
        if phase is Phase.TO_PICKUP:
            self.mission_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        if self.mission_id and phase.stage is not None:
            self.reached.append((self.mission_id, phase.stage))
        self.phase = phase
        vehicle = replace(vehicle, operational_status=phase.status)
        if phase in DRIVING:
            goal = routes.point_near(self.rng, self.home, TRIP_RADIUS_KM)
            self.route = routes.street_route(self.rng, position(vehicle), goal)
            self.speed_kmh = self.rng.uniform(*SPEED_KMH)
            vehicle = with_charging_state(vehicle, ChargingState.NOT_CHARGING)
            return replace(vehicle, connectivity=ConnectivityState.ONLINE, lock_state=LockState.LOCKED)
        if phase in STOPS:
            self.timer_s = self.rng.uniform(*STOP_S)
            return stopped(vehicle, LockState.UNLOCKED)
        if phase is Phase.PARKED:
            self.mission_id = ""
            self.timer_s = self.rng.uniform(*MISSION_WAIT_S)
            self.awake_s = IDLE_BEFORE_SLEEP_S
            return stopped(vehicle, LockState.LOCKED)
        vehicle = with_charging_state(vehicle, ChargingState.CHARGING)
        return stopped(replace(vehicle, connectivity=ConnectivityState.ONLINE), LockState.LOCKED)

    def _drive(self, vehicle: Vehicle, seconds: float) -> tuple[float, Vehicle]:
        """Move towards the next waypoint; on arriving at the last one, the next phase of the mission."""
        assert self.phase is not None
        if not self.route:
            return 0.0, self._enter(vehicle, NEXT_ON_MISSION[self.phase])
        here, waypoint = position(vehicle), self.route[0]
        km_per_s = self.speed_kmh / 3600
        to_waypoint_s = routes.distance_km(here, waypoint) / km_per_s
        if seconds >= to_waypoint_s:
            used, there = to_waypoint_s, self.route.pop(0)
        else:
            used, there = seconds, routes.between(here, waypoint, seconds / to_waypoint_s)
        heading = vehicle.location.heading_degrees  # kept on arrival: the direction it came in
        if self.route:
            heading = routes.bearing_degrees(there, self.route[0])
        location = replace(
            vehicle.location,
            latitude=there.latitude,
            longitude=there.longitude,
            heading_degrees=heading,
            speed_kmh=self.speed_kmh,
        )
        drained = percent_of(vehicle, used * km_per_s * CONSUMPTION_KWH_PER_KM)
        charge = vehicle.battery.state_of_charge_percent - drained
        return used, with_charge(replace(vehicle, location=location), charge)

    def _charge(self, vehicle: Vehicle, seconds: float) -> tuple[float, Vehicle]:
        charge = vehicle.battery.state_of_charge_percent
        percent_per_s = percent_of(vehicle, CHARGING_KW / 3600)
        to_full_s = max(0.0, (FULL_PERCENT - charge) / percent_per_s)
        if seconds < to_full_s:
            return seconds, with_charge(vehicle, charge + seconds * percent_per_s)
        full = with_charging_state(with_charge(vehicle, FULL_PERCENT), ChargingState.COMPLETE)
        return to_full_s, self._enter(full, Phase.PARKED)

    def _park(self, vehicle: Vehicle, seconds: float) -> tuple[float, Vehicle]:
        """Wait for a mission (charging first when low), falling asleep when parked online long enough."""
        if vehicle.battery.state_of_charge_percent < LOW_CHARGE_PERCENT:
            return 0.0, self._enter(vehicle, Phase.CHARGING)
        used = min(seconds, self.timer_s, self.awake_s if self.awake_s > 0 else math.inf)
        self.timer_s -= used
        self.awake_s = max(0.0, self.awake_s - used)
        if self.timer_s <= 0:
            return used, self._enter(vehicle, Phase.TO_PICKUP)
        if self.awake_s <= 0 and vehicle.connectivity is ConnectivityState.ONLINE:
            vehicle = replace(vehicle, connectivity=ConnectivityState.ASLEEP)
        return used, vehicle


class Simulator:
    """Drives the store's vehicles that are not offline and are available, on a mission or charging;
    ``run`` steps at ``rate_hz`` in real time, tests call ``step`` after moving a virtual clock."""

    def __init__(
        self,
        emulation: Emulation,
        clock: EmulatorClock,
        seed: int = 0,
        rate_hz: float = 1.0,
        lease: Lease | None = None,
    ) -> None:
        """With a ``lease``, steps are taken only while this process holds it: one replica simulates."""
        if rate_hz <= 0:
            raise ValueError(f"rate_hz must be positive, not {rate_hz}")
        self.lease = lease
        self.store = emulation.backend.state
        self.updates = emulation.updates
        self.clock = clock
        self.seed = seed
        self.rate_hz = rate_hz
        self.drivers: dict[str, Driver] = {}
        self._last_step = clock.now()

    async def run(self) -> None:
        """Step every ``1 / rate_hz`` seconds until cancelled; a step the backend cannot serve is skipped."""
        lease_ttl = max(MIN_LEASE, LEASE_STEPS * timedelta(seconds=1 / self.rate_hz))
        while True:
            try:
                await self.clock.refresh()
                if self.lease is None or await self.lease.hold(lease_ttl):
                    await self.step()
                else:
                    self._last_step = self.clock.now()  # another replica simulates meanwhile
            except Unavailable as exc:
                log.warning("simulation step skipped: %s", exc)
            keep_cancellation()
            await asyncio.sleep(1 / self.rate_hz)

    async def step(self) -> int:
        """Advance the fleet by the emulator time since the last step (at most ``MAX_STEP``); returns the
        number of vehicles changed."""
        now = self.clock.now()
        seconds = min(now - self._last_step, MAX_STEP).total_seconds()
        self._last_step = now
        if seconds <= 0:
            return 0
        changed = 0
        listed: set[str] = set()
        async for vehicle in self._vehicles():
            listed.add(vehicle.id)
            if vehicle.connectivity is not ConnectivityState.OFFLINE and (
                vehicle.operational_status in PHASE_OF_STATUS
            ):
                changed += await self._drive(vehicle, seconds, now)
        self.drivers = {vehicle_id: d for vehicle_id, d in self.drivers.items() if vehicle_id in listed}
        return changed

    async def _drive(self, vehicle: Vehicle, seconds: float, now: datetime) -> bool:
        driver = self.drivers.get(vehicle.id)
        if driver is None:
            driver = Driver(random.Random(f"{self.seed}:{vehicle.id}"), position(vehicle))
            self.drivers[vehicle.id] = driver
        moved, reached = driver.advance(vehicle, seconds, now)
        try:
            if moved != vehicle:  # a change made through the API since the listing is kept
                await self.updates.update(vehicle.id, lambda old: moved if old == vehicle else old)
            for mission_id, stage in reached:
                progressed = MissionProgressed(mission_id, stage)
                await self.updates.publish(Event("", vehicle.id, "", EPOCH, EPOCH, "", progressed))
        except NotFound:  # deleted since the listing; its driver goes at the next step
            return False
        return moved != vehicle

    async def _vehicles(self) -> AsyncIterator[Vehicle]:
        """Every vehicle of the store, fleet by fleet, in id order, read page by page."""
        after_fleet = ""
        while fleets := await self.store.list_fleets(after_fleet, PAGE_SIZE):
            for fleet in fleets:
                after_vehicle = ""
                while vehicles := await self.store.list_vehicles(fleet.id, after_vehicle, PAGE_SIZE):
                    for vehicle in vehicles:
                        yield vehicle
                    after_vehicle = vehicles[-1].id
            after_fleet = fleets[-1].id
