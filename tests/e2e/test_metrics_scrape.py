"""A real ``fleet-emulator serve`` counts on ``/metrics`` exactly the calls a client made, and ``/healthz``
says SERVING: calls of known outcomes over gRPC, then the console port's two endpoints over HTTP, the
metrics read with prometheus-client's own parser.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fleet_emulator._gen.emulator.admin.v1 import admin_pb2 as adm
from fleet_emulator._gen.emulator.admin.v1 import admin_pb2_grpc
from fleet_emulator._gen.moia.fleet.state.v1 import fleet_state_pb2 as v1_pb
from fleet_emulator._gen.moia.fleet.state.v1 import fleet_state_pb2_grpc as v1_grpc
from fleet_emulator._gen.moia.fleet.state.v1beta4 import fleet_state_pb2 as v1beta4_pb
from fleet_emulator._gen.moia.fleet.state.v1beta4 import fleet_state_pb2_grpc as v1beta4_grpc
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as v2_pb
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2_grpc as v2_grpc
from tests.e2e.harness import EmulatorProcess, free_port, serve_command, serving
from tests.steering import SEED_VEHICLE

pytestmark = pytest.mark.e2e

HTTP_TIMEOUT_S = 5.0
UNKNOWN_VEHICLE = "00000000-0000-4000-8000-000000000000"
Series = tuple[str, tuple[tuple[str, str], ...]]  # a sample's name and its sorted labels


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmulatorProcess, int]]:
    """A serving emulator of this module's own, so that its counters hold only this module's calls; and its
    console port."""
    port, console_port = free_port(), free_port()
    log: Path = tmp_path_factory.mktemp("metrics") / "serve.log"
    command = serve_command("--host", "127.0.0.1", "--port", str(port), "--console-port", str(console_port))
    with serving(command, port, log) as process:
        yield process, console_port


def get(console_port: int, path: str) -> tuple[int, str, str]:
    """Status, content type and body of a GET on the console port."""
    url = f"http://127.0.0.1:{console_port}{path}"
    with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as response:
        return response.status, response.headers["Content-Type"], response.read().decode()


def scrape(console_port: int) -> dict[Series, float]:
    status, content_type, body = get(console_port, "/metrics")
    assert (status, content_type.split(";")[0]) == (200, "text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def calls_of(samples: dict[Series, float]) -> dict[tuple[str, str, str, str], float]:
    """``fleet_emulator_calls_total`` as (service, method, version, code) -> count."""
    found = {}
    for (name, labels), count in samples.items():
        if name == "fleet_emulator_calls_total":
            by = dict(labels)
            found[by["service"], by["method"], by["version"], by["code"]] = count
    return found


def make_calls(address: str) -> None:
    """5 GetVehicle OK on v2, 3 GetVehicle NOT_FOUND on v1, 2 ListFleets OK on v1beta4, 1 admin GetClock."""
    with grpc.insecure_channel(address) as channel:
        v2, v1 = v2_grpc.FleetStateServiceStub(channel), v1_grpc.FleetStateServiceStub(channel)
        v1beta4 = v1beta4_grpc.FleetStateServiceStub(channel)
        for _ in range(5):
            v2.GetVehicle(v2_pb.GetVehicleRequest(vehicle_id=SEED_VEHICLE))
        for _ in range(3):
            with pytest.raises(grpc.RpcError) as failed:
                v1.GetVehicle(v1_pb.GetVehicleRequest(vehicle_id=UNKNOWN_VEHICLE))
            assert failed.value.code() == grpc.StatusCode.NOT_FOUND
        for _ in range(2):
            v1beta4.ListFleets(v1beta4_pb.ListFleetsRequest())
        admin_pb2_grpc.AdminServiceStub(channel).GetClock(adm.GetClockRequest())


def test_metrics_count_exactly_the_calls_made(emulator: tuple[EmulatorProcess, int]) -> None:
    process, console_port = emulator
    make_calls(process.address)
    samples = scrape(console_port)
    assert calls_of(samples) == {
        ("FleetStateService", "GetVehicle", "v2", "OK"): 5,
        ("FleetStateService", "GetVehicle", "v1", "NOT_FOUND"): 3,
        ("FleetStateService", "ListFleets", "v1beta4", "OK"): 2,
        ("AdminService", "GetClock", "admin", "OK"): 1,
    }
    timed = (("method", "GetVehicle"), ("service", "FleetStateService"), ("version", "v2"))
    assert samples["fleet_emulator_call_duration_seconds_count", timed] == 5
    assert samples["fleet_emulator_journal_entries", ()] == 10  # the API's calls (admin calls: not journaled)
    assert samples["fleet_emulator_open_streams", (("kind", "events"),)] == 0
    assert samples["fleet_emulator_events_published_total", ()] == 0  # the simulator is off
    assert ("process_resident_memory_bytes", ()) in samples


def test_healthz_says_serving(emulator: tuple[EmulatorProcess, int]) -> None:
    _, console_port = emulator
    status, content_type, body = get(console_port, "/healthz")
    assert (status, content_type.split(";")[0]) == (200, "application/json")
    assert json.loads(body) == {"status": "SERVING"}
