"""Vehicle events: one envelope with the vehicle, times and flow id, and a typed change of one kind.

The kinds mirror what a fleet API pushes: connectivity, position, doors, lock, battery, charging,
operational status, mission progress and the execution of a command (not in v1beta4). ``LogEntry`` is an
event as stored in a durable stream, with its message id and the id of the entry before it (so that a
trimmed gap shows, API.md section 5), and the bytes the log keeps it as (a v2 ``Event`` message), which a v2
answer sends as they are.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from fleet_emulator.domain import models
from fleet_emulator.domain.message_ids import MessageId


@dataclass(frozen=True)
class ConnectivityChanged:
    previous: models.ConnectivityState
    current: models.ConnectivityState


@dataclass(frozen=True)
class PositionChanged:
    location: models.Location


@dataclass(frozen=True)
class DoorsChanged:
    doors: tuple[models.Door, ...]


@dataclass(frozen=True)
class LockChanged:
    lock_state: models.LockState


@dataclass(frozen=True)
class BatteryChanged:
    state_of_charge_percent: float
    range_km: float


@dataclass(frozen=True)
class ChargingChanged:
    charging_state: models.ChargingState


@dataclass(frozen=True)
class OperationalStatusChanged:
    previous: models.OperationalStatus
    current: models.OperationalStatus


class MissionStage(enum.Enum):
    UNSPECIFIED = 0
    ASSIGNED = 1
    ARRIVED_AT_PICKUP = 2
    PASSENGERS_BOARDED = 3
    ARRIVED_AT_DROPOFF = 4
    COMPLETED = 5
    CANCELLED = 6


@dataclass(frozen=True)
class MissionProgressed:
    mission_id: str
    stage: MissionStage


class VehicleCommand(enum.Enum):
    UNSPECIFIED = 0
    LOCK = 1
    UNLOCK = 2
    HONK_HORN = 3
    FLASH_LIGHTS = 4


@dataclass(frozen=True)
class CommandResult:
    """One execution of a command by a vehicle (``commands.py``)."""

    command_id: str
    command: VehicleCommand
    vehicle_id: str
    execution_count: int
    execute_time: datetime


@dataclass(frozen=True)
class CommandExecuted:
    result: CommandResult


Change = (
    ConnectivityChanged
    | PositionChanged
    | DoorsChanged
    | LockChanged
    | BatteryChanged
    | ChargingChanged
    | OperationalStatusChanged
    | MissionProgressed
    | CommandExecuted
)


@dataclass(frozen=True)
class Event:
    id: str
    vehicle_id: str
    fleet_id: str
    occur_time: datetime
    publish_time: datetime
    flow_id: str
    change: Change | None  # None only in a request that left it out; stored events always have one


@dataclass(frozen=True)
class LogEntry:
    message_id: MessageId
    previous_id: MessageId
    event: Event
    stored: bytes = b""  # the event as a serialized moia.fleet.state.v2.Event (``backends/event_bytes.py``)
