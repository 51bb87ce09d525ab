"""The ``fleet`` and ``vehicle`` CLI groups: create, change and delete fleets and vehicles of a running
emulator. Fleets and vehicles are given as JSON in their ``moia.fleet.state.v2`` form; ``update`` changes
exactly the fields the JSON names (its leaf paths become the update mask)."""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

import click
from google.protobuf import field_mask_pb2, json_format
from google.protobuf.message import Message

from fleet_emulator._gen.emulator.admin.v1 import admin_pb2 as pb
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as v2
from fleet_emulator.cli_admin_client import Admin, connection_options, echo_json, pass_admin

M = TypeVar("M", bound=Message)
JSON_HELP = "The {} as moia.fleet.state.v2 JSON, e.g. {}."


def parsed(text: str, message: M) -> M:
    try:
        json_format.Parse(text, message)
    except json_format.ParseError as exc:
        raise click.BadParameter(str(exc), param_hint="--json") from None
    return message


def leaf_paths(document: dict[str, Any], prefix: str = "") -> list[str]:
    """The field paths a JSON object sets, down to its leaves (``{"battery": {"range_km": 1}}``:
    ``battery.range_km``)."""
    paths = []
    for key, value in document.items():
        path = (
            prefix + re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()
        )  # JSON names are camelCase or proto names
        paths += leaf_paths(value, f"{path}.") if isinstance(value, dict) and value else [path]
    return paths


def update_mask(text: str) -> field_mask_pb2.FieldMask:
    document = json.loads(text)
    if not isinstance(document, dict) or not document:
        raise click.BadParameter("must be a JSON object naming the fields to change", param_hint="--json")
    return field_mask_pb2.FieldMask(paths=leaf_paths(document))


@click.group()
@connection_options
def fleet() -> None:
    """Create, change and delete fleets."""


@fleet.command("create")
@click.option(
    "--json", "text", required=True, help=JSON_HELP.format("fleet", '\'{"id": "kiel", "city": "Kiel"}\'')
)
@pass_admin
def create_fleet(admin: Admin, text: str) -> None:
    """Create a fleet; prints it."""
    echo_json(
        admin.call(lambda s: s.CreateFleet, pb.CreateFleetRequest(fleet=parsed(text, v2.Fleet()))).fleet
    )


@fleet.command("update")
@click.argument("fleet_id")
@click.option(
    "--json", "text", required=True, help=JSON_HELP.format("fields to change", '\'{"city": "Kiel"}\'')
)
@pass_admin
def update_fleet(admin: Admin, fleet_id: str, text: str) -> None:
    """Change the fields of FLEET_ID that the JSON names; prints the fleet."""
    changed = parsed(text, v2.Fleet(id=fleet_id))
    changed.id = fleet_id
    request = pb.UpdateFleetRequest(fleet=changed, update_mask=update_mask(text))
    echo_json(admin.call(lambda s: s.UpdateFleet, request).fleet)


@fleet.command("delete")
@click.argument("fleet_id")
@pass_admin
def delete_fleet(admin: Admin, fleet_id: str) -> None:
    """Delete FLEET_ID with its vehicles."""
    admin.call(lambda s: s.DeleteFleet, pb.DeleteFleetRequest(fleet_id=fleet_id))
    click.echo(f"deleted fleet {fleet_id}")


@click.group()
@connection_options
def vehicle() -> None:
    """Create, change and delete vehicles; changes emit the matching events."""


@vehicle.command("create")
@click.option("--json", "text", required=True, help=JSON_HELP.format("vehicle", '\'{"fleet_id": "kiel"}\''))
@pass_admin
def create_vehicle(admin: Admin, text: str) -> None:
    """Create a vehicle (an empty id gets a new UUID); prints it."""
    request = pb.CreateVehicleRequest(vehicle=parsed(text, v2.Vehicle()))
    echo_json(admin.call(lambda s: s.CreateVehicle, request).vehicle)


@vehicle.command("update")
@click.argument("vehicle_id")
@click.option(
    "--json",
    "text",
    required=True,
    help=JSON_HELP.format("fields to change", '\'{"connectivity": "CONNECTIVITY_STATE_ASLEEP"}\''),
)
@pass_admin
def update_vehicle(admin: Admin, vehicle_id: str, text: str) -> None:
    """Change the fields of VEHICLE_ID that the JSON names; prints the vehicle and the events it emitted."""
    changed = parsed(text, v2.Vehicle())
    changed.id = vehicle_id
    echo_json(
        admin.call(
            lambda s: s.UpdateVehicle, pb.UpdateVehicleRequest(vehicle=changed, update_mask=update_mask(text))
        )
    )


@vehicle.command("delete")
@click.argument("vehicle_id")
@pass_admin
def delete_vehicle(admin: Admin, vehicle_id: str) -> None:
    """Delete VEHICLE_ID."""
    admin.call(lambda s: s.DeleteVehicle, pb.DeleteVehicleRequest(vehicle_id=vehicle_id))
    click.echo(f"deleted vehicle {vehicle_id}")
