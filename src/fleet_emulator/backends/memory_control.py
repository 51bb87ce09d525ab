"""In-process ``ControlStore``, ``ClockStore`` and ``NamespaceRegistry``: a namespace's policies, fault rules
and their counts, rate-limit buckets and scheduled wake-ups, the virtual clock and the namespaces, in plain
Python objects."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

from fleet_emulator.domain.faults import FaultRule
from fleet_emulator.domain.policies import Policies
from fleet_emulator.domain.rate_limits import take_units
from fleet_emulator.domain.scenario import Scenario

WakeUpsDue = dict[tuple[str, str], datetime]  # (namespace, vehicle id) -> due, of every namespace


class MemoryControlStore:
    def __init__(self, namespace: str = "", wake_ups: WakeUpsDue | None = None) -> None:
        """``wake_ups`` is shared by the namespaces of one process and its registry (as one sorted set is
        on Redis), so that the registry finds the namespaces with wake-ups due."""
        self.namespace = namespace
        self.wake_ups: WakeUpsDue = {} if wake_ups is None else wake_ups
        self._version = 0
        self._policies: Policies | None = None
        self._rules: dict[str, FaultRule] = {}  # in creation order
        self._draws: dict[str, int] = {}
        self._buckets: dict[str, tuple[int, int]] = {}
        self._scenario: Scenario | None = None

    def _changed(self) -> None:
        self._version += 1

    async def version(self) -> str:
        return str(self._version)

    async def policies(self) -> Policies | None:
        return self._policies

    async def set_policies(self, policies: Policies | None, rates_changed: bool) -> None:
        self._policies = policies
        if rates_changed:
            self._buckets.clear()
        self._changed()

    async def rules(self) -> list[FaultRule]:
        return [dataclasses.replace(r) for r in self._rules.values()]

    async def add_rule(self, rule: FaultRule, limit: int) -> bool:
        if len(self._rules) >= limit:
            return False
        self._rules[rule.id] = dataclasses.replace(rule, hits=0)
        self._changed()
        return True

    async def delete_rule(self, rule_id: str) -> bool:
        self._draws.pop(rule_id, None)
        found = self._rules.pop(rule_id, None) is not None
        self._changed()
        return found

    async def clear_rules(self) -> int:
        count = len(self._rules)
        self._rules.clear()
        self._draws.clear()
        self._changed()
        return count

    async def draw(self, rule_id: str) -> int | None:
        if rule_id not in self._rules:
            return None
        self._draws[rule_id] = self._draws.get(rule_id, 0) + 1
        return self._draws[rule_id]

    async def hit(self, rule_id: str, times: int) -> bool:
        rule = self._rules.get(rule_id)
        if rule is None:
            return False
        rule.hits += 1
        if times and rule.hits >= times:
            await self.delete_rule(rule_id)
        return True

    async def take_token(
        self, bucket: str, capacity: int, requests: int, period_us: int, now_us: int
    ) -> tuple[bool, int]:
        taken, units, updated = take_units(self._buckets.get(bucket), capacity, requests, period_us, now_us)
        self._buckets[bucket] = (units, updated)
        return taken, units

    async def scenario(self) -> Scenario | None:
        return self._scenario

    async def set_scenario(self, scenario: Scenario | None) -> None:
        self._scenario = scenario

    async def schedule_wake_up(self, vehicle_id: str, due: datetime) -> None:
        self.wake_ups[self.namespace, vehicle_id] = due

    async def due_wake_ups(self, now: datetime) -> list[str]:
        return [v for (n, v), due in self.wake_ups.items() if n == self.namespace and due <= now]

    async def forget_wake_up(self, vehicle_id: str) -> None:
        self.wake_ups.pop((self.namespace, vehicle_id), None)

    async def clear(self) -> None:
        self._policies = None
        self._rules.clear()
        self._draws.clear()
        self._buckets.clear()
        for key in [k for k in self.wake_ups if k[0] == self.namespace]:
            del self.wake_ups[key]
        self._changed()


class MemoryClockStore:
    def __init__(self) -> None:
        self._frozen: datetime | None = None

    async def load(self) -> datetime | None:
        return self._frozen

    async def save(self, frozen: datetime | None) -> None:
        self._frozen = frozen

    async def advance(self, by: timedelta, real_now: datetime) -> datetime:
        self._frozen = (self._frozen or real_now) + by
        return self._frozen


class MemoryNamespaceRegistry:
    """The namespaces of the one process, and the wake-ups its control stores scheduled."""

    def __init__(self, wake_ups: WakeUpsDue | None = None) -> None:
        self._names: set[str] = set()
        self.wake_ups: WakeUpsDue = {} if wake_ups is None else wake_ups

    async def add(self, name: str, limit: int) -> bool:
        if name not in self._names and len(self._names) >= limit:
            return False
        self._names.add(name)
        return True

    async def remove(self, name: str) -> None:
        self._names.discard(name)

    async def dropped(self, name: str) -> None:
        await self.remove(name)

    async def announce_deleted(self, name: str) -> None:
        return None

    async def deletions(self) -> AsyncIterator[str]:
        await asyncio.Event().wait()  # the one process deleted it itself: nothing to hear of
        yield ""

    async def with_wake_ups_due(self, now: datetime) -> list[str]:
        return sorted({n for (n, _), due in self.wake_ups.items() if due <= now})


class MemoryLease:
    """The one process always holds it."""

    async def hold(self, ttl: timedelta) -> bool:
        return True
