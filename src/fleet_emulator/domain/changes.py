"""What changed between two states of a vehicle, as the events a fleet API would push for it.

A change to several parts of a vehicle gives several events (one per kind, in a fixed order), all with
the same times and flow id. Label, fleet and static description changes give no event: they are
configuration, not state.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from fleet_emulator.domain import events as ev
from fleet_emulator.domain.models import Vehicle


def changes_between(old: Vehicle, new: Vehicle) -> list[ev.Change]:
    found: list[ev.Change] = []
    if old.connectivity != new.connectivity:
        found.append(ev.ConnectivityChanged(old.connectivity, new.connectivity))
    if old.operational_status != new.operational_status:
        found.append(ev.OperationalStatusChanged(old.operational_status, new.operational_status))
    if old.location != new.location:
        found.append(ev.PositionChanged(new.location))
    if old.doors != new.doors:
        found.append(ev.DoorsChanged(new.doors))
    if old.lock_state != new.lock_state:
        found.append(ev.LockChanged(new.lock_state))
    if (old.battery.state_of_charge_percent, old.battery.range_km) != (
        new.battery.state_of_charge_percent,
        new.battery.range_km,
    ):
        found.append(ev.BatteryChanged(new.battery.state_of_charge_percent, new.battery.range_km))
    if old.battery.charging_state != new.battery.charging_state:
        found.append(ev.ChargingChanged(new.battery.charging_state))
    return found


def event_for(vehicle: Vehicle, change: ev.Change, now: datetime, flow_id: str) -> ev.Event:
    occurred = vehicle.location.recorded_time if isinstance(change, ev.PositionChanged) else now
    return ev.Event(str(uuid.uuid4()), vehicle.id, vehicle.fleet_id, occurred, now, flow_id, change)
