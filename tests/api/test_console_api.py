"""The web console's JSON API over real HTTP: the same servicers as gRPC, the same errors, the same guard.

Each test starts the emulator in this process with its console on a free port and calls it with an aiohttp
client, as the console's pages do, checking the effect through gRPC where the two must agree.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import aiohttp
import grpc
import pytest

from fleet_emulator._gen.emulator.admin.v1 import admin_pb2, admin_pb2_grpc
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as v2
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2_grpc
from fleet_emulator.domain.clock import EmulatorClock
from fleet_emulator.server import ADMIN_OFF, Emulator, Settings, StartupError
from tests.e2e.harness import free_port
from tests.waiting import eventually

START = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
Answer = dict[str, Any]


class Console:
    """A client of one emulator's console, and a gRPC channel to the same emulator."""

    def __init__(self, emulator: Emulator, http: aiohttp.ClientSession, channel: grpc.aio.Channel) -> None:
        self.emulator = emulator
        self.http = http
        self.url = f"http://127.0.0.1:{emulator.console_port}"
        self.admin = admin_pb2_grpc.AdminServiceStub(channel)
        self.api = fleet_state_pb2_grpc.FleetStateServiceStub(channel)

    async def call(self, service: str, method: str, request: object, **headers: str) -> Answer:
        async with self.http.post(
            f"{self.url}/api/call/{service}/{method}", json=request, headers=headers
        ) as response:
            assert response.status == 200
            answer: Answer = await response.json()
            return answer


@asynccontextmanager
async def console_of(**settings: Any) -> AsyncIterator[Console]:
    emulator = Emulator(
        Settings(host="127.0.0.1", port=0, console_port=0, grace_seconds=0.2, **settings),
        clock=EmulatorClock(START),
    )
    await emulator.start()
    try:
        async with (
            aiohttp.ClientSession() as http,
            grpc.aio.insecure_channel(f"127.0.0.1:{emulator.port}") as channel,
        ):
            yield Console(emulator, http, channel)
    finally:
        await emulator.stop()


@pytest.fixture
async def console() -> AsyncIterator[Console]:
    async with console_of() as made:
        yield made


