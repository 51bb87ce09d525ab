"""Domain types of the emulated fleet: fleets, vehicles and the parts of a vehicle's state.

Plain frozen dataclasses and enums, independent of any API version. Enum member names equal the proto
value names without their prefix (``ConnectivityState.ONLINE`` is ``CONNECTIVITY_STATE_ONLINE``), which lets
the version adapters convert by name; fields marked ``EMULATOR_ONLY`` (a vehicle's pending wake-up) are
stored but in no API. ``codec.py`` gives the JSON form the backends store.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from fleet_emulator.domain.codec import encode


class ConnectivityState(enum.Enum):
    UNSPECIFIED = 0
    ONLINE = 1
    ASLEEP = 2
    OFFLINE = 3


class OperationalStatus(enum.Enum):
    UNSPECIFIED = 0
    AVAILABLE = 1
    ON_MISSION = 2
    CHARGING = 3
    MAINTENANCE = 4
    OUT_OF_SERVICE = 5


class AutomationLevel(enum.Enum):
    UNSPECIFIED = 0
    SAE_0 = 1
    SAE_1 = 2
    SAE_2 = 3
    SAE_3 = 4
    SAE_4 = 5
    SAE_5 = 6


class LockState(enum.Enum):
    UNSPECIFIED = 0
    LOCKED = 1
    UNLOCKED = 2


class DoorPosition(enum.Enum):
    UNSPECIFIED = 0
    FRONT_LEFT = 1
    FRONT_RIGHT = 2
    SLIDING_RIGHT = 3
    SLIDING_LEFT = 4
    TAILGATE = 5


class DoorState(enum.Enum):
    UNSPECIFIED = 0
    CLOSED = 1
    OPEN = 2


class ChargingState(enum.Enum):
    UNSPECIFIED = 0
    NOT_CHARGING = 1
    CHARGING = 2
    COMPLETE = 3


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Fleet:
    id: str
    display_name: str
    city: str
    time_zone: str
    update_time: datetime = EPOCH


@dataclass(frozen=True)
class VehicleSpec:
    """The static description: ``VehicleConfiguration`` in v1beta4 and v1, ``VehicleProperties`` in v2."""

    make: str = ""
    model: str = ""
    model_year: int = 0
    automation_level: AutomationLevel = AutomationLevel.UNSPECIFIED
    seats: int = 0
    wheelchair_accessible: bool = False
    license_plate: str = ""
    vin: str = ""
    battery_capacity_kwh: float = 0.0


@dataclass(frozen=True)
class Location:
    latitude: float = 0.0
    longitude: float = 0.0
    heading_degrees: float = 0.0
    speed_kmh: float = 0.0
    recorded_time: datetime = EPOCH


@dataclass(frozen=True)
class Battery:
    state_of_charge_percent: float = 0.0
    range_km: float = 0.0
    charging_state: ChargingState = ChargingState.UNSPECIFIED


@dataclass(frozen=True)
class Door:
    position: DoorPosition
    state: DoorState


EMULATOR_ONLY = {"api": False}  # field metadata: the emulator's own bookkeeping, in no proto


@dataclass(frozen=True)
class PendingWakeUp:
    """A wake-up of an asleep vehicle not done yet (``wake_ups.py``): when it comes online, and the flow id
    of the call that woke it, which its events carry."""

    due: datetime
    flow_id: str


@dataclass(frozen=True)
class Vehicle:
    id: str
    label: str
    fleet_id: str
    spec: VehicleSpec = field(default_factory=VehicleSpec)
    connectivity: ConnectivityState = ConnectivityState.ONLINE
    operational_status: OperationalStatus = OperationalStatus.AVAILABLE
    location: Location = field(default_factory=Location)
    battery: Battery = field(default_factory=Battery)
    lock_state: LockState = LockState.LOCKED
    doors: tuple[Door, ...] = ()
    update_time: datetime = EPOCH
    etag: str = ""
    wake_up: PendingWakeUp | None = field(default=None, metadata=EMULATOR_ONLY)

    def stamped(self, now: datetime) -> Vehicle:
        """This vehicle with ``update_time`` set to ``now`` and an etag computed from its content."""
        changed = dataclasses.replace(self, update_time=now, etag="")
        digest = hashlib.sha256(json.dumps(encode(changed), sort_keys=True).encode()).hexdigest()
        return dataclasses.replace(changed, etag=f'W/"{digest[:16]}"')
