"""The control-store contract, run against every backend (memory and a real Redis): what steers a
namespace (policies, fault rules with their draws and hits, token buckets, scheduled wake-ups) changes
atomically, so that replicas sharing one store act as one process."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

from fleet_emulator.backends.base import Backend, ControlStore
from fleet_emulator.domain.faults import AddLatency, FailCall, FaultRule
from fleet_emulator.domain.policies import AuthMode, Policies, RatePeriod, RateRule
from fleet_emulator.domain.rate_limits import take_units
from fleet_emulator.domain.scenario import parse_scenario

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
SECOND_US = 1_000_000


async def test_policies_round_trip_and_each_change_moves_the_version(backend: Backend) -> None:
    control = backend.control
    assert await control.policies() is None
    before = await control.version()
    policies = Policies(
        auth_mode=AuthMode.JWT,
        rate_limits=(RateRule("GetVehicle", 5, RatePeriod.SECOND, burst=2),),
        wake_up_delay_min=timedelta(milliseconds=1500),
        unknown_values=True,
    )
    await control.set_policies(policies, rates_changed=True)
    assert await control.policies() == policies
    assert await control.version() != before
    await control.set_policies(None, rates_changed=False)
    assert await control.policies() is None


async def test_rules_keep_their_order_fields_and_hits(backend: Backend) -> None:
    control = backend.control
    failing = FaultRule("GetVehicle", FailCall(14, "down", "MAINTENANCE", (b"\x00packed\xff",), 8), times=2)
    slow = FaultRule(
        "*", AddLatency(timedelta(milliseconds=250)), fleet_id="hamburg", probability=0.5, seed=7
    )
    assert await control.add_rule(failing, limit=10)
    assert await control.add_rule(slow, limit=10)
    assert await control.rules() == [failing, slow]
    assert await control.hit(failing.id, failing.times)
    assert [r.hits for r in await control.rules()] == [1, 0]
    assert await control.delete_rule(slow.id)
    assert not await control.delete_rule(slow.id)
    assert await control.rules() == [dataclasses.replace(failing, hits=1)]


async def test_a_rule_is_removed_with_its_last_hit_and_then_hits_no_more(control: ControlStore) -> None:
    rule = FaultRule("GetVehicle", FailCall(14, "down"), times=3)
    await control.add_rule(rule, limit=10)
    hits = await asyncio.gather(*(control.hit(rule.id, rule.times) for _ in range(8)))
    assert hits.count(True) == 3
    assert await control.rules() == []
    assert await control.draw(rule.id) is None


async def test_draws_are_numbered_once_each_under_concurrency(control: ControlStore) -> None:
    rule = FaultRule("*", FailCall(14, "down"), probability=0.3, seed=1)
    await control.add_rule(rule, limit=10)
    numbers = await asyncio.gather(*(control.draw(rule.id) for _ in range(25)))
    assert sorted(n for n in numbers if n is not None) == list(range(1, 26))


async def test_the_rule_limit_holds_under_concurrent_adds(control: ControlStore) -> None:
    added = await asyncio.gather(
        *(control.add_rule(FaultRule("*", FailCall(14, str(n))), limit=5) for n in range(12))
    )
    assert added.count(True) == 5
    assert len(await control.rules()) == 5
    assert await control.clear_rules() == 5
    assert await control.rules() == []


async def test_buckets_take_as_the_reference_arithmetic_does(control: ControlStore) -> None:
    capacity, requests, period = 3, 2, SECOND_US  # 2 r/s, burst 2
    held: tuple[int, int] | None = None
    steps = [0, 0, 0, 0, 499_999, 500_000, 500_001, 2_750_000, 2_750_000, 1_000_000, 10_000_000]
    for now in steps:
        expected_taken, units, updated = take_units(held, capacity, requests, period, now)
        held = (units, updated)
        assert await control.take_token("client\nrule", capacity, requests, period, now) == (
            expected_taken,
            units,
        )


async def test_concurrent_takes_never_exceed_the_bucket(control: ControlStore) -> None:
    taken = await asyncio.gather(
        *(control.take_token("racer", 4, 1, 60 * SECOND_US, 5 * SECOND_US) for _ in range(20))
    )
    assert [t for t, _ in taken].count(True) == 4


async def test_new_rates_refill_every_bucket(control: ControlStore) -> None:
    await control.take_token("client", 1, 1, SECOND_US, 0)
    assert not (await control.take_token("client", 1, 1, SECOND_US, 0))[0]
    await control.set_policies(Policies(), rates_changed=True)
    assert (await control.take_token("client", 1, 1, SECOND_US, 0))[0]


async def test_wake_ups_come_due_on_the_given_clock(control: ControlStore) -> None:
    await control.schedule_wake_up("a", NOW + timedelta(seconds=10))
    await control.schedule_wake_up("b", NOW + timedelta(seconds=30))
    assert await control.due_wake_ups(NOW) == []
    assert await control.due_wake_ups(NOW + timedelta(seconds=10)) == ["a"]
    await control.forget_wake_up("a")
    assert sorted(await control.due_wake_ups(NOW + timedelta(minutes=1))) == ["b"]


async def test_clear_forgets_everything_and_moves_the_version(control: ControlStore) -> None:
    await control.set_policies(Policies(unknown_values=True), rates_changed=False)
    await control.add_rule(FaultRule("*", FailCall(14, "down")), limit=10)
    await control.schedule_wake_up("a", NOW)
    before = await control.version()
    await control.clear()
    assert await control.version() != before
    assert await control.policies() is None
    assert await control.rules() == []
    assert await control.due_wake_ups(NOW) == []


async def test_a_loaded_scenario_is_kept_through_a_clear_until_dropped(control: ControlStore) -> None:
    small = parse_scenario(
        "name: small\nfleets:\n  - id: kiel\n    generate: {count: 3}\n", "small.yaml", NOW
    )
    assert await control.scenario() is None
    await control.set_scenario(small)
    await control.clear()
    assert await control.scenario() == small
    await control.set_scenario(None)
    assert await control.scenario() is None
