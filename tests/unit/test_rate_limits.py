"""The token buckets of ``domain/rate_limits.py`` on a clock the tests move: burst, refill, retry delay (over
the memory control store; the contract suite checks that Redis takes as it does)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fleet_emulator.backends.memory_control import MemoryControlStore
from fleet_emulator.domain import reasons
from fleet_emulator.domain.errors import QuotaViolation, ResourceExhausted
from fleet_emulator.domain.policies import RatePeriod, RateRule
from fleet_emulator.domain.rate_limits import Quota, RateLimiter, rule_for

T0 = datetime(2030, 1, 1, tzinfo=UTC)
GET_FLEET = "/moia.fleet.state.v2.FleetStateService/GetFleet"
GET_FLEET_V1 = "/moia.fleet.state.v1.FleetStateService/GetFleet"
LIST_FLEETS = "/moia.fleet.state.v2.FleetStateService/ListFleets"
GET_VEHICLE = "/moia.fleet.state.v2.FleetStateService/GetVehicle"
PER_SECOND = (RateRule("GetFleet", 1, RatePeriod.SECOND, burst=2),)
PER_MINUTE = (RateRule("ListFleets", 4, RatePeriod.MINUTE),)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def new_limiter() -> RateLimiter:
    return RateLimiter(MemoryControlStore())


async def refused(
    limiter: RateLimiter, rules: tuple[RateRule, ...], method: str, when: datetime
) -> ResourceExhausted:
    with pytest.raises(ResourceExhausted) as caught:
        await limiter.take(rules, "acme", method, when)
    return caught.value


def test_rules_match_a_method_name_or_full_name_and_star_covers_the_rest() -> None:
    star = RateRule("*", 1, RatePeriod.MINUTE)
    full = RateRule("moia.fleet.state.v2.FleetStateService/GetFleet", 5, RatePeriod.SECOND)
    named = RateRule("GetVehicle", 2, RatePeriod.SECOND)
    rules = (star, full, named)

    assert rule_for(rules, GET_FLEET) is full
    assert rule_for(rules, GET_FLEET_V1) is star, "a full name names one version's RPC only"
    assert rule_for(rules, GET_VEHICLE) is named
    assert rule_for(rules, LIST_FLEETS) is star
    assert rule_for((named,), LIST_FLEETS) is None


async def test_one_plus_burst_calls_pass_at_once_then_the_next_is_refused_until_a_token_is_back() -> None:
    limiter = new_limiter()

    quotas = [await limiter.take(PER_SECOND, "acme", GET_FLEET, T0) for _ in range(3)]
    assert quotas == [Quota(3, 2, 1), Quota(3, 1, 2), Quota(3, 0, 3)]
    error = await refused(limiter, PER_SECOND, GET_FLEET, at(0.25))
    assert error.reason is reasons.RATE_LIMITED
    assert error.retry_after == timedelta(seconds=0.75)
    assert error.violations == [QuotaViolation("client:acme", "GetFleet: 1 r/s, burst 2")]
    assert error.metadata == {"client": "acme", "method": "GetFleet", "limit": "GetFleet: 1 r/s, burst 2"}

    assert await limiter.take(PER_SECOND, "acme", GET_FLEET, at(1)) == Quota(3, 0, 3)
    assert (await refused(limiter, PER_SECOND, GET_FLEET, at(1))).retry_after == timedelta(seconds=1)


async def test_a_per_minute_rate_refills_exactly_one_token_per_share_of_the_minute() -> None:
    limiter = new_limiter()
    assert await limiter.take(PER_MINUTE, "acme", LIST_FLEETS, T0) == Quota(1, 0, 15)

    assert (await refused(limiter, PER_MINUTE, LIST_FLEETS, at(14.999999))).retry_after == timedelta(
        microseconds=1
    )
    assert await limiter.take(PER_MINUTE, "acme", LIST_FLEETS, at(15)) == Quota(1, 0, 15)


async def test_refill_stops_at_the_capacity() -> None:
    limiter = new_limiter()
    for _ in range(3):
        await limiter.take(PER_SECOND, "acme", GET_FLEET, T0)

    later = [await limiter.take(PER_SECOND, "acme", GET_FLEET, at(3600)) for _ in range(3)]
    assert [q.remaining for q in later if q] == [2, 1, 0]
    await refused(limiter, PER_SECOND, GET_FLEET, at(3600))


async def test_clients_and_rules_have_buckets_of_their_own() -> None:
    limiter = new_limiter()
    rules = (*PER_SECOND, RateRule("GetVehicle", 1, RatePeriod.SECOND))
    for _ in range(3):
        await limiter.take(rules, "acme", GET_FLEET, T0)
    await refused(limiter, rules, GET_FLEET, T0)

    assert await limiter.take(rules, "other", GET_FLEET, T0) == Quota(3, 2, 1)
    assert await limiter.take(rules, "acme", GET_VEHICLE, T0) == Quota(1, 0, 1)


async def test_the_star_rule_is_one_budget_for_every_rpc_without_a_rule() -> None:
    limiter = new_limiter()
    rules = (RateRule("*", 2, RatePeriod.MINUTE), RateRule("GetVehicle", 1, RatePeriod.SECOND))

    assert await limiter.take(rules, "acme", GET_FLEET, T0) == Quota(1, 0, 30)
    assert (await refused(limiter, rules, LIST_FLEETS, T0)).metadata["limit"] == "*: 2 r/m"
    assert await limiter.take(rules, "acme", GET_VEHICLE, T0) is not None


async def test_rpcs_without_a_rule_are_not_limited() -> None:
    limiter = new_limiter()

    assert [await limiter.take(PER_SECOND, "acme", LIST_FLEETS, T0) for _ in range(100)] == [None] * 100
    assert await limiter.take((), "acme", GET_FLEET, T0) is None


async def test_a_clock_set_back_refills_nothing_and_breaks_nothing() -> None:
    limiter = new_limiter()
    for _ in range(3):
        await limiter.take(PER_SECOND, "acme", GET_FLEET, at(100))

    assert (await refused(limiter, PER_SECOND, GET_FLEET, at(0))).retry_after == timedelta(seconds=1)
    assert await limiter.take(PER_SECOND, "acme", GET_FLEET, at(1)) == Quota(3, 0, 3)


async def test_a_new_rule_table_or_a_clear_starts_with_full_buckets() -> None:
    limiter = new_limiter()
    for _ in range(3):
        await limiter.take(PER_SECOND, "acme", GET_FLEET, T0)
    await refused(limiter, PER_SECOND, GET_FLEET, T0)

    stricter = (RateRule("GetFleet", 1, RatePeriod.SECOND, burst=1),)
    assert await limiter.take(stricter, "acme", GET_FLEET, T0) == Quota(2, 1, 1)
    await limiter.take(stricter, "acme", GET_FLEET, T0)
    await refused(limiter, stricter, GET_FLEET, T0)
    await limiter.store.set_policies(None, rates_changed=True)
    assert await limiter.take(stricter, "acme", GET_FLEET, T0) == Quota(2, 1, 1)


def test_the_quota_becomes_the_ratelimit_headers() -> None:
    assert Quota(3, 1, 2).headers() == (
        ("ratelimit-limit", "3"),
        ("ratelimit-remaining", "1"),
        ("ratelimit-reset", "2"),
    )
