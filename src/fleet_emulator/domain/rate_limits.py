"""Per-client rate limits of a namespace (seed 001): token buckets per client and rule, on the emulator clock.

A rule (``policies.RateRule``) names an RPC by its method name or full name; a ``*`` rule covers every RPC
without a rule of its own, with one bucket per client for all of them. A bucket holds ``1 + burst`` tokens
(nginx's ``burst`` with ``nodelay``: that many calls may come at once) and gets ``requests`` tokens back per
period, continuously, as the emulator's clock moves; a clock set back refills nothing. A call takes a token
or fails with ``RESOURCE_EXHAUSTED`` (``RATE_LIMITED``), whose retry delay is the time until the next token.
Arithmetic is exact (integers: a token is ``period_us`` units, and a bucket gets ``requests`` units back per
microsecond), so tests that advance the clock get the same answer every time. The buckets live in the
namespace's ``ControlStore``, which refills and takes atomically, so replicas count together. A new rule
table (changed policies) starts with full buckets.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from fleet_emulator.backends.base import ControlStore
from fleet_emulator.domain import reasons
from fleet_emulator.domain.errors import QuotaViolation, ResourceExhausted
from fleet_emulator.domain.models import EPOCH
from fleet_emulator.domain.policies import RateRule

MICROSECOND = timedelta(microseconds=1)
MICROSECONDS = 1_000_000


@dataclass(frozen=True)
class Quota:
    """What is left of a client's quota after an admitted call: the ``ratelimit-*`` response headers."""

    limit: int  # the bucket's capacity
    remaining: int  # whole calls that may still come now
    reset: int  # whole seconds until the bucket is full again

    def headers(self) -> tuple[tuple[str, str], ...]:
        return (
            ("ratelimit-limit", str(self.limit)),
            ("ratelimit-remaining", str(self.remaining)),
            ("ratelimit-reset", str(self.reset)),
        )


def rule_for(rules: tuple[RateRule, ...], full_method: str) -> RateRule | None:
    """The rule of an RPC: one naming it (by name or full name), else the ``*`` rule, else none."""
    names = (full_method.rsplit("/", 1)[-1], full_method.lstrip("/"))
    own = next((r for r in rules if r.method in names), None)
    return own or next((r for r in rules if r.method == "*"), None)


def take_units(
    held: tuple[int, int] | None, capacity: int, requests: int, period_us: int, now_us: int
) -> tuple[bool, int, int]:
    """One take from a bucket held as (units, updated at): whether a token was taken, the units left and
    the time they are counted at. The Redis store runs the same steps as a script (``redis_control.py``)."""
    full = capacity * period_us
    units, updated = held if held is not None else (full, now_us)
    if now_us > updated:
        units = min(full, units + (now_us - updated) * requests)
    if units >= period_us:
        return True, units - period_us, now_us
    return False, units, now_us  # also when the clock went back: refill from here on


class RateLimiter:
    """The buckets of one namespace, in its control store."""

    def __init__(self, store: ControlStore) -> None:
        self.store = store

    async def take(
        self, rules: tuple[RateRule, ...], client: str, full_method: str, now: datetime
    ) -> Quota | None:
        """Take a token for ``client``'s call of ``full_method``: the quota left, None when no rule applies,
        or RESOURCE_EXHAUSTED when the bucket is empty."""
        if not rules:  # off, as by default: nothing to look up on any call
            return None
        rule = rule_for(rules, full_method)
        if rule is None:
            return None
        period_us = rule.period.length // MICROSECOND
        capacity = 1 + rule.burst
        now_us = (now - EPOCH) // MICROSECOND
        bucket = f"{client}\n{rule.describe()}"
        taken, units = await self.store.take_token(bucket, capacity, rule.requests, period_us, now_us)
        if not taken:
            retry_after = timedelta(microseconds=-(-(period_us - units) // rule.requests))
            raise ResourceExhausted(
                reasons.RATE_LIMITED,
                f"client {client!r} exceeded the rate limit of {full_method.rsplit('/', 1)[-1]} "
                f"({rule.describe()}); retry in {retry_after.total_seconds():g} s",
                retry_after,
                [QuotaViolation(f"client:{client}", rule.describe())],
                client=client,
                method=full_method.rsplit("/", 1)[-1],
                limit=rule.describe(),
            )
        reset = -(-(capacity * period_us - units) // (rule.requests * MICROSECONDS))
        return Quota(capacity, units // period_us, reset)
