"""The emulator as a real process, driven by the real grpcurl binary through server reflection only.

One ``fleet-emulator serve`` with the demo scenario serves every test here. The tests replay seed 002's
pagination calls (``-plaintext`` and the emulator's address instead of the production host, no
``-proto``/``-import-path``), page through a whole fleet, read the rich error details and the ``x-flow-id``
header that grpcurl prints, and describe messages by reflection.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.e2e.harness import (
    GRPCURL_STATUS_EXIT_BASE,
    EmulatorProcess,
    call,
    get_field,
    grpcurl,
    parse_error,
    parse_response_headers,
)

pytestmark = pytest.mark.e2e

API_SERVICES = [f"moia.fleet.state.{v}.FleetStateService" for v in ("v1beta4", "v1", "v2")]
V1BETA4 = "moia.fleet.state.v1beta4.FleetStateService"
V2 = "moia.fleet.state.v2.FleetStateService"
SEED_002_VEHICLE_IDS = {
    "94d36e21-ca69-4a5b-b2b7-8068122e7362",
    "76350d1a-8df5-4217-8d58-207f4e1e0b90",
    "3245cadd-a80c-4524-a5d8-6507479b7921",
}
NOT_FOUND = 5
ABORTED = 10


def list_vehicles(address: str, service: str, **request: Any) -> dict[str, Any]:
    return call(address, f"{service}/ListVehicles", {"fleet_id": "hamburg", **request})


def test_list_shows_every_service_by_reflection(address: str) -> None:
    result = grpcurl("-plaintext", address, "list")

    assert result.returncode == 0, result.stderr
    services = set(result.stdout.split())
    assert {*API_SERVICES, "grpc.health.v1.Health"} <= services
    assert any(s.startswith("grpc.reflection.") and s.endswith(".ServerReflection") for s in services)


@pytest.mark.parametrize("service", ["", *API_SERVICES])
def test_health_check_through_grpcurl_is_serving(address: str, service: str) -> None:
    response = call(address, "grpc.health.v1.Health/Check", {"service": service})

    assert response == {"status": "SERVING"}


def test_seed_002_paging_call_returns_two_vehicles_and_a_token(address: str) -> None:
    page = list_vehicles(address, V1BETA4, page_size=2)

    assert len(page["vehicles"]) == 2
    assert all(v["fleet_id"] == "hamburg" for v in page["vehicles"])
    assert get_field(page, "next_page_token")


def test_paging_with_the_token_visits_the_whole_fleet_once(address: str) -> None:
    service, page_size = V1BETA4, 2  # seed 002's call, then its next-page call until the end
    fleet = call(address, f"{service}/GetFleet", {"fleet_id": "hamburg"})["fleet"]
    vehicle_count = int(get_field(fleet, "vehicle_count"))
    ids: list[str] = []
    token = ""
    for _ in range(vehicle_count // page_size + 2):  # bounded: a token that never ends fails below
        page = list_vehicles(
            address, service, page_size=page_size, **({"page_token": token} if token else {})
        )
        vehicles = page.get("vehicles", [])
        ids += [v["id"] for v in vehicles]
        token = get_field(page, "next_page_token", "")
        if not token:
            break
        assert len(vehicles) == page_size, "only the last page may be short"
    else:
        pytest.fail(f"still a next_page_token after {len(ids)} vehicles of {vehicle_count}")

    assert len(ids) == len(set(ids)), "a vehicle id repeats across pages"
    assert len(ids) == vehicle_count == 27
    assert set(ids) >= SEED_002_VEHICLE_IDS
    assert ids == sorted(ids), "README: vehicles are ordered by id"


def test_bad_page_token_is_not_found_with_error_info_and_the_flow_id(address: str) -> None:
    result = grpcurl(
        "-plaintext", "-v", "-d", '{"fleet_id": "hamburg", "page_size": 2, "page_token": "not-a-token"}',
        address, f"{V1BETA4}/ListVehicles",
    )  # fmt: skip

    assert result.returncode == GRPCURL_STATUS_EXIT_BASE + NOT_FOUND, result.stderr
    error = parse_error(result.stderr)
    assert error.code == "NotFound"
    info = error.detail("google.rpc.ErrorInfo")
    assert info["reason"] == "PAGE_TOKEN_NOT_FOUND"
    assert info["domain"]
    assert info["metadata"]["page_token"] == "not-a-token"
    flow_id = info["metadata"]["flow_id"]
    assert uuid.UUID(flow_id), "without a client flow id the emulator makes a UUID"
    assert error.detail("google.rpc.RequestInfo")["request_id"] == flow_id
    assert parse_response_headers(result.stdout)["x-flow-id"] == [flow_id]


def test_client_flow_id_comes_back_in_the_header_and_the_error_info(address: str) -> None:
    result = grpcurl(
        "-plaintext", "-v", "-H", "x-flow-id: my-flow-1",
        "-d", '{"fleet_id": "hamburg", "page_token": "nope"}',
        address, "moia.fleet.state.v1.FleetStateService/ListVehicles",
    )  # fmt: skip

    assert result.returncode == GRPCURL_STATUS_EXIT_BASE + NOT_FOUND, result.stderr
    assert parse_response_headers(result.stdout)["x-flow-id"] == ["my-flow-1"]
    error = parse_error(result.stderr)
    assert error.detail("google.rpc.ErrorInfo")["metadata"]["flow_id"] == "my-flow-1"
    assert error.detail("google.rpc.RequestInfo")["request_id"] == "my-flow-1"


def test_every_successful_response_has_its_own_flow_id_header(address: str) -> None:
    flow_ids = []
    for _ in range(2):
        result = grpcurl("-plaintext", "-v", "-d", '{"fleet_id": "hamburg"}', address, f"{V1BETA4}/GetFleet")
        assert result.returncode == 0, result.stderr
        [flow_id] = parse_response_headers(result.stdout)["x-flow-id"]
        flow_ids.append(str(uuid.UUID(flow_id)))

    assert flow_ids[0] != flow_ids[1]


def test_describe_shows_v2_vehicle_properties_by_reflection(address: str) -> None:
    result = grpcurl("-plaintext", address, "describe", "moia.fleet.state.v2.VehicleProperties")

    assert result.returncode == 0, result.stderr
    assert "moia.fleet.state.v2.VehicleProperties is a message:" in result.stdout
    assert "message VehicleProperties {" in result.stdout
    assert "string make = 1;" in result.stdout


def test_reflection_shows_seed_002_rename_between_v1_and_v2(address: str) -> None:
    v1 = grpcurl("-plaintext", address, "describe", "moia.fleet.state.v1.VehicleConfiguration")
    v2 = grpcurl("-plaintext", address, "describe", "moia.fleet.state.v2.VehicleConfiguration")

    assert v1.returncode == 0, v1.stderr
    assert "message VehicleConfiguration {" in v1.stdout
    assert v2.returncode != 0
    assert "not found" in v2.stderr.lower()


def test_only_v1beta4_responses_name_their_successor_in_headers(address: str) -> None:
    old = grpcurl("-plaintext", "-v", "-d", '{"fleet_id": "hamburg"}', address, f"{V1BETA4}/GetFleet")
    new = grpcurl("-plaintext", "-v", "-d", '{"fleet_id": "hamburg"}', address, f"{V2}/GetFleet")
    assert old.returncode == new.returncode == 0, old.stderr + new.stderr
    old_headers, new_headers = parse_response_headers(old.stdout), parse_response_headers(new.stdout)
    assert old_headers["deprecation"] == ["true"]
    assert old_headers["link"] == ['<moia.fleet.state.v2>; rel="successor-version"']
    assert "deprecation" not in new_headers and "link" not in new_headers


def test_an_update_with_a_stale_etag_is_aborted(address: str) -> None:
    namespace = ("-H", f"x-emulator-namespace: etag-{uuid.uuid4().hex[:8]}")
    vehicle_id = sorted(SEED_002_VEHICLE_IDS)[0]
    read = call(address, f"{V2}/GetVehicle", {"vehicle_id": vehicle_id}, *namespace)["vehicle"]
    change = {
        "vehicle": {"id": vehicle_id, "label": "E2E", "etag": read["etag"]},
        "update_mask": {"paths": ["label"]},
    }
    updated = call(address, f"{V2}/UpdateVehicle", change, *namespace)["vehicle"]
    assert updated["label"] == "E2E" and updated["etag"] != read["etag"]

    stale = grpcurl("-plaintext", *namespace, "-d", json.dumps(change), address, f"{V2}/UpdateVehicle")

    assert stale.returncode == GRPCURL_STATUS_EXIT_BASE + ABORTED, stale.stderr
    error = parse_error(stale.stderr)
    assert error.detail("google.rpc.ErrorInfo")["reason"] == "ETAG_MISMATCH"
    assert get_field(error.detail("google.rpc.ResourceInfo"), "resource_name") == vehicle_id


def test_header_values_that_are_not_utf8_are_served_without_a_traceback(
    demo_emulator: EmulatorProcess,
) -> None:
    before = demo_emulator.output()
    for name in ("x-note", "x-flow-id", "x-emulator-namespace"):
        result = grpcurl(
            "-plaintext", "-H", f"{name}: a\udcffb", demo_emulator.address, f"{V2}/ListFleets"
        )  # the raw byte 0xff on the wire
        assert result.returncode in (0, GRPCURL_STATUS_EXIT_BASE + 3), result.stderr
    logged = demo_emulator.output()[len(before) :]
    assert "Traceback" not in logged and "Invalid encoding" not in logged, logged
