"""The admin RPCs ``GetPolicies`` and ``UpdatePolicies``: a namespace's behaviour switches.

``UpdatePolicies`` follows AIP-134: the paths of ``update_mask`` are changed, an empty mask replaces every
policy; ``rate_limit_preset`` replaces the rate limits with a preset's. Every invalid field is named in
one ``INVALID_ARGUMENT``. A reset of the namespace restores the policies it started with.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

from fleet_emulator._gen.emulator.admin.v1 import admin_pb2 as pb
from fleet_emulator.api.convert import duration, timedelta_of
from fleet_emulator.domain import reasons
from fleet_emulator.domain.errors import Violations
from fleet_emulator.domain.namespaces import Namespaces
from fleet_emulator.domain.policies import AuthMode, Policies, RatePeriod, RateRule
from fleet_emulator.domain.rate_rules import PRESETS

Context = Any
PATHS = tuple(f.name for f in dataclasses.fields(Policies))
LONGEST_DELAY = timedelta(hours=1)
PERIODS = frozenset(p.value for p in RatePeriod)


def policies_message(policies: Policies) -> pb.Policies:
    return pb.Policies(
        auth_mode=pb.AuthMode.ValueType(policies.auth_mode.value),
        rate_limits=[
            pb.RateLimit(
                method=r.method,
                requests=r.requests,
                period=pb.RatePeriod.ValueType(r.period.value),
                burst=r.burst,
            )
            for r in policies.rate_limits
        ],
        wake_up_delay_min=duration(policies.wake_up_delay_min),
        wake_up_delay_max=duration(policies.wake_up_delay_max),
        unknown_values=policies.unknown_values,
        poll_interval=duration(policies.poll_interval),
    )


def _rules(message: pb.Policies, violations: Violations) -> tuple[RateRule, ...]:
    rules: list[RateRule] = []
    for index, limit in enumerate(message.rate_limits):
        where = f"policies.rate_limits[{index}]"
        if not limit.method:
            violations.add(f"{where}.method", 'is required: a method name, a full name or "*"')
        if limit.requests < 1:
            violations.add(f"{where}.requests", "must be at least 1")
        known = limit.period in PERIODS
        if not known:
            violations.add(f"{where}.period", "must be RATE_PERIOD_SECOND or RATE_PERIOD_MINUTE")
        if limit.burst < 0:
            violations.add(f"{where}.burst", "must not be negative")
        if limit.method in (r.method for r in rules):
            violations.add(f"{where}.method", f"{limit.method!r} has a rule already")
        period = (
            RatePeriod(limit.period) if limit.period in (p.value for p in RatePeriod) else RatePeriod.SECOND
        )
        rules.append(RateRule(limit.method, limit.requests, period, limit.burst))
    return tuple(rules)


def _delay(message: pb.Policies, name: str, violations: Violations) -> timedelta:
    value = timedelta_of(getattr(message, name))
    if not timedelta(0) <= value <= LONGEST_DELAY:
        violations.add(f"policies.{name}", "must be between 0 and 1 hour")
    return value


def policies_from(current: Policies, request: pb.UpdatePoliciesRequest) -> Policies:
    """``current`` with the request's changes, or INVALID_ARGUMENT naming every bad field."""
    violations = Violations()
    paths = list(request.update_mask.paths) or list(PATHS)
    for path in paths:
        if path not in PATHS:
            violations.add("update_mask", f"{path!r} is not a policy; policies are {', '.join(PATHS)}")
    message, changes = request.policies, dict[str, Any]()
    if "auth_mode" in paths:
        if message.auth_mode not in (m.value for m in AuthMode):
            violations.add("policies.auth_mode", "must be AUTH_MODE_NONE, AUTH_MODE_ANY or AUTH_MODE_JWT")
        else:
            changes["auth_mode"] = AuthMode(message.auth_mode)
    if "rate_limits" in paths:
        changes["rate_limits"] = _rules(message, violations)
    if request.rate_limit_preset:
        if request.rate_limit_preset not in PRESETS:
            violations.add("rate_limit_preset", f"must be one of {', '.join(PRESETS)}")
        changes["rate_limits"] = PRESETS.get(request.rate_limit_preset, ())
    for name in ("wake_up_delay_min", "wake_up_delay_max"):
        if name in paths:
            changes[name] = _delay(message, name, violations)
    if "unknown_values" in paths:
        changes["unknown_values"] = message.unknown_values
    if "poll_interval" in paths:
        changes["poll_interval"] = timedelta_of(message.poll_interval)
        if not timedelta(0) < changes["poll_interval"] <= timedelta(days=1):
            violations.add("policies.poll_interval", "must be more than 0 and at most a day")
    updated = dataclasses.replace(current, **changes)
    if updated.wake_up_delay_min > updated.wake_up_delay_max:
        violations.add("policies.wake_up_delay_min", "must not be longer than wake_up_delay_max")
    violations.raise_if_any(reasons.FIELD_INVALID)
    return updated


class PoliciesAdmin:
    namespaces: Namespaces

    async def GetPolicies(self, request: pb.GetPoliciesRequest, context: Context) -> pb.GetPoliciesResponse:
        namespace = await self.namespaces.current()
        return pb.GetPoliciesResponse(policies=policies_message(namespace.policies))

    async def UpdatePolicies(
        self, request: pb.UpdatePoliciesRequest, context: Context
    ) -> pb.UpdatePoliciesResponse:
        namespace = await self.namespaces.current()
        await namespace.set_policies(policies_from(namespace.policies, request))
        return pb.UpdatePoliciesResponse(policies=policies_message(namespace.policies))
