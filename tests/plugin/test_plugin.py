"""The ``fleet_emulator`` fixture of the pytest plugin: stubs, namespaces, the admin helper, the reset
between tests, and where the emulator comes from (started in-process, or given by address).

Tests of this module use the fixture directly (the plugin is loaded here until the package's entry
point does it); what needs a whole pytest session (several tests in a row, command-line options, the
end of the session) runs in inner sessions of ``pytester``, as subprocesses.
"""

from __future__ import annotations

import re
import socket
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from fleet_emulator.domain.namespaces import NAMESPACE_HEADER
from fleet_emulator.testing import (
    ADDRESS_ENV,
    BackgroundEmulator,
    FleetEmulator,
    admin_pb,
    connect,
    v1_pb,
    v1beta4_pb,
    v2_grpc,
    v2_pb,
)
from tests.steering import HAMBURG_EVENTS, SEED_VEHICLE

pytest_plugins = ["pytester"]

NAMESPACE = re.compile(r"pytest-(gw\d+-)?[0-9a-f]{12}")
ONLINE, OFFLINE = v2_pb.CONNECTIVITY_STATE_ONLINE, v2_pb.CONNECTIVITY_STATE_OFFLINE
SMALL_SCENARIO = "name: small\nfleets:\n  - id: kiel\n    generate: {count: 3}\n"


def seed_vehicle(emulator: FleetEmulator) -> v2_pb.Vehicle:
    return emulator.v2.GetVehicle(v2_pb.GetVehicleRequest(vehicle_id=SEED_VEHICLE)).vehicle


def test_stubs_of_every_version_answer_in_the_session_namespace(fleet_emulator: FleetEmulator) -> None:
    request = v1beta4_pb.GetVehicleRequest(vehicle_id=SEED_VEHICLE)
    beta = fleet_emulator.v1beta4.GetVehicle(request).vehicle
    stable = fleet_emulator.v1.GetVehicle(v1_pb.GetVehicleRequest(vehicle_id=SEED_VEHICLE)).vehicle
    current = fleet_emulator.v2.GetVehicle(fleet_emulator.pb.v2.GetVehicleRequest(vehicle_id=SEED_VEHICLE))
    assert beta.configuration.make == stable.configuration.make == current.vehicle.properties.make
    states = fleet_emulator.v2.SubscribeToVehicleStates(
        v2_pb.SubscribeToVehicleStatesRequest(fleet_id="hamburg", vehicle_ids=[SEED_VEHICLE])
    )
    assert next(iter(states)).vehicle.id == SEED_VEHICLE
    states.cancel()  # type: ignore[no-untyped-call]  # grpc's stubs leave it untyped

    journal = fleet_emulator.admin.journal()
    assert [e.version for e in journal] == ["v1beta4", "v1", "v2", "v2"]
    assert {e.metadata[NAMESPACE_HEADER] for e in journal} == {fleet_emulator.namespace}
    assert NAMESPACE.fullmatch(fleet_emulator.namespace)
    assert fleet_emulator.metadata == ((NAMESPACE_HEADER, fleet_emulator.namespace),)


def test_namespaces_do_not_see_each_other(fleet_emulator: FleetEmulator) -> None:
    other = fleet_emulator.in_namespace(f"{fleet_emulator.namespace}-other")
    other.admin.reset()
    other.admin.update_vehicle(SEED_VEHICLE, connectivity="CONNECTIVITY_STATE_OFFLINE")
    with other.admin.fault("GetVehicle", grpc.StatusCode.UNAVAILABLE, times=1):
        assert seed_vehicle(fleet_emulator).connectivity == ONLINE
        with pytest.raises(grpc.RpcError):
            seed_vehicle(other)
    assert seed_vehicle(other).connectivity == OFFLINE
    assert [e.code for e in other.admin.journal()] == [grpc.StatusCode.UNAVAILABLE.value[0], 0]
    assert [e.code for e in fleet_emulator.admin.journal()] == [0]


async def test_async_tests_use_channels_of_their_own_with_the_metadata(fleet_emulator: FleetEmulator) -> None:
    async with grpc.aio.insecure_channel(fleet_emulator.address) as channel:
        stub = v2_grpc.FleetStateServiceStub(channel)
        response = await stub.ListFleets(v2_pb.ListFleetsRequest(), metadata=fleet_emulator.metadata)
    assert [f.id for f in response.fleets] == ["hamburg", "hanover"]
    assert [e.method for e in fleet_emulator.admin.journal()] == [
        "/moia.fleet.state.v2.FleetStateService/ListFleets"
    ]


