"""Namespaces: parallel test jobs share one emulator without seeing each other.

A call names its namespace in the ``x-emulator-namespace`` header (none: the default namespace). Each
namespace has its own backend state (fleets, vehicles, page tokens, event streams), fault rules, call
journal, scenario, policies (``policies.py``) and rate-limit buckets; the clock is shared. A namespace
comes into being, seeded with the emulator's scenario, on the first call that names it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field

from fleet_emulator.backends.base import Backend
from fleet_emulator.domain import reasons
from fleet_emulator.domain.clock import Clock
from fleet_emulator.domain.emulation import Emulation
from fleet_emulator.domain.errors import Violations
from fleet_emulator.domain.faults import FaultBook
from fleet_emulator.domain.journal import Journal
from fleet_emulator.domain.policies import DEFAULT_POLICIES, Policies
from fleet_emulator.domain.rate_limits import RateLimiter
from fleet_emulator.domain.scenario import Scenario
from fleet_emulator.domain.streams import StreamSettings

NAMESPACE_HEADER = "x-emulator-namespace"
DEFAULT = ""
NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")

current_namespace: ContextVar[str] = ContextVar("current_namespace", default=DEFAULT)


@dataclass
class Namespace:
    name: str
    emulation: Emulation
    scenario: Scenario
    initial_policies: Policies = DEFAULT_POLICIES
    faults: FaultBook = field(default_factory=FaultBook)
    journal: Journal = field(default_factory=Journal)
    rate_limiter: RateLimiter = field(default_factory=RateLimiter)
    policies: Policies = field(init=False)

    def __post_init__(self) -> None:
        self.policies = self.initial_policies

    async def reset(self) -> None:
        """Back to the namespace's scenario and starting policies: state, streams, faults, journal and
        rate-limit buckets are forgotten."""
        await self.emulation.reset(self.scenario)
        self.faults.clear()
        self.journal.clear()
        self.rate_limiter.clear()
        self.policies = self.initial_policies

    async def load(self, scenario: Scenario) -> None:
        self.scenario = scenario
        await self.reset()


def check_name(name: str) -> None:
    if name != DEFAULT and not NAME.fullmatch(name):
        violations = Violations()
        violations.add(NAMESPACE_HEADER, "must be 1 to 63 lowercase letters, digits, '.', '_' or '-'")
        violations.raise_if_any(reasons.FIELD_INVALID)


class Namespaces:
    def __init__(
        self,
        make_backend: Callable[[str], Backend],
        clock: Clock,
        scenario: Scenario,
        stream_settings: StreamSettings | None = None,
        policies: Policies = DEFAULT_POLICIES,
        jwt_secret: str = "",
    ) -> None:
        self.make_backend = make_backend
        self.policies = policies
        self.jwt_secret = jwt_secret  # HS256 secret of the bearer tokens (Settings.jwt_secret)
        self.clock = clock
        self.scenario = scenario
        self.stream_settings = stream_settings
        self.default = self._build(DEFAULT)
        self._others: dict[str, asyncio.Task[Namespace]] = {}

    def _build(self, name: str) -> Namespace:
        emulation = Emulation.build(self.make_backend(name), self.clock, self.stream_settings)
        return Namespace(name, emulation, self.scenario, self.policies)

    async def _create(self, name: str) -> Namespace:
        namespace = self._build(name)
        await namespace.emulation.fleets.seed(self.scenario)
        return namespace

    async def get(self, name: str) -> Namespace:
        """The namespace called ``name``, created and seeded on first use."""
        if name == DEFAULT:
            return self.default
        check_name(name)
        creating = self._others.get(name)
        if creating is None or (creating.done() and creating.exception() is not None):
            creating = self._others[name] = asyncio.ensure_future(self._create(name))
        return await asyncio.shield(creating)

    async def current(self) -> Namespace:
        return await self.get(current_namespace.get())

    def created(self) -> list[Namespace]:
        """Every namespace made so far (the default one first)."""
        made = [t.result() for t in self._others.values() if t.done() and t.exception() is None]
        return [self.default, *made]

    async def settle_wake_ups(self) -> None:
        """Bring online the vehicles of every namespace whose wake-up is due (``wake_ups.py``)."""
        for namespace in self.created():
            await namespace.emulation.wake_ups.settle_due()

    async def close(self) -> None:
        for namespace in self.created():
            await namespace.emulation.backend.close()
