"""Rate-limit tables: the ``seed-001`` preset and the YAML file format, both read into ``RateRule``s.

A file is a YAML list of rules, one per RPC, in the shape of seed 001's table::

    - method: GetVehicle     # a method name, a full name, or "*" for every RPC without a rule
      rate: 1/s              # requests per second (1/s) or per minute (30/m)
      burst: 2               # optional: requests allowed at once beyond the rate

``rules_from`` takes a preset name or a file path and raises ``RateRulesError`` naming what is wrong.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from fleet_emulator.domain.policies import RatePeriod, RateRule

RATE = re.compile(r"\s*(\d+)\s*(?:r\s*)?/\s*([sm])\s*")
PERIODS = {"s": RatePeriod.SECOND, "m": RatePeriod.MINUTE}

# Seed 001's table, mapped onto this API: light reads per second with a small burst, heavy reads and
# commands per minute, streams unlimited (a blank cell in seed 001's table).
SEED_001 = (
    RateRule("GetFleet", 1, RatePeriod.SECOND, burst=2),
    RateRule("ListFleets", 4, RatePeriod.MINUTE, burst=2),
    RateRule("GetVehicle", 1, RatePeriod.SECOND),
    RateRule("ListVehicles", 10, RatePeriod.MINUTE),
    RateRule("PollVehicleEvents", 30, RatePeriod.MINUTE, burst=10),
    RateRule("UpdateVehicle", 1, RatePeriod.SECOND),
    RateRule("WakeUpVehicle", 10, RatePeriod.MINUTE),
    RateRule("HonkHorn", 10, RatePeriod.MINUTE),
    RateRule("FlashLights", 10, RatePeriod.MINUTE),
)
PRESETS = {"seed-001": SEED_001, "off": ()}


class RateRulesError(ValueError):
    """A rate-limit table that cannot be used; the message names the file, rule and field."""


def parse_rate(text: str) -> tuple[int, RatePeriod]:
    match = RATE.fullmatch(text)
    if not match or int(match.group(1)) < 1:
        raise ValueError(f"rate {text!r} is not like 1/s or 30/m (at least 1 request)")
    return int(match.group(1)), PERIODS[match.group(2)]


def _rule(item: Any, where: str) -> RateRule:
    if not isinstance(item, dict) or set(item) - {"method", "rate", "burst"}:
        raise RateRulesError(f"{where}: a rule has the keys method, rate and burst (optional)")
    method, rate, burst = item.get("method"), item.get("rate"), item.get("burst", 0)
    if not isinstance(method, str) or not method:
        raise RateRulesError(f"{where}.method: is required, a method name or '*'")
    if not isinstance(burst, int) or isinstance(burst, bool) or burst < 0:
        raise RateRulesError(f"{where}.burst: must be a whole number, 0 or more")
    try:
        requests, period = parse_rate(str(rate))
    except ValueError as exc:
        raise RateRulesError(f"{where}.rate: {exc}") from exc
    return RateRule(method, requests, period, burst)


def parse_rules(text: str, source: str) -> tuple[RateRule, ...]:
    try:
        items = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RateRulesError(f"{source}: not YAML: {exc}") from exc
    if not isinstance(items, list):
        raise RateRulesError(f"{source}: must be a YAML list of rules")
    rules = tuple(_rule(item, f"{source}[{index}]") for index, item in enumerate(items))
    methods = [r.method for r in rules]
    if len(set(methods)) != len(methods):
        raise RateRulesError(f"{source}: each method may have one rule only")
    return rules


def rules_from(preset_or_path: str) -> tuple[RateRule, ...]:
    """The rules of a preset (``seed-001``, ``off``) or of a YAML file."""
    if preset_or_path in PRESETS:
        return PRESETS[preset_or_path]
    path = Path(preset_or_path)
    if not path.is_file():
        raise RateRulesError(f"{preset_or_path}: neither a preset ({', '.join(PRESETS)}) nor a file")
    return parse_rules(path.read_text(), str(path))
