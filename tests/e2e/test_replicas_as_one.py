"""Three ``fleet-emulator serve`` processes on one Redis behave exactly as one process.

Each scenario runs twice: through one real process (the in-memory backend), and through three real
replicas on one real Redis, its calls going to the replicas in turn. What a client observes (codes, times,
headers, results, events) must be the same, and each test also checks that it is what one process does.
Every scenario works in a namespace of its own; the clock is shared by all namespaces, so a scenario that
sets it goes back to real time at its end.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2

from fleet_emulator._gen.emulator.admin.v1 import admin_pb2 as adm
from fleet_emulator._gen.emulator.admin.v1 import admin_pb2_grpc as admin_grpc
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as pb
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2_grpc as pb_grpc
from tests.api.commanding import events_since, position
from tests.e2e.harness import EmulatorProcess, free_port, serve_command, start
from tests.redis_server import RedisServer
from tests.steering import HAMBURG_EVENTS, SEED_VEHICLE

pytestmark = pytest.mark.e2e

T0 = datetime(2031, 3, 1, 8, 0, tzinfo=UTC)
ASLEEP = pb.CONNECTIVITY_STATE_ASLEEP
ONLINE = pb.CONNECTIVITY_STATE_ONLINE
_namespaces = itertools.count(1)


@dataclass(frozen=True)
class Client:
    """One replica, seen through the namespace of a scenario."""

    api: pb_grpc.FleetStateServiceAsyncStub
    admin: admin_grpc.AdminServiceAsyncStub
    metadata: tuple[tuple[str, str], ...]

    @property
    def namespace(self) -> str:
        return dict(self.metadata)["x-emulator-namespace"]


Scenario = Callable[[Callable[[], Client]], Awaitable[list[Any]]]


@contextmanager
def _processes(count: int, tmp: Path, *backend: str) -> Iterator[list[EmulatorProcess]]:
    tmp.mkdir(exist_ok=True)
    with ExitStack() as stack:
        started = []
        for n in range(count):
            port = free_port()
            command = serve_command("--host", "127.0.0.1", "--port", str(port), *backend)
            process = start(command, port, tmp / f"emulator-{n}.log")
            stack.callback(process.terminate)
            started.append(process)
        for process in started:
            process.wait_ready()
        yield started


@pytest.fixture(scope="module")
def one_and_three(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[str], list[str]]]:
    """The address of one process on memory, and those of three replicas on one Redis."""
    tmp = tmp_path_factory.mktemp("replicas-as-one")
    redis = RedisServer(tmp_path_factory.mktemp("redis"))
    redis.start()
    try:
        redis_backend = ("--backend", "redis", "--redis-url", redis.url)
        with (
            _processes(1, tmp / "one", "--backend", "memory") as one,
            _processes(3, tmp, *redis_backend) as three,
        ):
            yield [p.address for p in one], [p.address for p in three]
    finally:
        redis.stop()


async def observe(addresses: list[str], scenario: Scenario) -> list[Any]:
    """Run a scenario in a new namespace, its calls going to the addresses in turn."""
    namespace = f"as-one-{next(_namespaces)}"
    async with AsyncExitStack() as stack:
        clients = []
        for address in addresses:
            channel = await stack.enter_async_context(grpc.aio.insecure_channel(address))
            metadata = (("x-emulator-namespace", namespace),)
            clients.append(
                Client(pb_grpc.FleetStateServiceStub(channel), admin_grpc.AdminServiceStub(channel), metadata)
            )
        turns = itertools.cycle(clients)
        try:
            return await scenario(lambda: next(turns))
        finally:
            await clients[0].admin.UseRealClock(adm.UseRealClockRequest())


async def same_through_one_and_three(
    one_and_three: tuple[list[str], list[str]], scenario: Scenario
) -> list[Any]:
    one, three = one_and_three
    alone = await observe(one, scenario)
    assert await observe(three, scenario) == alone
    return alone


async def code_of(call: Awaitable[Any]) -> str:
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error.code().name
    return "OK"


async def get_fleet(client: Client) -> str:
    """The code of a GetFleet of the hamburg fleet."""
    return await code_of(
        client.api.GetFleet(pb.GetFleetRequest(fleet_id="hamburg"), metadata=client.metadata)
    )


def at(when: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(when)
    return stamp


def by(delta: timedelta) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    duration.FromTimedelta(delta)
    return duration


async def clock_of(client: Client) -> tuple[str, bool]:
    clock = await client.admin.GetClock(adm.GetClockRequest(), metadata=client.metadata)
    return clock.now.ToJsonString(), clock.virtual


async def test_the_clock_set_through_one_replica_is_every_replicas(one_and_three: Any) -> None:
    async def scenario(turn: Callable[[], Client]) -> list[Any]:
        seen: list[Any] = []
        client = turn()
        await client.admin.SetClock(adm.SetClockRequest(time=at(T0)), metadata=client.metadata)
        seen += [await clock_of(turn()), await clock_of(turn())]
        client = turn()
        page = await client.api.ListVehicles(
            pb.ListVehiclesRequest(fleet_id="hamburg", page_size=5), metadata=client.metadata
        )
        client = turn()
        await client.admin.AdvanceClock(
            adm.AdvanceClockRequest(by=by(timedelta(minutes=59))), metadata=client.metadata
        )
        seen.append(await clock_of(turn()))
        client = turn()
        request = pb.ListVehiclesRequest(fleet_id="hamburg", page_size=5, page_token=page.next_page_token)
        seen.append(await code_of(client.api.ListVehicles(request, metadata=client.metadata)))
        client = turn()
        await client.admin.AdvanceClock(
            adm.AdvanceClockRequest(by=by(timedelta(minutes=2))), metadata=client.metadata
        )
        client = turn()
        seen.append(await code_of(client.api.ListVehicles(request, metadata=client.metadata)))
        client = turn()
        await client.admin.UseRealClock(adm.UseRealClockRequest(), metadata=client.metadata)
        seen.append((await clock_of(turn()))[1])
        return seen

    seen = await same_through_one_and_three(one_and_three, scenario)
    assert seen == [
        ("2031-03-01T08:00:00Z", True),
        ("2031-03-01T08:00:00Z", True),
        ("2031-03-01T08:59:00Z", True),
        "OK",
        "NOT_FOUND",  # the page token lived one hour of the shared clock
        False,
    ]


async def test_a_fault_rule_acts_on_exactly_its_calls_across_replicas(one_and_three: Any) -> None:
    async def scenario(turn: Callable[[], Client]) -> list[Any]:
        client = turn()
        fail = adm.FailCall(code=14, message="maintenance")
        await client.admin.CreateFault(
            adm.CreateFaultRequest(fault=adm.Fault(method="GetVehicle", times=2, fail=fail)),
            metadata=client.metadata,
        )
        codes = []
        for _ in range(5):
            client = turn()
            request = pb.GetVehicleRequest(vehicle_id=SEED_VEHICLE)
            codes.append(await code_of(client.api.GetVehicle(request, metadata=client.metadata)))
        client = turn()
        drawn = adm.Fault(method="GetFleet", probability=0.5, seed=42, fail=fail)
        await client.admin.CreateFault(adm.CreateFaultRequest(fault=drawn), metadata=client.metadata)
        for _ in range(16):
            client = turn()
            codes.append(await get_fleet(client))
        client = turn()
        rules = (await client.admin.ListFaults(adm.ListFaultsRequest(), metadata=client.metadata)).faults
        return [codes, [(r.method, r.hits) for r in rules]]

    codes, rules = await same_through_one_and_three(one_and_three, scenario)
    assert codes[:5] == ["UNAVAILABLE", "UNAVAILABLE", "OK", "OK", "OK"]
    assert 0 < codes[5:].count("UNAVAILABLE") < 16
    assert rules == [("GetFleet", codes[5:].count("UNAVAILABLE"))]


async def test_rate_limit_buckets_count_calls_through_every_replica(one_and_three: Any) -> None:
    async def scenario(turn: Callable[[], Client]) -> list[Any]:
        client = turn()
        await client.admin.SetClock(adm.SetClockRequest(time=at(T0)), metadata=client.metadata)
        rule = adm.RateLimit(method="GetFleet", requests=1, period=adm.RATE_PERIOD_SECOND, burst=2)
        policies = adm.Policies(rate_limits=[rule])
        mask = field_mask_pb2.FieldMask(paths=["rate_limits"])
        client = turn()
        await client.admin.UpdatePolicies(
            adm.UpdatePoliciesRequest(policies=policies, update_mask=mask), metadata=client.metadata
        )
        seen = []
        for step in range(5):
            if step == 4:
                client = turn()
                await client.admin.AdvanceClock(
                    adm.AdvanceClockRequest(by=by(timedelta(seconds=1))), metadata=client.metadata
                )
            client = turn()
            call = client.api.GetFleet(pb.GetFleetRequest(fleet_id="hamburg"), metadata=client.metadata)
            code = await code_of(call)
            headers = dict(await call.initial_metadata() or ())
            seen.append((code, headers.get("ratelimit-remaining")))
        return seen

    seen = await same_through_one_and_three(one_and_three, scenario)
    assert seen == [("OK", "2"), ("OK", "1"), ("OK", "0"), ("RESOURCE_EXHAUSTED", None), ("OK", "0")]


async def test_policies_set_through_one_replica_apply_on_all(one_and_three: Any) -> None:
    async def scenario(turn: Callable[[], Client]) -> list[Any]:
        client = turn()
        policies = adm.Policies(auth_mode=adm.AUTH_MODE_ANY)
        mask = field_mask_pb2.FieldMask(paths=["auth_mode"])
        await client.admin.UpdatePolicies(
            adm.UpdatePoliciesRequest(policies=policies, update_mask=mask), metadata=client.metadata
        )
        seen: list[Any] = []
        for _ in range(3):
            client = turn()
            seen.append(await get_fleet(client))
        client = turn()
        seen.append(
            (
                await client.admin.GetPolicies(adm.GetPoliciesRequest(), metadata=client.metadata)
            ).policies.auth_mode
        )
        client = turn()
        await client.admin.ResetEmulator(adm.ResetEmulatorRequest(), metadata=client.metadata)
        client = turn()
        seen.append(await get_fleet(client))
        return seen

    seen = await same_through_one_and_three(one_and_three, scenario)
    assert seen == ["UNAUTHENTICATED"] * 3 + [adm.AUTH_MODE_ANY, "OK"]


async def test_a_vehicle_woken_through_one_replica_comes_online_on_a_clock_moved_through_another(
    one_and_three: Any,
) -> None:
    async def scenario(turn: Callable[[], Client]) -> list[Any]:
        client = turn()
        await client.admin.SetClock(adm.SetClockRequest(time=at(T0)), metadata=client.metadata)
        asleep = pb.Vehicle(id=SEED_VEHICLE, connectivity=ASLEEP)
        mask = field_mask_pb2.FieldMask(paths=["connectivity"])
        await client.admin.UpdateVehicle(
            adm.UpdateVehicleRequest(vehicle=asleep, update_mask=mask), metadata=client.metadata
        )
        since = await position(client.api, client.namespace)
        client = turn()
        woken = await client.api.WakeUpVehicle(
            pb.WakeUpVehicleRequest(vehicle_id=SEED_VEHICLE), metadata=client.metadata
        )
        client = turn()
        await client.admin.AdvanceClock(
            adm.AdvanceClockRequest(by=by(timedelta(minutes=1))), metadata=client.metadata
        )
        client = turn()
        events = await events_since(client.api, since, client.namespace)
        return [woken.vehicle.connectivity, [e.connectivity_changed.current for e in events]]

    seen = await same_through_one_and_three(one_and_three, scenario)
    assert seen == [ASLEEP, [ONLINE]]


async def test_of_updates_racing_with_one_etag_one_wins(one_and_three: Any) -> None:
    async def scenario(turn: Callable[[], Client]) -> list[Any]:
        outcomes = []
        for round_ in range(5):
            client = turn()
            read = await client.api.GetVehicle(
                pb.GetVehicleRequest(vehicle_id=SEED_VEHICLE), metadata=client.metadata
            )
            racing = []
            for n in range(3):
                client = turn()
                vehicle = pb.Vehicle(id=SEED_VEHICLE, etag=read.vehicle.etag, label=f"round {round_} by {n}")
                request = pb.UpdateVehicleRequest(
                    vehicle=vehicle, update_mask=field_mask_pb2.FieldMask(paths=["label"])
                )
                racing.append(code_of(client.api.UpdateVehicle(request, metadata=client.metadata)))
            outcomes.append(sorted(await asyncio.gather(*racing)))
        return outcomes

    seen = await same_through_one_and_three(one_and_three, scenario)
    assert seen == [["ABORTED", "ABORTED", "OK"]] * 5


async def test_of_commands_racing_with_one_idempotency_key_one_runs(one_and_three: Any) -> None:
    async def scenario(turn: Callable[[], Client]) -> list[Any]:
        client = turn()
        since = await position(client.api, client.namespace)
        results = []
        for key in ("first", "second", "third"):
            racing = []
            for _ in range(3):
                client = turn()
                honk = pb.HonkHornRequest(vehicle_id=SEED_VEHICLE, idempotency_key=key)
                racing.append(client.api.HonkHorn(honk, metadata=client.metadata))
            answers = await asyncio.gather(*racing)
            results.append(len({a.result.command_id for a in answers}))
        client = turn()
        events = await events_since(client.api, since, client.namespace)
        counts = [e.command_executed.result.execution_count for e in events if e.HasField("command_executed")]
        return [results, counts]

    seen = await same_through_one_and_three(one_and_three, scenario)
    assert seen == [[1, 1, 1], [1, 2, 3]]


async def test_the_journal_and_the_client_report_hold_the_calls_of_every_replica(one_and_three: Any) -> None:
    async def scenario(turn: Callable[[], Client]) -> list[Any]:
        for n in range(6):
            client = turn()
            metadata = (*client.metadata, ("x-flow-id", f"call-{n}"))
            if n % 2:
                await client.api.GetFleet(pb.GetFleetRequest(fleet_id="hamburg"), metadata=metadata)
            else:
                await code_of(
                    client.api.GetVehicle(pb.GetVehicleRequest(vehicle_id="nope"), metadata=metadata)
                )
        client = turn()
        journal = await client.admin.ListJournalEntries(
            adm.ListJournalEntriesRequest(), metadata=client.metadata
        )
        entries = [(e.sequence, e.method.rsplit("/", 1)[-1], e.flow_id, e.code) for e in journal.entries]
        client = turn()
        after = adm.ListJournalEntriesRequest(after_sequence=journal.entries[3].sequence, code=3)
        later = await client.admin.ListJournalEntries(after, metadata=client.metadata)
        for _ in range(3):  # back to back, far more often than the polling interval allows
            client = turn()
            await position(client.api, client.namespace)
        client = turn()
        report = await client.admin.GetClientReport(adm.GetClientReportRequest(), metadata=client.metadata)
        found = [(c.client, [(f.practice, len(f.calls)) for f in c.findings]) for c in report.clients]
        return [entries, [e.flow_id for e in later.entries], found]

    entries, later, report = await same_through_one_and_three(one_and_three, scenario)
    assert entries == [
        (n + 1, "GetFleet" if n % 2 else "GetVehicle", f"call-{n}", 0 if n % 2 else 3) for n in range(6)
    ]
    assert later == ["call-4"]
    [(client, [(practice, calls)])] = report
    assert (client, practice) == ("127.0.0.1", "POLLING_TOO_OFTEN") and calls >= 2


async def test_a_namespace_deleted_through_one_replica_cuts_off_its_streams_on_another(
    one_and_three: Any,
) -> None:
    async def scenario(turn: Callable[[], Client]) -> list[Any]:
        client = turn()
        namespace = client.namespace
        stream = client.api.StreamVehicleEvents(
            pb.StreamRequest(event_id=HAMBURG_EVENTS), metadata=client.metadata
        )
        await stream.read()  # the position: the stream runs
        client = turn()
        deleted = await client.admin.DeleteNamespace(adm.DeleteNamespaceRequest(namespace=namespace))
        try:
            await asyncio.wait_for(stream.read(), 10)
            ended = "OK"
        except grpc.aio.AioRpcError as error:
            ended = f"{error.code().name} {error.details()}"
        client = turn()
        fleets = await client.api.ListFleets(pb.ListFleetsRequest(), metadata=client.metadata)
        return [deleted.existed, ended, len(fleets.fleets) > 0]

    seen = await same_through_one_and_three(one_and_three, scenario)
    assert seen[0] is True and seen[2] is True
    assert seen[1].startswith("UNAVAILABLE the namespace was deleted")


async def test_a_publish_retried_through_another_replica_is_not_published_again(one_and_three: Any) -> None:
    async def scenario(turn: Callable[[], Client]) -> list[Any]:
        client = turn()
        since = await position(client.api, client.namespace)
        event = pb.Event(
            id="publisher-7",
            vehicle_id=SEED_VEHICLE,
            lock_changed=pb.LockChanged(lock_state=pb.LOCK_STATE_LOCKED),
        )
        answers = []
        for _ in range(3):
            client = turn()
            published = await client.admin.PublishEvent(
                adm.PublishEventRequest(event=event), metadata=client.metadata
            )
            answers.append((published.message_id, published.event.publish_time.ToJsonString()))
        client = turn()
        events = await events_since(client.api, since, client.namespace)
        return [len(set(answers)), [e.id for e in events]]

    seen = await same_through_one_and_three(one_and_three, scenario)
    assert seen == [1, ["publisher-7"]]


async def test_the_namespace_limit_counts_the_namespaces_of_every_replica(tmp_path: Path) -> None:
    """With room for one namespace besides the default one, a second is refused, whichever replica each
    call goes to; once the first is deleted there is room again."""

    async def scenario(addresses: list[str]) -> list[str]:
        async with AsyncExitStack() as stack:
            channels = [await stack.enter_async_context(grpc.aio.insecure_channel(a)) for a in addresses]
            turns = itertools.cycle(channels)

            async def fleets_in(namespace: str) -> str:
                api = pb_grpc.FleetStateServiceStub(next(turns))
                call = api.ListFleets(pb.ListFleetsRequest(), metadata=(("x-emulator-namespace", namespace),))
                return await code_of(call)

            seen = [await fleets_in("first"), await fleets_in("second"), await fleets_in("first")]
            admin = admin_grpc.AdminServiceStub(next(turns))
            await admin.DeleteNamespace(adm.DeleteNamespaceRequest(namespace="first"))
            return [*seen, await fleets_in("second")]

    redis = RedisServer(tmp_path / "redis")
    (tmp_path / "redis").mkdir()
    redis.start()
    try:
        limited = ("--max-namespaces", "1")
        with _processes(1, tmp_path / "one", "--backend", "memory", *limited) as one:
            alone = await scenario([p.address for p in one])
        backend = ("--backend", "redis", "--redis-url", redis.url, *limited)
        with _processes(2, tmp_path / "two", *backend) as two:
            assert await scenario([p.address for p in two]) == alone
    finally:
        redis.stop()
    assert alone == ["OK", "RESOURCE_EXHAUSTED", "OK", "OK"]


async def test_a_reset_through_any_replica_goes_back_to_the_scenario_loaded_through_another(
    one_and_three: Any,
) -> None:
    async def scenario(turn: Callable[[], Client]) -> list[Any]:
        client = turn()
        small = "name: small\nfleets:\n  - id: kiel\n    generate: {count: 3}\n"
        await client.admin.LoadScenario(adm.LoadScenarioRequest(yaml=small), metadata=client.metadata)
        client = turn()
        await client.admin.DeleteFleet(adm.DeleteFleetRequest(fleet_id="kiel"), metadata=client.metadata)
        client = turn()
        reset = await client.admin.ResetEmulator(adm.ResetEmulatorRequest(), metadata=client.metadata)
        client = turn()
        fleets = (await client.api.ListFleets(pb.ListFleetsRequest(), metadata=client.metadata)).fleets
        return [(reset.fleet_count, reset.vehicle_count), [f.id for f in fleets]]

    seen = await same_through_one_and_three(one_and_three, scenario)
    assert seen == [(1, 3), ["kiel"]]