def test_update_vehicle_takes_fields_or_a_message_with_paths(fleet_emulator: FleetEmulator) -> None:
    admin = fleet_emulator.admin
    before = seed_vehicle(fleet_emulator).battery
    changed = admin.update_vehicle(SEED_VEHICLE, battery={"state_of_charge_percent": 12.5})
    assert (changed.vehicle.battery.state_of_charge_percent, changed.vehicle.battery.range_km) == (
        12.5,
        before.range_km,
    )
    assert [e.WhichOneof("change") for e in changed.events] == ["battery_changed"]
    locked = v2_pb.Vehicle(lock_state=v2_pb.LOCK_STATE_UNLOCKED, label="ignored: not in paths")
    unlocked = admin.update_vehicle(SEED_VEHICLE, locked, paths=["lock_state"]).vehicle
    assert (unlocked.lock_state, unlocked.label) == (v2_pb.LOCK_STATE_UNLOCKED, "429")


def test_published_events_reach_the_fleet_stream(fleet_emulator: FleetEmulator) -> None:
    start = fleet_emulator.v2.PollVehicleEvents(v2_pb.PollRequest(event_id=HAMBURG_EVENTS)).message_id
    published = fleet_emulator.admin.publish_event(
        vehicle_id=SEED_VEHICLE, lock_changed={"lock_state": "LOCK_STATE_UNLOCKED"}
    )
    polled = fleet_emulator.v2.PollVehicleEvents(
        v2_pb.PollRequest(event_id=HAMBURG_EVENTS, last_message_id=start)
    )
    assert [(e.id, e.lock_changed.lock_state) for e in polled.events] == [
        (published.event.id, v2_pb.LOCK_STATE_UNLOCKED)
    ]
    assert polled.message_id == published.message_id


def test_a_fault_acts_until_its_block_ends_with_the_details_given(fleet_emulator: FleetEmulator) -> None:
    retry = error_details_pb2.RetryInfo()
    retry.retry_delay.FromTimedelta(timedelta(seconds=2))
    request = v2_pb.ListFleetsRequest()
    with fleet_emulator.admin.fault(
        "ListFleets", grpc.StatusCode.UNAVAILABLE, message="down", details=[retry]
    ):
        for _ in range(2):
            with pytest.raises(grpc.RpcError) as caught:
                fleet_emulator.v2.ListFleets(request)
    assert isinstance(caught.value, grpc.Call)
    assert (caught.value.code(), caught.value.details()) == (grpc.StatusCode.UNAVAILABLE, "down")
    status = rpc_status.from_call(caught.value)
    assert any(d.Is(error_details_pb2.RetryInfo.DESCRIPTOR) for d in status.details)
    assert len(fleet_emulator.v2.ListFleets(request).fleets) == 2
    assert fleet_emulator.admin.stub.ListFaults(admin_pb.ListFaultsRequest()).faults == []


def test_faults_of_every_kind_are_created_and_wrong_ones_refused(fleet_emulator: FleetEmulator) -> None:
    admin = fleet_emulator.admin
    latency = admin.fault("GetVehicle", latency=timedelta(milliseconds=1), vehicle_id=SEED_VEHICLE)
    broken = admin.fault("StreamVehicleEvents", grpc.StatusCode.INTERNAL, break_after=1, fleet_id="hamburg")
    stalled = admin.fault("SubscribeToVehicleStates", stall_after=0, times=1)
    kinds = [r.WhichOneof("action") for r in admin.stub.ListFaults(admin_pb.ListFaultsRequest()).faults]
    assert kinds == ["latency", "break_stream", "stall_stream"]
    assert (latency.rule.vehicle_id, broken.rule.break_stream.after_messages, stalled.rule.times) == (
        SEED_VEHICLE,
        1,
        1,
    )
    stalled.delete()
    stalled.delete()  # gone already: fine
    assert admin.clear_faults() == 2
    for wrong in ({}, {"code": grpc.StatusCode.INTERNAL, "stall_after": 1}, {"break_after": 1}):
        with pytest.raises(ValueError, match="one action"):
            admin.fault("*", **wrong)


