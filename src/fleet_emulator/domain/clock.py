"""The emulator's notion of time: real by default, or a virtual clock that tests set and advance.

Everything that depends on time reads it here (stream ids and retention, page-token expiry, token expiry,
wake-ups, the simulator), so moving the clock moves all of them together. One clock serves every namespace.
A virtual clock stays within ``EARLIEST`` and ``LATEST``: message ids count milliseconds since 1970, and
tokens, page tokens and wake-ups lie up to 30 days ahead of the clock, which must still be a date Python,
protobuf and Redis can hold. Setting or advancing it outside is ``INVALID_ARGUMENT`` naming the range.
The virtual time is kept in a ``ClockStore`` (in Redis for replicas, which read it at the start of every
call with ``refresh``), so that a clock moved through one replica is the clock of all.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

from fleet_emulator.backends.base import ClockStore
from fleet_emulator.domain import reasons
from fleet_emulator.domain.errors import FieldViolation, InvalidArgument

EARLIEST = datetime(1970, 1, 2, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
RANGE = f"{EARLIEST:%Y-%m-%dT%H:%M:%SZ} to {LATEST:%Y-%m-%dT%H:%M:%SZ}"


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware in UTC."""
        ...


def _outside(field: str, where: str) -> InvalidArgument:
    problem = f"would put the clock {where}, outside the allowed range {RANGE}"
    return InvalidArgument(reasons.FIELD_INVALID, [FieldViolation(field, problem)])


def check_in_range(when: datetime, field: str) -> datetime:
    """``when`` if a virtual clock may stand there, else INVALID_ARGUMENT on ``field``."""
    if not EARLIEST <= when <= LATEST:
        raise _outside(field, f"at {when:%Y-%m-%dT%H:%M:%SZ}")
    return when


class EmulatorClock:
    """Real time until set or advanced; from then on virtual: it moves only when told to."""

    def __init__(self, start: datetime | None = None, store: ClockStore | None = None) -> None:
        self._frozen = start
        self.store = store

    @property
    def virtual(self) -> bool:
        return self._frozen is not None

    def now(self) -> datetime:
        return self._frozen if self._frozen is not None else datetime.now(UTC)

    async def refresh(self) -> None:
        """Read the clock kept in the store (where one is shared)."""
        if self.store is not None:
            self._frozen = await self.store.load()

    async def set(self, when: datetime, field: str = "time") -> None:
        check_in_range(when, field)
        if self.store is not None:
            await self.store.save(when)
        self._frozen = when

    async def advance(self, by: timedelta, field: str = "by") -> None:
        await self.refresh()
        now = self.now()
        if by > LATEST - now:
            raise _outside(field, f"{by.days} days ahead")
        check_in_range(now + by, field)
        if self.store is not None:
            self._frozen = check_in_range(await self.store.advance(by, datetime.now(UTC)), field)
        else:
            self._frozen = now + by

    async def use_real_time(self) -> None:
        if self.store is not None:
            await self.store.save(None)
        self._frozen = None
