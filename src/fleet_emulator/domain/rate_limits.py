"""Per-client rate limits of a namespace (seed 001): token buckets per client and rule, on the emulator clock.

A rule (``policies.RateRule``) names an RPC by its method name or full name; a ``*`` rule covers every RPC
without a rule of its own, with one bucket per client for all of them. A bucket holds ``1 + burst`` tokens
(nginx's ``burst`` with ``nodelay``: that many calls may come at once) and gets ``requests`` tokens back per
period, continuously, as the emulator's clock moves; a clock set back refills nothing. A call takes a token
or fails with ``RESOURCE_EXHAUSTED`` (``RATE_LIMITED``), whose retry delay is the time until the next token.
Arithmetic is exact (fractions), so tests that advance the clock get the same answer every time. A new rule
table (changed policies) starts with full buckets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction

from fleet_emulator.domain import reasons
from fleet_emulator.domain.errors import QuotaViolation, ResourceExhausted
from fleet_emulator.domain.policies import RateRule

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


@dataclass
class Bucket:
    rule: RateRule
    tokens: Fraction
    updated: datetime

    @property
    def capacity(self) -> int:
        return 1 + self.rule.burst

    @property
    def per_second(self) -> Fraction:
        return Fraction(self.rule.requests) / Fraction(int(self.rule.period.length.total_seconds()))

    def refill(self, now: datetime) -> None:
        elapsed = Fraction((now - self.updated) // timedelta(microseconds=1), MICROSECONDS)
        if elapsed > 0:
            self.tokens = min(Fraction(self.capacity), self.tokens + elapsed * self.per_second)
        self.updated = now  # also when the clock went back: refill from here on

    def seconds_until(self, tokens: Fraction) -> Fraction:
        return max(Fraction(0), (tokens - self.tokens) / self.per_second)


class RateLimiter:
    """The buckets of one namespace, for the rule table they were made for."""

    def __init__(self) -> None:
        self._rules: tuple[RateRule, ...] = ()
        self._buckets: dict[tuple[str, RateRule], Bucket] = {}

    def clear(self) -> None:
        self._buckets.clear()

    def take(self, rules: tuple[RateRule, ...], client: str, full_method: str, now: datetime) -> Quota | None:
        """Take a token for ``client``'s call of ``full_method``: the quota left, None when no rule applies,
        or RESOURCE_EXHAUSTED when the bucket is empty."""
        if rules != self._rules:
            self._rules = rules
            self.clear()
        rule = rule_for(rules, full_method)
        if rule is None:
            return None
        bucket = self._buckets.get((client, rule))
        if bucket is None:
            bucket = self._buckets[client, rule] = Bucket(rule, Fraction(1 + rule.burst), now)
        bucket.refill(now)
        if bucket.tokens < 1:
            wait = bucket.seconds_until(Fraction(1))
            retry_after = timedelta(microseconds=math.ceil(wait * MICROSECONDS))
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
        bucket.tokens -= 1
        reset = math.ceil(bucket.seconds_until(Fraction(bucket.capacity)))
        return Quota(bucket.capacity, math.floor(bucket.tokens), reset)
