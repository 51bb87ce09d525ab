"""Conversion between domain objects and the protobuf messages of one API version.

The versions differ only in data, described by a ``VersionAdapter``: the generated module, and the name
and message type of the vehicle's static description (``configuration``/``VehicleConfiguration`` in v1beta4
and v1, ``properties``/``VehicleProperties`` in v2). Enums convert by name: the domain member ``ONLINE`` is
the proto value ``CONNECTIVITY_STATE_ONLINE``.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime
from types import ModuleType
from typing import Any

from google.protobuf import timestamp_pb2

from fleet_emulator.domain import models
from fleet_emulator.domain.service import FleetView


@dataclass(frozen=True)
class VersionAdapter:
    name: str
    pb: ModuleType
    spec_field: str

    def enum(self, value: enum.Enum) -> int:
        prefix = re.sub(r"(?<!^)(?=[A-Z])", "_", type(value).__name__).upper()
        number: int = getattr(self.pb, type(value).__name__).Value(f"{prefix}_{value.name}")
        return number

    def fleet(self, view: FleetView) -> Any:
        f = view.fleet
        return self.pb.Fleet(
            id=f.id,
            display_name=f.display_name,
            city=f.city,
            time_zone=f.time_zone,
            vehicle_count=view.vehicle_count,
            update_time=timestamp(f.update_time),
        )

    def vehicle(self, v: models.Vehicle) -> Any:
        spec_type = self.pb.DESCRIPTOR.message_types_by_name["Vehicle"].fields_by_name[self.spec_field]
        spec = getattr(self.pb, spec_type.message_type.name)(
            make=v.spec.make,
            model=v.spec.model,
            model_year=v.spec.model_year,
            automation_level=self.enum(v.spec.automation_level),
            seats=v.spec.seats,
            wheelchair_accessible=v.spec.wheelchair_accessible,
            license_plate=v.spec.license_plate,
            vin=v.spec.vin,
            battery_capacity_kwh=v.spec.battery_capacity_kwh,
        )
        loc = v.location
        return self.pb.Vehicle(
            id=v.id,
            label=v.label,
            fleet_id=v.fleet_id,
            connectivity=self.enum(v.connectivity),
            operational_status=self.enum(v.operational_status),
            location=self.pb.Location(
                latitude=loc.latitude,
                longitude=loc.longitude,
                heading_degrees=loc.heading_degrees,
                speed_kmh=loc.speed_kmh,
                recorded_time=timestamp(loc.recorded_time),
            ),
            battery=self.pb.Battery(
                state_of_charge_percent=v.battery.state_of_charge_percent,
                range_km=v.battery.range_km,
                charging_state=self.enum(v.battery.charging_state),
            ),
            lock_state=self.enum(v.lock_state),
            doors=[self.pb.Door(position=self.enum(d.position), state=self.enum(d.state)) for d in v.doors],
            update_time=timestamp(v.update_time),
            etag=v.etag,
            **{self.spec_field: spec},
        )


def timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    result = timestamp_pb2.Timestamp()
    result.FromDatetime(value)
    return result
