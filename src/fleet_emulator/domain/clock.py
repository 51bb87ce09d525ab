"""The emulator's notion of time: real by default, or a virtual clock that tests set and advance.

Everything that depends on time reads it here (stream ids and retention, page-token expiry, the
simulator), so moving the clock moves all of them together. One clock serves every namespace.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware in UTC."""
        ...


class EmulatorClock:
    """Real time until set or advanced; from then on virtual: it moves only when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self._frozen = start

    @property
    def virtual(self) -> bool:
        return self._frozen is not None

    def now(self) -> datetime:
        return self._frozen if self._frozen is not None else datetime.now(UTC)

    def set(self, when: datetime) -> None:
        self._frozen = when

    def advance(self, by: timedelta) -> None:
        self._frozen = self.now() + by

    def use_real_time(self) -> None:
        self._frozen = None
