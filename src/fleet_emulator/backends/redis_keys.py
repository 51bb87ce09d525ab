"""Every Redis key the emulator uses, in one place, under one prefix so that a reset can find them all.

State: ``fleets`` and ``vehicles`` are hashes of id to JSON; ``fleet-ids`` and ``fleet:<id>:vehicle-ids``
are sorted sets with score 0, read in lexicographic order for key-set pages; ``cursor:<token>`` holds a
page cursor as JSON with an expiry;
``seeded`` marks state that a replica has already loaded a scenario into.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PREFIX = "fleet-emulator"


@dataclass(frozen=True)
class RedisKeys:
    prefix: str = DEFAULT_PREFIX

    @property
    def fleets(self) -> str:
        return f"{self.prefix}:fleets"

    @property
    def fleet_ids(self) -> str:
        return f"{self.prefix}:fleet-ids"

    @property
    def vehicles(self) -> str:
        return f"{self.prefix}:vehicles"

    def fleet_vehicle_ids(self, fleet_id: str) -> str:
        return f"{self.prefix}:fleet:{fleet_id}:vehicle-ids"

    @property
    def seeded(self) -> str:
        return f"{self.prefix}:seeded"

    def cursor(self, token: str) -> str:
        return f"{self.prefix}:cursor:{token}"

    @property
    def pattern(self) -> str:
        """Glob matching every key above."""
        return f"{self.prefix}:*"