def test_the_journal_is_filtered_and_cleared(fleet_emulator: FleetEmulator) -> None:
    fleet_emulator.v2.ListFleets(v2_pb.ListFleetsRequest(), metadata=(("x-flow-id", "flow-1"),))
    with pytest.raises(grpc.RpcError):
        fleet_emulator.v1.GetVehicle(v1_pb.GetVehicleRequest(vehicle_id="not-a-uuid"))
    admin = fleet_emulator.admin
    assert [e.flow_id for e in admin.journal("ListFleets")] == ["flow-1"]
    assert [e.method for e in admin.journal(flow_id="flow-1")] == [
        "/moia.fleet.state.v2.FleetStateService/ListFleets"
    ]
    assert [e.version for e in admin.journal(code=grpc.StatusCode.INVALID_ARGUMENT)] == ["v1"]
    assert admin.clear_journal() == 2
    assert admin.journal() == []


def test_the_clock_is_set_advanced_and_made_real(fleet_emulator: FleetEmulator) -> None:
    clock = fleet_emulator.admin.clock
    start = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert clock.set(start) == start
    assert clock.advance(timedelta(minutes=90)) == start + timedelta(minutes=90)
    assert clock.now() == start + timedelta(minutes=90)
    assert abs(clock.real() - datetime.now(UTC)) < timedelta(seconds=5)
    assert not fleet_emulator.admin.stub.GetClock(admin_pb.GetClockRequest()).virtual


def test_policies_change_until_the_reset(fleet_emulator: FleetEmulator) -> None:
    admin = fleet_emulator.admin
    policies = admin.set_policies(unknown_values=True, wake_up_delay=(timedelta(0), timedelta(seconds=5)))
    assert (policies.unknown_values, policies.wake_up_delay_max.seconds) == (True, 5)
    vehicle = fleet_emulator.v2.GetVehicle(v2_pb.GetVehicleRequest(vehicle_id=SEED_VEHICLE)).vehicle
    assert vehicle.doors[-1].position == 99
    admin.reset()
    restored = admin.stub.GetPolicies(admin_pb.GetPoliciesRequest()).policies
    assert (restored.unknown_values, restored.wake_up_delay_max.seconds) == (False, 60)
    with pytest.raises(ValueError, match="at least one policy"):
        admin.set_policies()


def test_tokens_work_in_jwt_mode_and_the_report_names_careless_calls(fleet_emulator: FleetEmulator) -> None:
    admin = fleet_emulator.admin
    admin.set_policies(auth="jwt")
    token = admin.token("plugin-client", fleet_ids=["hamburg"])
    fleet = fleet_emulator.v1beta4.GetFleet(
        v1beta4_pb.GetFleetRequest(fleet_id="hamburg"), metadata=(("authorization", f"Bearer {token}"),)
    ).fleet
    assert fleet.id == "hamburg"
    with pytest.raises(grpc.RpcError) as caught:
        fleet_emulator.v2.GetFleet(v2_pb.GetFleetRequest(fleet_id="hamburg"))
    assert isinstance(caught.value, grpc.Call) and caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    findings = admin.report()["plugin-client"]
    assert [f.practice for f in findings] == ["DEPRECATED_VERSION_USED"]


@pytest.mark.parametrize("form", ["text", "path", "path as str"])
def test_scenarios_load_from_text_or_a_file(fleet_emulator: FleetEmulator, tmp_path: Path, form: str) -> None:
    path = tmp_path / "small.yaml"
    path.write_text(SMALL_SCENARIO)
    scenarios: dict[str, str | Path] = {"text": SMALL_SCENARIO, "path": path, "path as str": str(path)}
    loaded = fleet_emulator.admin.load_scenario(scenarios[form])
    assert (loaded.name, loaded.vehicle_count) == ("small", 3)
    assert [f.id for f in fleet_emulator.v2.ListFleets(v2_pb.ListFleetsRequest()).fleets] == ["kiel"]


def inner_run(pytester: pytest.Pytester, source: str, *args: str) -> pytest.RunResult:
    """Run ``source`` as the test module of an inner pytest session, in a subprocess."""
    pytester.makepyfile(test_inner=textwrap.dedent(source))
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=120)