def detail(answer: Answer, kind: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [d for d in answer["details"] if d["@type"].endswith(f"google.rpc.{kind}")]
    assert len(found) == 1, answer
    return found[0]


async def test_info_and_health(console: Console) -> None:
    async with console.http.get(f"{console.url}/api/info") as response:
        info = await response.json()
    assert info["namespaces"] == [""]  # the default namespace: no header
    assert info["tokenRequired"] is False
    assert info["adminEnabled"] is True
    assert info["grpcPort"] == console.emulator.port
    async with console.http.get(f"{console.url}/healthz") as response:
        assert response.status == 200
        assert await response.json() == {"status": "SERVING"}


async def test_index_and_assets_are_served(console: Console) -> None:
    async with console.http.get(f"{console.url}/") as response:
        assert response.status == 200
        page = await response.text()
    assert "<nav" in page
    async with console.http.get(f"{console.url}/static/app.js") as response:
        assert response.status == 200


async def test_reads_answer_what_grpc_answers(console: Console) -> None:
    answer = await console.call("v2", "ListFleets", {"page_size": 50})
    assert answer["code"] == "OK"
    fleets = await console.api.ListFleets(v2.ListFleetsRequest(page_size=50))
    assert [f["id"] for f in answer["response"]["fleets"]] == [f.id for f in fleets.fleets]
    assert [f["vehicle_count"] for f in answer["response"]["fleets"]] == [
        f.vehicle_count for f in fleets.fleets
    ]


async def test_a_refused_call_carries_the_rich_status(console: Console) -> None:
    missing = "00000000-0000-4000-8000-00000000abcd"
    answer = await console.call("v2", "GetVehicle", {"vehicle_id": missing}, **{"x-flow-id": "f-1"})
    assert (answer["code"], answer["codeNumber"]) == ("NOT_FOUND", 5)
    assert answer["flowId"] == "f-1"
    assert detail(answer, "ErrorInfo")["reason"] == "VEHICLE_NOT_FOUND"
    assert detail(answer, "ResourceInfo")["resource_name"] == missing
    assert missing in answer["message"]


async def test_steering_is_the_admin_service(console: Console) -> None:
    answer = await console.call("admin", "SetClock", {"time": "2030-01-02T03:04:05Z"})
    assert answer["code"] == "OK", answer
    clock = await console.admin.GetClock(admin_pb2.GetClockRequest())
    assert clock.now.ToJsonString() == "2030-01-02T03:04:05Z"
    assert clock.virtual
    advanced = await console.call("admin", "AdvanceClock", {"by": "90s"})
    assert advanced["response"]["now"] == "2030-01-02T03:05:35Z"


@pytest.mark.parametrize(
    ("body", "reason", "field"),
    [
        (b"{not json", "REQUEST_MALFORMED", "request"),
        (b'{"no_such_field": 1}', "REQUEST_MALFORMED", "request"),
        (b'{"time": "0001-01-01T00:00:00Z", "x": 1}', "REQUEST_MALFORMED", "request"),
        (b'{"time": "1970-01-01T00:00:00Z"}', "FIELD_INVALID", "time"),
    ],
)
async def test_bad_requests_get_invalid_argument(
    console: Console, body: bytes, reason: str, field: str
) -> None:
    async with console.http.post(
        f"{console.url}/api/call/admin/SetClock", data=body, headers={"Content-Type": "application/json"}
    ) as response:
        answer = await response.json()
    assert answer["code"] == "INVALID_ARGUMENT", answer
    assert detail(answer, "ErrorInfo")["reason"] == reason
    assert [v["field"] for v in detail(answer, "BadRequest")["field_violations"]] == [field]


async def test_what_is_not_a_call_gets_an_http_error(console: Console) -> None:
    post = console.http.post
    async with post(f"{console.url}/api/call/admin/GetClock", data="{}") as response:
        assert response.status == 415  # not JSON: also what a cross-site form could send
    async with post(f"{console.url}/api/call/admin/NoSuchMethod", json={}) as response:
        assert response.status == 404
    async with post(f"{console.url}/api/call/v1/ListFleets", json={}) as response:
        assert response.status == 404
    async with post(f"{console.url}/api/stream/v2/ListFleets", json={}) as response:
        assert response.status == 404
    async with post(f"{console.url}/api/call/v2/StreamVehicleEvents", json={}) as response:
        assert response.status == 404


async def test_namespaces_are_picked_by_header(console: Console) -> None:
    fleet = {"fleet": {"id": "console-fleet", "display_name": "C", "city": "Hamburg", "time_zone": "UTC"}}
    made = await console.call("admin", "CreateFleet", fleet, **{"x-emulator-namespace": "team-a"})
    assert made["code"] == "OK", made
    metadata = (("x-emulator-namespace", "team-a"),)
    seen = await console.api.GetFleet(v2.GetFleetRequest(fleet_id="console-fleet"), metadata=metadata)
    assert seen.fleet.city == "Hamburg"
    elsewhere = await console.call("v2", "GetFleet", {"fleet_id": "console-fleet"})
    assert elsewhere["code"] == "NOT_FOUND"
    async with console.http.get(f"{console.url}/api/info") as response:
        assert (await response.json())["namespaces"] == ["", "team-a"]


async def test_the_admin_token_guards_the_console() -> None:
    async with console_of(admin_token="s3cret") as console:
        missing = await console.call("v2", "ListFleets", {})
        assert missing["code"] == "UNAUTHENTICATED"
        assert detail(missing, "ErrorInfo")["reason"] == "ADMIN_TOKEN_MISSING"
        wrong = await console.call("admin", "GetClock", {}, Authorization="Bearer nope")
        assert detail(wrong, "ErrorInfo")["reason"] == "ADMIN_TOKEN_INVALID"
        right = await console.call("admin", "GetClock", {}, Authorization="Bearer s3cret")
        assert right["code"] == "OK"
        async with console.http.get(f"{console.url}/api/info") as response:
            assert (await response.json())["tokenRequired"] is True


async def test_without_the_admin_service_the_console_only_looks() -> None:
    async with console_of(admin_port=ADMIN_OFF) as console:
        refused = await console.call("admin", "GetClock", {})
        assert refused["code"] == "PERMISSION_DENIED"
        assert detail(refused, "ErrorInfo")["reason"] == "ADMIN_SERVICE_OFF"
        assert (await console.call("v2", "ListFleets", {}))["code"] == "OK"


async def lines(response: aiohttp.ClientResponse) -> AsyncIterator[Answer]:
    async for line in response.content:
        yield json.loads(line)


async def first_fleet(console: Console) -> v2.Fleet:
    return (await console.api.ListFleets(v2.ListFleetsRequest())).fleets[0]


async def test_an_event_stream_reaches_the_console(console: Console) -> None:
    fleet = await first_fleet(console)
    vehicle = (await console.api.ListVehicles(v2.ListVehiclesRequest(fleet_id=fleet.id))).vehicles[0]
    async with console.http.post(
        f"{console.url}/api/stream/v2/StreamVehicleEvents", json={"event_id": fleet.vehicle_events_id}
    ) as response:
        assert response.headers["Content-Type"] == "application/x-ndjson"
        received = lines(response)
        opening = await anext(received)
        assert opening["message"]["message_id"]
        change = v2.MissionProgressed(mission_id="m-1", stage=v2.MISSION_STAGE_ARRIVED_AT_PICKUP)
        event = v2.Event(vehicle_id=vehicle.id, mission_progressed=change)
        published = await console.admin.PublishEvent(admin_pb2.PublishEventRequest(event=event))
        message = (await anext(received))["message"]
        assert message["message_id"] == published.message_id
        assert message["event"]["vehicle_id"] == vehicle.id
        assert message["event"]["mission_progressed"]["stage"] == "MISSION_STAGE_ARRIVED_AT_PICKUP"


async def test_resuming_from_an_unknown_id_ends_with_out_of_range(console: Console) -> None:
    fleet = await first_fleet(console)
    request = {"event_id": fleet.vehicle_events_id, "last_message_id": "1-0"}
    async with console.http.post(
        f"{console.url}/api/stream/v2/StreamVehicleEvents", json=request
    ) as response:
        answers = [a async for a in lines(response)]
    assert len(answers) == 1
    status = answers[0]["status"]
    assert status["code"] == "OUT_OF_RANGE", status
    assert detail(status, "ErrorInfo")["reason"]


async def test_a_browser_that_goes_away_ends_its_stream(console: Console) -> None:
    fleet = await first_fleet(console)
    namespace = console.emulator.namespaces.default
    response = await console.http.post(
        f"{console.url}/api/stream/v2/StreamVehicleEvents", json={"event_id": fleet.vehicle_events_id}
    )
    assert "message" in await anext(lines(response))
    assert len(namespace.streams) == 1
    response.close()  # the page is left: the connection goes, with no event to write into it

    async def ended() -> bool:
        return not namespace.streams

    await eventually(ended, "the console's stream ended with its connection")


async def test_stopping_ends_an_open_console_stream(console: Console) -> None:
    fleet = await first_fleet(console)
    async with console.http.post(
        f"{console.url}/api/stream/v2/SubscribeToVehicleStates", json={"fleet_id": fleet.id}
    ) as response:
        received = lines(response)
        assert "message" in await anext(received)
        stopping = asyncio.create_task(console.emulator.stop())
        rest = [a async for a in received]
        await stopping
    statuses = [a["status"] for a in rest if "status" in a]
    assert [s["code"] for s in statuses] == ["UNAVAILABLE"]
    assert detail(statuses[0], "ErrorInfo")["reason"] == "EMULATOR_STOPPING"


async def test_a_console_port_in_use_is_a_startup_error() -> None:
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        emulator = Emulator(Settings(host="127.0.0.1", port=0, console_port=port, grace_seconds=0.2))
        with pytest.raises(StartupError) as raised:
            await emulator.start()
        await emulator.stop()
    assert raised.value.setting == "--console-port"
    assert str(port) in str(raised.value)
