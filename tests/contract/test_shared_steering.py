"""The contract of what replicas share beyond a namespace's control store, run against every backend: the
clock store, the namespace registry (with its deletion announcements) and, where there is one (Redis), the
shared journal store. Two ``Backends`` objects on one Redis stand for two replicas."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar, cast

import pytest

from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as pb
from fleet_emulator.api.shrink import kept
from fleet_emulator.backends.base import JournalStore
from fleet_emulator.backends.factory import Backends
from fleet_emulator.domain.journal import JournalEntry, JournalQuery
from tests.contract.conftest import backends_of
from tests.waiting import eventually

NOW = datetime(2031, 5, 1, 12, 0, tzinfo=UTC)
T = TypeVar("T")


@pytest.fixture(params=["memory", "redis", "cluster"])
async def two(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Backends, Backends]]:
    """Two replicas' backends on one store (for memory, one process's backends twice)."""
    first = backends_of(request.param, request)
    second = first if request.param == "memory" else backends_of(request.param, request)
    yield first, second
    await first.close()
    if second is not first:
        await second.close()


def each(two: tuple[Backends, Backends], make: Callable[[Backends], T]) -> tuple[T, T]:
    """What each replica makes of its backends (one object when both are the one process's)."""
    first, second = two
    made = make(first)
    return made, made if second is first else make(second)


async def test_a_clock_set_through_one_is_read_through_the_other(two: tuple[Backends, Backends]) -> None:
    first, second = each(two, lambda b: b.clock_store())
    assert await second.load() is None
    await first.save(NOW)
    assert await second.load() == NOW
    advanced = await asyncio.gather(*(s.advance(timedelta(seconds=1), NOW) for s in (first, second) * 5))
    assert sorted(advanced) == [NOW + timedelta(seconds=n) for n in range(1, 11)]
    await second.save(None)
    assert await first.load() is None
    assert await first.advance(timedelta(minutes=1), NOW) == NOW + timedelta(minutes=1), "from real time"


async def test_the_namespace_limit_counts_the_namespaces_of_every_replica(
    two: tuple[Backends, Backends],
) -> None:
    first, second = each(two, lambda b: b.registry())
    added = await asyncio.gather(*(r.add(f"ns-{n}", 3) for n, r in enumerate([first, second] * 4)))
    assert added.count(True) == 3
    known = next(f"ns-{n}" for n, ok in enumerate(added) if ok)
    assert await second.add(known, 3), "a namespace already there is no new one"
    await first.remove(known)
    assert await second.add("another", 3)


async def test_wake_ups_due_are_found_in_every_namespace(two: tuple[Backends, Backends]) -> None:
    first, second = two
    await first("north").control.schedule_wake_up("v1", NOW)
    await first("south").control.schedule_wake_up("v2", NOW + timedelta(minutes=5))
    registry = second.registry()
    assert await registry.with_wake_ups_due(NOW) == ["north"]
    assert await registry.with_wake_ups_due(NOW + timedelta(hours=1)) == ["north", "south"]
    await second("north").control.forget_wake_up("v1")
    assert await registry.with_wake_ups_due(NOW + timedelta(hours=1)) == ["south"]


async def test_a_deletion_is_heard_by_the_other_replicas_only(two: tuple[Backends, Backends]) -> None:
    first, second = two
    if first is second:
        pytest.skip("one process knows what it deleted")
    announcer, listener = first.registry(), second.registry()
    heard = listener.deletions()
    hearing = asyncio.ensure_future(anext(heard))
    own = asyncio.ensure_future(anext(announcer.deletions()))
    try:
        for _ in range(100):  # until the listener subscribed: each announcement before it is lost
            await announcer.announce_deleted("doomed")
            done, _ = await asyncio.wait({hearing}, timeout=0.05)
            if done:
                break
        assert hearing.result() == "doomed"
        assert not own.done(), "the announcer does not hear itself"
    finally:
        for task in (hearing, own):
            task.cancel()
        await cast(AsyncGenerator[str, None], heard).aclose()


@pytest.fixture(params=["redis", "cluster"])
async def journal(request: pytest.FixtureRequest) -> AsyncIterator[JournalStore]:
    backends = backends_of(request.param, request)
    store = backends("journaled").journal
    assert store is not None
    yield store
    await backends.close()


def entry(flow_id: str, size: int = 0) -> JournalEntry:
    request = kept(pb.GetVehicleRequest(vehicle_id="x" * size))
    made = JournalEntry(
        NOW, "/moia.fleet.state.v2.FleetStateService/GetVehicle", "v2", {}, request, flow_id, "peer"
    )
    made.messages = [kept(pb.GetVehicleResponse())]
    made.status_details, made.duration, made.finished = b"\x08\x05", timedelta(milliseconds=3), True
    return made


async def test_journal_entries_round_trip_numbered_in_order(journal: JournalStore) -> None:
    streaming = entry("stream")
    streaming.sequence = await journal.sequence()
    await journal.keep(entry("first"), 100, 1 << 20)
    await journal.keep(streaming, 100, 1 << 20)
    [first, stream] = await journal.entries()
    assert [(first.flow_id, first.sequence), (stream.flow_id, stream.sequence)] == [
        ("first", 2),
        ("stream", 1),
    ]
    assert first.request is not None and first.request.message == pb.GetVehicleRequest(vehicle_id="")
    assert [m.message for m in first.messages] == [pb.GetVehicleResponse()]
    assert (first.status_details, first.duration, first.start_time) == (
        b"\x08\x05",
        timedelta(milliseconds=3),
        NOW,
    )


async def test_the_journal_keeps_its_entry_and_byte_budgets(journal: JournalStore) -> None:
    for n in range(6):
        await journal.keep(entry(f"call-{n}"), 4, 1 << 20)
    assert [e.flow_id for e in await journal.entries()] == ["call-2", "call-3", "call-4", "call-5"]
    await journal.keep(entry("big", 5_000), 4, 6_000)
    assert [e.flow_id for e in await journal.entries()][-1] == "big"
    assert len(await journal.entries()) < 4
    assert await journal.clear() >= 1
    assert await journal.entries() == []
    await journal.keep(entry("after"), 4, 1 << 20)
    assert [e.sequence for e in await journal.entries()] == [8], "numbers go on after a clear"


async def test_journal_queries_filter_before_reading_entries(journal: JournalStore) -> None:
    for n in range(6):
        made = entry(f"call-{n}")
        made.code = 5 if n % 2 else 0
        await journal.keep(made, 100, 1 << 20)

    async def flows(query: JournalQuery) -> list[str]:
        return [e.flow_id for e in await journal.find(query)]

    assert await flows(JournalQuery()) == [f"call-{n}" for n in range(6)]
    assert await flows(JournalQuery(code=5)) == ["call-1", "call-3", "call-5"]
    assert await flows(JournalQuery(code=5, after=2, limit=1)) == ["call-3"]
    assert await flows(JournalQuery(flow_id="call-4", method="GetVehicle")) == ["call-4"]
    assert await flows(JournalQuery(method="moia.fleet.state.v2.FleetStateService/GetFleet")) == []


async def test_one_replica_holds_a_lease_until_it_lapses(two: tuple[Backends, Backends]) -> None:
    first, second = (b.lease("simulator") for b in two)
    brief = timedelta(milliseconds=300)
    assert await first.hold(brief)
    assert await first.hold(brief), "renewed by its holder"
    if two[0] is two[1]:
        assert await second.hold(brief), "one process: it is always the holder"
        return
    assert not await second.hold(brief)

    async def taken_over() -> bool:
        return await second.hold(brief)

    await eventually(taken_over, "the lapsed lease is taken by the other replica")
    assert not await first.hold(brief)