RESET_BETWEEN_TESTS = f"""
    from datetime import UTC, datetime

    import grpc
    from fleet_emulator.testing import admin_pb, v2_pb

    SEED = "{SEED_VEHICLE}"
    SMALL = {SMALL_SCENARIO!r}

    def vehicle(fleet_emulator):
        return fleet_emulator.v2.GetVehicle(v2_pb.GetVehicleRequest(vehicle_id=SEED)).vehicle

    def fleets(fleet_emulator):
        return [f.id for f in fleet_emulator.v2.ListFleets(v2_pb.ListFleetsRequest()).fleets]

    def test_1_changes_state_faults_journal_and_clock(fleet_emulator):
        fleet_emulator.admin.update_vehicle(SEED, connectivity="CONNECTIVITY_STATE_OFFLINE")
        assert vehicle(fleet_emulator).connectivity == v2_pb.CONNECTIVITY_STATE_OFFLINE
        fleet_emulator.admin.fault("ListFleets", grpc.StatusCode.INTERNAL)
        fleet_emulator.admin.clock.set(datetime(2030, 1, 1, tzinfo=UTC))

    def test_2_sees_the_scenario_again(fleet_emulator):
        assert vehicle(fleet_emulator).connectivity == v2_pb.CONNECTIVITY_STATE_ONLINE
        assert fleets(fleet_emulator) == ["hamburg", "hanover"]
        assert [e.method.rsplit("/", 1)[1] for e in fleet_emulator.admin.journal()] == [
            "GetVehicle", "ListFleets"
        ]
        assert not fleet_emulator.admin.stub.GetClock(admin_pb.GetClockRequest()).virtual

    def test_3_loads_a_scenario(fleet_emulator):
        fleet_emulator.admin.load_scenario(SMALL)
        fleet_emulator.admin.reset()
        assert fleets(fleet_emulator) == ["kiel"]

    def test_4_sees_the_demo_again(fleet_emulator):
        assert fleets(fleet_emulator) == ["hamburg", "hanover"]
"""


def test_each_test_starts_from_the_scenario_with_real_time(pytester: pytest.Pytester) -> None:
    inner_run(pytester, RESET_BETWEEN_TESTS).assert_outcomes(passed=4)


REPORT_ADDRESS = f"""
    from pathlib import Path

    from fleet_emulator.testing import v2_pb

    def test_reports_where_it_runs(fleet_emulator):
        Path("seen.txt").write_text(f"{{fleet_emulator.address}} {{fleet_emulator.namespace}}")
        fleet_emulator.admin.update_vehicle("{SEED_VEHICLE}", connectivity="CONNECTIVITY_STATE_OFFLINE")
"""


def seen(pytester: pytest.Pytester) -> tuple[str, str]:
    address, namespace = (pytester.path / "seen.txt").read_text().split()
    return address, namespace


@pytest.fixture(scope="module")
def running_emulator() -> Iterator[str]:
    """An emulator started apart from the sessions under test, as docker-compose or CI would."""
    emulator = BackgroundEmulator()
    yield emulator.start()
    emulator.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize("given_by", ["option", "environment", "ini"])
def test_a_running_emulator_is_used_when_its_address_is_given(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, running_emulator: str, given_by: str
) -> None:
    args: list[str] = []
    if given_by == "option":
        monkeypatch.setenv(ADDRESS_ENV, f"127.0.0.1:{free_port()}")  # the option wins
        args = ["--fleet-emulator-address", running_emulator]
    elif given_by == "environment":
        monkeypatch.setenv(ADDRESS_ENV, running_emulator)
    else:
        monkeypatch.delenv(ADDRESS_ENV, raising=False)
        pytester.makeini(f"[pytest]\nfleet_emulator_address = {running_emulator}\n")
    inner_run(pytester, REPORT_ADDRESS, *args).assert_outcomes(passed=1)
    address, namespace = seen(pytester)
    assert address == running_emulator
    session = connect(running_emulator, namespace)
    try:
        assert seed_vehicle(session).connectivity == OFFLINE
    finally:
        session.close()


def test_without_an_address_an_emulator_runs_in_process_for_the_session(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ADDRESS_ENV, raising=False)
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw3")
    inner_run(pytester, REPORT_ADDRESS).assert_outcomes(passed=1)
    address, namespace = seen(pytester)
    assert address.startswith("127.0.0.1:")
    assert namespace.startswith("pytest-gw3-")
    with pytest.raises(ConnectionError):
        connect(address, timeout_s=0.5)  # stopped with its session


def test_an_address_where_nothing_answers_fails_the_tests_clearly(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("import fleet_emulator.testing\n\nfleet_emulator.testing.CONNECT_TIMEOUT_S = 0.5\n")
    address = f"127.0.0.1:{free_port()}"
    result = inner_run(pytester, REPORT_ADDRESS, "--fleet-emulator-address", address)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*no fleet emulator answers at {address}*--fleet-emulator-address*"])
