"""The behaviour switches of a namespace: auth mode, rate limits, wake-up delay, unknown values, polling.

``Policies`` is one immutable value per namespace: the emulator starts every namespace with the policies
of its command line (``Settings.policies``), tests change them through the admin service, and a reset
puts the starting ones back. The parts are interpreted elsewhere: ``auth.py`` (auth mode),
``rate_limits.py`` (the rules), ``wake_ups.py`` (wake-up delay), the API adapters (unknown values) and
``report.py`` (polling interval).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import timedelta


class AuthMode(enum.Enum):
    NONE = 1
    ANY = 2
    JWT = 3


class RatePeriod(enum.Enum):
    SECOND = 1
    MINUTE = 2

    @property
    def length(self) -> timedelta:
        return timedelta(seconds=1) if self is RatePeriod.SECOND else timedelta(minutes=1)

    @property
    def symbol(self) -> str:
        return "s" if self is RatePeriod.SECOND else "m"


@dataclass(frozen=True)
class RateRule:
    """``requests`` per ``period`` for one RPC (a method name, a full name or ``*``), plus ``burst`` requests
    that may come at once (seed 001's table)."""

    method: str
    requests: int
    period: RatePeriod
    burst: int = 0

    def describe(self) -> str:
        burst = f", burst {self.burst}" if self.burst else ""
        return f"{self.method}: {self.requests} r/{self.period.symbol}{burst}"


@dataclass(frozen=True)
class Policies:
    auth_mode: AuthMode = AuthMode.NONE
    rate_limits: tuple[RateRule, ...] = ()
    wake_up_delay_min: timedelta = timedelta(seconds=10)
    wake_up_delay_max: timedelta = timedelta(seconds=60)
    unknown_values: bool = False
    poll_interval: timedelta = timedelta(seconds=5)


DEFAULT_POLICIES = Policies()
