"""How namespaces end, on both backends: DeleteNamespace, dropping idle ones, and the limit on how many.

A deleted namespace loses its state, streams, faults and journal, its open streams end with UNAVAILABLE
``NAMESPACE_DELETED``, and the next call naming it starts it afresh from the scenario. An idle namespace
(no call running, none for longer than the idle time-out) is dropped by ``Namespaces.drop_idle``, which the
emulator runs periodically (called directly here, with its clock moved, so that no test waits). Beyond
``max_namespaces`` a new one is ``RESOURCE_EXHAUSTED``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2

from fleet_emulator._gen.emulator.admin.v1 import admin_pb2 as adm
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as pb
from tests.api.conftest import Target
from tests.rich_errors import details_of, error_info, rich_status
from tests.steering import HAMBURG_EVENTS, SEED_VEHICLE, next_message, set_soc


def ns(name: str) -> tuple[tuple[str, str], ...]:
    return (("x-emulator-namespace", name),)


async def failure(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def soc_of(target: Target, namespace: str) -> float:
    vehicle = await target.api.GetVehicle(
        pb.GetVehicleRequest(vehicle_id=SEED_VEHICLE), metadata=ns(namespace)
    )
    return vehicle.vehicle.battery.state_of_charge_percent


async def test_a_deleted_namespace_is_gone_and_starts_afresh(target: Target) -> None:
    scenario_soc = await soc_of(target, "doomed")
    await set_soc(target.admin, 7, namespace="doomed")
    await target.admin.CreateFault(
        adm.CreateFaultRequest(fault=adm.Fault(method="ListFleets", fail=adm.FailCall(code=14))),
        metadata=ns("doomed"),
    )
    stream = target.api.StreamVehicleEvents(pb.StreamRequest(event_id=HAMBURG_EVENTS), metadata=ns("doomed"))
    await next_message(stream)

    deleted = await target.admin.DeleteNamespace(adm.DeleteNamespaceRequest(namespace="doomed"))

    assert deleted.existed
    cut_off = await failure(next_message(stream))
    assert (cut_off.code(), error_info(cut_off).reason) == (grpc.StatusCode.UNAVAILABLE, "NAMESPACE_DELETED")
    assert await soc_of(target, "doomed") == scenario_soc, "back to the scenario"
    assert (await target.api.ListFleets(pb.ListFleetsRequest(), metadata=ns("doomed"))).fleets, (
        "no fault left"
    )
    journal = await target.admin.ListJournalEntries(adm.ListJournalEntriesRequest(), metadata=ns("doomed"))
    assert [e.method.rsplit("/", 1)[-1] for e in journal.entries] == ["GetVehicle", "ListFleets"]
    assert await soc_of(target, "") != 7, "other namespaces keep their state"


async def test_deleting_a_namespace_never_used_or_the_default_one(target: Target) -> None:
    assert not (
        await target.admin.DeleteNamespace(adm.DeleteNamespaceRequest(namespace="never-used"))
    ).existed
    for name, problem in (("", "default namespace cannot be deleted"), ("Not Valid", "lowercase")):
        error = await failure(target.admin.DeleteNamespace(adm.DeleteNamespaceRequest(namespace=name)))
        [bad_request] = details_of(rich_status(error), error_details_pb2.BadRequest)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert [v.field for v in bad_request.field_violations] == ["namespace"]
        assert problem in str(error.details())


async def test_idle_namespaces_are_dropped_and_busy_ones_kept(target: Target) -> None:
    namespaces = target.emulator.namespaces
    namespaces.limits = dataclasses.replace(namespaces.limits, idle_timeout=timedelta(minutes=5))
    await set_soc(target.admin, 9, namespace="idle")
    await set_soc(target.admin, 9, namespace="streaming")
    stream = target.api.StreamVehicleEvents(
        pb.StreamRequest(event_id=HAMBURG_EVENTS), metadata=ns("streaming")
    )
    await next_message(stream)
    for namespace in namespaces.created()[1:]:
        namespace.last_used = time.monotonic() - 301  # as if 5 minutes had passed

    assert await namespaces.drop_idle() == ["idle"]

    assert await soc_of(target, "streaming") == 9, "a namespace with a call running is not idle"
    dropped_soc = await soc_of(target, "idle")
    if target.emulator.settings.backend == "memory":
        assert dropped_soc != 9, "dropped with its state"
    else:
        assert dropped_soc == 9, "on Redis the state stays there for other replicas"
    await set_soc(target.admin, 11, namespace="streaming")
    assert (await next_message(stream)).event.battery_changed.state_of_charge_percent == 11
    stream.cancel()


@pytest.fixture
async def few(target: Target) -> AsyncIterator[Target]:
    namespaces = target.emulator.namespaces
    kept = namespaces.limits
    namespaces.limits = dataclasses.replace(kept, max_namespaces=2)
    yield target
    namespaces.limits = kept


async def test_beyond_the_limit_a_new_namespace_is_refused(few: Target) -> None:
    for name in ("one", "two"):
        await few.api.ListFleets(pb.ListFleetsRequest(), metadata=ns(name))
    error = await failure(few.api.ListFleets(pb.ListFleetsRequest(), metadata=ns("three")))
    assert (error.code(), error_info(error).reason) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "NAMESPACE_LIMIT_REACHED",
    )
    assert details_of(rich_status(error), error_details_pb2.RetryInfo)
    assert details_of(rich_status(error), error_details_pb2.QuotaFailure)
    for n in range(20):  # names refused at the limit are not held
        await failure(few.api.ListFleets(pb.ListFleetsRequest(), metadata=ns(f"refused-{n}")))
    assert sorted(few.emulator.namespaces._others) == ["one", "two"]  # what the process holds
    await few.api.ListFleets(pb.ListFleetsRequest(), metadata=ns("one"))  # known ones still work
    await few.admin.DeleteNamespace(adm.DeleteNamespaceRequest(namespace="one"))
    await few.api.ListFleets(pb.ListFleetsRequest(), metadata=ns("three"))


async def test_calls_cancelled_while_their_namespace_is_seeded_are_no_bugs(
    target: Target, caplog: pytest.LogCaptureFixture
) -> None:
    names = [f"fresh-{n}" for n in range(30)]
    with caplog.at_level(logging.DEBUG, logger="fleet_emulator"):
        for n, name in enumerate(names):
            call = target.api.StreamVehicleEvents(
                pb.StreamRequest(event_id=HAMBURG_EVENTS), metadata=ns(name)
            )
            await asyncio.sleep(0.001 * (n % 5))  # cancelled at different moments of the seeding
            call.cancel()
        for name in names:  # the seeding went on: each namespace is there, whole
            fleets = await target.api.ListFleets(pb.ListFleetsRequest(), metadata=ns(name))
            assert [f.vehicle_count for f in fleets.fleets] == [27, 8]
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert errors == [], [r.getMessage() for r in errors]
