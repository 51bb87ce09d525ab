"""The poor-connection fault (seed 000: a time-out although the command may have run), on both backends.

A rule with ``poor_connection`` makes a command fail with DEADLINE_EXCEEDED (``POOR_CONNECTION``) or
UNAVAILABLE (``CONNECTION_LOST``, with a RetryInfo) after it ran or without running it; the tests tell the
two apart by what the vehicle did (counts, events, lock state), as a client must, and read the journal.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.rpc import error_details_pb2

from fleet_emulator._gen.emulator.admin.v1 import admin_pb2 as adm
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as pb
from tests.api.commanding import bad_fields, events_since, failure, headers, position, reason
from tests.api.conftest import Target
from tests.rich_errors import details_of, rich_status
from tests.steering import SEED_VEHICLE

DEADLINE_EXCEEDED, UNAVAILABLE = 4, 14


async def poor_connection(target: Target, method: str, executed: bool, code: int = 0) -> adm.Fault:
    fault = adm.Fault(
        method=method, times=1, poor_connection=adm.PoorConnection(executed=executed, code=code)
    )
    return (await target.admin.CreateFault(adm.CreateFaultRequest(fault=fault))).fault


async def honk(target: Target, key: str = "", flow_id: str = "") -> Any:
    request = pb.HonkHornRequest(vehicle_id=SEED_VEHICLE, idempotency_key=key)
    return await target.api.HonkHorn(request, metadata=headers(flow_id=flow_id))


async def journaled(target: Target, flow_id: str) -> adm.JournalEntry:
    found = await target.admin.ListJournalEntries(adm.ListJournalEntriesRequest(flow_id=flow_id))
    [entry] = found.entries
    return entry


async def test_an_executed_command_times_out_although_it_ran(target: Target) -> None:
    rule = await poor_connection(target, "HonkHorn", executed=True)
    assert rule.poor_connection == adm.PoorConnection(executed=True, code=DEADLINE_EXCEEDED)
    since = await position(target.api)
    error = await failure(honk(target, flow_id="lost-answer"))
    assert reason(error) == (grpc.StatusCode.DEADLINE_EXCEEDED, "POOR_CONNECTION")
    [event] = await events_since(target.api, since)
    assert (event.command_executed.result.execution_count, event.flow_id) == (1, "lost-answer")
    assert (await honk(target)).result.execution_count == 2
    entry = await journaled(target, "lost-answer")
    assert (entry.code, entry.reason) == (DEADLINE_EXCEEDED, "POOR_CONNECTION")


async def test_a_command_that_did_not_run_is_unavailable_with_a_retry_delay(target: Target) -> None:
    await poor_connection(target, "HonkHorn", executed=False, code=UNAVAILABLE)
    since = await position(target.api)
    error = await failure(honk(target, flow_id="never-sent"))
    assert reason(error) == (grpc.StatusCode.UNAVAILABLE, "CONNECTION_LOST")
    assert details_of(rich_status(error), error_details_pb2.RetryInfo)
    assert await events_since(target.api, since) == []
    assert (await honk(target)).result.execution_count == 1
    entry = await journaled(target, "never-sent")
    assert (entry.code, entry.reason) == (UNAVAILABLE, "CONNECTION_LOST")


async def test_a_lock_that_ran_changed_the_vehicle_and_one_that_did_not_left_it(target: Target) -> None:
    async def lock_state() -> int:
        state: int = (await target.api.GetVehicle(get)).vehicle.lock_state
        return state

    get = pb.GetVehicleRequest(vehicle_id=SEED_VEHICLE)
    assert await lock_state() == pb.LOCK_STATE_UNLOCKED
    await poor_connection(target, "LockVehicle", executed=True)
    await failure(target.api.LockVehicle(pb.LockVehicleRequest(vehicle_id=SEED_VEHICLE)))
    assert await lock_state() == pb.LOCK_STATE_LOCKED
    await poor_connection(target, "UnlockVehicle", executed=False)
    await failure(target.api.UnlockVehicle(pb.UnlockVehicleRequest(vehicle_id=SEED_VEHICLE)))
    assert await lock_state() == pb.LOCK_STATE_LOCKED


async def test_the_idempotency_key_makes_the_retry_safe(target: Target) -> None:
    await poor_connection(target, "HonkHorn", executed=True)
    await failure(honk(target, key="retry-me"))
    retried = await honk(target, key="retry-me")
    assert retried.result.execution_count == 1
    assert (await honk(target)).result.execution_count == 2


async def test_other_rpcs_are_left_alone(target: Target) -> None:
    rule = await poor_connection(target, "*", executed=False)
    await target.api.GetVehicle(pb.GetVehicleRequest(vehicle_id=SEED_VEHICLE))
    [kept] = (await target.admin.ListFaults(adm.ListFaultsRequest())).faults
    assert (kept.id, kept.hits) == (rule.id, 0)
    assert reason(await failure(honk(target)))[1] == "POOR_CONNECTION"


async def test_a_rule_that_cannot_work_is_refused(target: Target) -> None:
    fault = adm.Fault(method="GetVehicle", poor_connection=adm.PoorConnection(executed=True, code=5))
    error = await failure(target.admin.CreateFault(adm.CreateFaultRequest(fault=fault)))
    assert reason(error) == (grpc.StatusCode.INVALID_ARGUMENT, "FIELD_INVALID")
    assert bad_fields(error) == ["fault.poor_connection.code", "fault.method"]
