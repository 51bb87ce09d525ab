"""The fault rules of a namespace over its ``ControlStore``: added, listed, deleted, and taken by calls.

The book keeps the rules as of the namespace's last refresh (``Namespace.refresh``, at the start of each
call) and counts in the store: a rule's draws and hits are atomic there, so "fail the next 2 calls" fails
exactly 2 calls across every replica, and a rule with a ``probability`` gives its seeded generator's draws
to the calls in the order the store numbers them, the same sequence as on one process.
"""

from __future__ import annotations

import random

from fleet_emulator.backends.base import ControlStore
from fleet_emulator.domain import reasons
from fleet_emulator.domain.errors import FailedPrecondition, PreconditionViolation
from fleet_emulator.domain.faults import MAX_RULES, Action, FaultRule, check_rule


class Draws:
    """The draws of one rule's seeded generator, read by their number (numbers only grow here)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.generator = random.Random(seed)
        self.made = 0

    def number(self, n: int) -> float:
        if n <= self.made:  # not expected: numbers only grow; start again rather than guess
            self.generator, self.made = random.Random(self.seed), 0
        while self.made < n - 1:
            self.generator.random()
            self.made += 1
        self.made += 1
        return self.generator.random()


class FaultBook:
    def __init__(self, store: ControlStore) -> None:
        self.store = store
        self.rules: list[FaultRule] = []  # as of the last refresh
        self._draws: dict[str, Draws] = {}

    def refreshed(self, rules: list[FaultRule]) -> None:
        self.rules = rules
        self._draws = {r.id: self._draws.get(r.id) or Draws(r.seed) for r in rules if 0 < r.probability < 1}

    async def add(self, rule: FaultRule) -> FaultRule:
        check_rule(rule)
        if not await self.store.add_rule(rule, MAX_RULES):
            raise FailedPrecondition(
                reasons.FAULT_LIMIT_REACHED,
                f"the namespace has {MAX_RULES} fault rules, as many as it may keep: delete some first",
                [PreconditionViolation("FAULT_RULES", "faults", f"at most {MAX_RULES} rules a namespace")],
            )
        return rule

    async def listed(self) -> list[FaultRule]:
        """The rules with their hits, as they are now."""
        return await self.store.rules()

    async def delete(self, rule_id: str) -> bool:
        return await self.store.delete_rule(rule_id)

    async def clear(self) -> int:
        return await self.store.clear_rules()

    async def take(self, full_method: str, streaming: bool, fleet_id: str, vehicle_id: str) -> Action | None:
        """The action for a call, counting it as a hit of the rule that fires (a draw is made for every
        matching call of a rule with a probability; spent rules are removed)."""
        for rule in self.rules:
            if not rule.matches(full_method, streaming, fleet_id, vehicle_id):
                continue
            draws = self._draws.get(rule.id)
            if draws is not None:
                number = await self.store.draw(rule.id)
                if number is None or draws.number(number) >= rule.probability:
                    continue
            if await self.store.hit(rule.id, rule.times):
                return rule.action
        return None
