"""Steering a running emulator from tests through its admin service, as a user's test would."""

from __future__ import annotations

import asyncio
from typing import Any

from google.protobuf import field_mask_pb2

from fleet_emulator._gen.emulator.admin.v1 import admin_pb2
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as pb

SEED_VEHICLE = "94d36e21-ca69-4a5b-b2b7-8068122e7362"  # label 429 in the demo's hamburg fleet
HAMBURG_EVENTS = "fleets/hamburg/vehicle-events"


async def set_soc(
    admin: Any, soc: float, flow_id: str = "", namespace: str = ""
) -> admin_pb2.UpdateVehicleResponse:
    """Set the seed vehicle's state of charge (and a matching range): one BatteryChanged event."""
    vehicle = pb.Vehicle(id=SEED_VEHICLE, battery=pb.Battery(state_of_charge_percent=soc, range_km=soc * 2.6))
    mask = field_mask_pb2.FieldMask(paths=["battery.state_of_charge_percent", "battery.range_km"])
    metadata = (("x-flow-id", flow_id),) if flow_id else ()
    if namespace:
        metadata = (*metadata, ("x-emulator-namespace", namespace))
    response: admin_pb2.UpdateVehicleResponse = await admin.UpdateVehicle(
        admin_pb2.UpdateVehicleRequest(vehicle=vehicle, update_mask=mask), metadata=metadata
    )
    return response


async def next_message(call: Any, timeout_s: float = 10) -> Any:
    """The next message of a server stream, failing the test if none comes within ``timeout_s``."""
    return await asyncio.wait_for(call.read(), timeout_s)
