"""The backend protocol the domain uses, in three parts bundled as a ``Backend``.

``StateStore`` keeps fleets, vehicles, page cursors and what vehicle commands share between replicas
(execution counts, results remembered under idempotency keys); listing is key-set paginated (``list_*``
return items whose id sorts after ``after_id``, in id order, at most ``limit``). ``EventLog`` keeps the
durable event streams, with Redis stream entry ids and a time-window retention. ``StateFeed`` fans the
latest vehicle states out to live subscribers, conflated per vehicle. ``ControlStore`` keeps what steers a
namespace (policies, fault rules and their counts, rate-limit buckets, scheduled wake-ups) and ``ClockStore``
the emulator's clock and ``NamespaceRegistry`` the namespaces, so that replicas on one Redis act as one
process. Every implementation runs the one
contract suite in ``tests/contract``; backend-specific failures are mapped at the backend's boundary to
``domain.errors.Unavailable``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from fleet_emulator.domain.events import Event, LogEntry
from fleet_emulator.domain.faults import FaultRule
from fleet_emulator.domain.journal import JournalEntry, JournalQuery
from fleet_emulator.domain.message_ids import MessageId
from fleet_emulator.domain.models import Fleet, Vehicle
from fleet_emulator.domain.paging import PageCursor
from fleet_emulator.domain.policies import Policies
from fleet_emulator.domain.scenario import Scenario


class StateStore(Protocol):
    async def ping(self) -> None:
        """Return when the backend can serve calls; raise ``Unavailable`` when it cannot."""
        ...

    async def clear(self) -> None:
        """Remove every fleet, vehicle, page cursor, command count and remembered command result."""
        ...

    async def claim_seeding(self) -> bool:
        """True for the first caller since the store was created empty or cleared, False for any later one.

        A replica that starts against state that is already there (Redis) leaves it alone.
        """
        ...

    async def put_fleet(self, fleet: Fleet) -> None: ...

    async def put_all(self, fleets: Sequence[Fleet], vehicles: Sequence[Vehicle]) -> None:
        """Create or replace many fleets and vehicles, as ``put_fleet`` and ``put_vehicle`` would one by one
        (a scenario's: thousands at once)."""
        ...

    async def get_fleet(self, fleet_id: str) -> Fleet | None: ...

    async def list_fleets(self, after_id: str, limit: int) -> list[Fleet]: ...

    async def delete_fleet(self, fleet_id: str) -> bool:
        """Delete a fleet and its vehicles; False when there was no such fleet."""
        ...

    async def put_vehicle(self, vehicle: Vehicle) -> None:
        """Create or replace a vehicle (it may move to another fleet)."""
        ...

    async def replace_vehicle(self, old: Vehicle, new: Vehicle) -> bool:
        """Store ``new`` if the stored vehicle is still ``old`` (atomic: of concurrent callers with one
        ``old``, one stores); False, storing nothing, when it changed or is gone."""
        ...

    async def get_vehicle(self, vehicle_id: str) -> Vehicle | None: ...

    async def list_vehicles(self, fleet_id: str, after_id: str, limit: int) -> list[Vehicle]: ...

    async def count_vehicles(self, fleet_id: str) -> int: ...

    async def delete_vehicle(self, vehicle_id: str) -> bool: ...

    async def save_cursor(self, token: str, cursor: PageCursor, keep_for: timedelta) -> None:
        """Store a page cursor; it may be forgotten once ``keep_for`` has passed."""
        ...

    async def load_cursor(self, token: str) -> PageCursor | None: ...

    async def count_command(self, vehicle_id: str, command: str) -> int:
        """Count one more execution of ``command`` by the vehicle, atomically; returns the count with it."""
        ...

    async def remember_command(self, key: str, record: str, now: datetime, until: datetime) -> str | None:
        """Keep ``record`` under ``key`` until ``until`` on the emulator's clock, unless a record kept there
        has not expired at ``now``: None when it was stored, else the record kept (atomic: of concurrent
        callers, one stores)."""
        ...

    async def replace_command(self, key: str, record: str, now: datetime, until: datetime) -> None:
        """Replace the record kept under ``key`` (a claim by its result)."""
        ...

    async def forget_command(self, key: str) -> None:
        """Drop the record kept under ``key`` (a claim whose command failed)."""
        ...


class Tail(Protocol):
    async def wait(self, after: MessageId, limit: int, wait_s: float) -> list[LogEntry]:
        """Like ``EventLog.read``, but when nothing follows ``after`` yet, wait up to ``wait_s`` seconds for
        the first entry (an empty list when none came)."""
        ...


class EventLog(Protocol):
    async def append(
        self, stream: str, event: Event, now: datetime, keep_after: datetime, max_length: int = 0
    ) -> MessageId:
        """Append an event with an id at ``now`` (never below the last id) and drop entries before
        ``keep_after`` and, when ``max_length`` is set, the oldest beyond that many; each entry records the
        id of the entry appended before it."""
        ...

    async def append_once(
        self, stream: str, event: Event, now: datetime, keep_after: datetime, max_length: int = 0
    ) -> tuple[MessageId, bool]:
        """Like ``append`` (the id and True), unless an event with this id was appended with
        ``append_once`` and is still retained: then nothing is appended (its id and False). Atomic: of
        concurrent callers with one event id, one appends."""
        ...

    async def read(self, stream: str, after: MessageId, limit: int) -> list[LogEntry]:
        """Up to ``limit`` retained entries after ``after``, oldest first."""
        ...

    def tail(self, stream: str) -> AbstractAsyncContextManager[Tail]:
        """A reader of one subscriber that can wait for new entries; what it holds is freed on exit. The
        readers of one stream may share what they read (one blocking read per stream on Redis), but each
        waits from its own cursor."""
        ...

    async def last_id(self, stream: str) -> MessageId:
        """The id of the last entry ever appended to the stream, even if trimmed since; ZERO if none."""
        ...

    async def trim(self, stream: str, keep_after: datetime) -> None:
        """Drop the entries whose id time is before ``keep_after``."""
        ...

    async def clear(self) -> None: ...

    async def ping(self) -> None:
        """Like ``StateStore.ping``, for what the log reads and writes with (its own client, on Redis)."""
        ...

    async def close(self) -> None:
        """Stop what the log runs for its tails; a tail still in use fails with ``Unavailable``."""
        ...


class StateSubscription(Protocol):
    pending: dict[str, Vehicle]
    """States delivered but not yet taken: at most one per vehicle."""

    def __aiter__(self) -> AsyncIterator[Vehicle]:
        """The latest state of each changed vehicle, at most one pending per vehicle (conflation)."""
        ...


class StateFeed(Protocol):
    async def publish(self, vehicle: Vehicle) -> None:
        """Send a vehicle's new full state to every subscriber of its fleet, on every replica."""
        ...

    def subscribe(
        self, fleet_id: str, vehicle_ids: Iterable[str] = ()
    ) -> AbstractAsyncContextManager[StateSubscription]:
        """Subscribe to a fleet's vehicles (all of them, or only ``vehicle_ids``) until the context ends."""
        ...

    async def close(self) -> None: ...


class ControlStore(Protocol):
    """What steers one namespace. ``version`` changes with every change of the policies or the fault rules,
    so that a process re-reads them only then; counts and buckets change atomically in the store."""

    async def version(self) -> str: ...

    async def policies(self) -> Policies | None:
        """The policies set for the namespace; None while it has its starting ones."""
        ...

    async def set_policies(self, policies: Policies | None, rates_changed: bool) -> None:
        """Set the policies (None: back to the starting ones); with ``rates_changed``, every rate-limit
        bucket starts full again."""
        ...

    async def rules(self) -> list[FaultRule]:
        """The fault rules in creation order, each with its ``hits``."""
        ...

    async def add_rule(self, rule: FaultRule, limit: int) -> bool:
        """Add a rule unless ``limit`` rules are kept already (then False)."""
        ...

    async def delete_rule(self, rule_id: str) -> bool: ...

    async def clear_rules(self) -> int: ...

    async def draw(self, rule_id: str) -> int | None:
        """Count one more draw of a rule's generator: its number (from 1), None when the rule is gone."""
        ...

    async def hit(self, rule_id: str, times: int) -> bool:
        """Count a hit of a rule acting on ``times`` calls (0: any number); False when it is gone or
        spent. A rule is removed with its last hit."""
        ...

    async def take_token(
        self, bucket: str, capacity: int, requests: int, period_us: int, now_us: int
    ) -> tuple[bool, int]:
        """Refill a token bucket holding at most ``capacity`` tokens, getting ``requests`` back every
        ``period_us`` microseconds of the emulator's clock, then take one token if it holds one
        (``rate_limits.take_units``). Amounts are in units of 1/``period_us`` token. Returns whether a
        token was taken and the units left. A new bucket is full."""
        ...

    async def scenario(self) -> Scenario | None:
        """The scenario loaded into the namespace (``LoadScenario``), which a reset goes back to; None
        while it has the emulator's."""
        ...

    async def set_scenario(self, scenario: Scenario | None) -> None:
        """Keep the namespace's scenario (None: the emulator's again); ``clear`` keeps it."""
        ...

    async def schedule_wake_up(self, vehicle_id: str, due: datetime) -> None: ...

    async def due_wake_ups(self, now: datetime) -> list[str]:
        """The vehicles whose scheduled wake-up is due at ``now``."""
        ...

    async def forget_wake_up(self, vehicle_id: str) -> None: ...

    async def clear(self) -> None:
        """Forget policies, rules, buckets and wake-ups (not the scenario)."""
        ...


class JournalStore(Protocol):
    """The finished calls of a namespace, journaled by every replica (Redis); the memory backend has none:
    there the process's own journal is the journal."""

    async def sequence(self) -> int:
        """The next sequence number of the namespace's journal."""
        ...

    async def keep(self, entry: JournalEntry, capacity: int, budget_bytes: int) -> None:
        """Keep a finished entry (numbered now if it has no sequence number yet); the oldest entries go
        beyond ``capacity`` entries or ``budget_bytes``."""
        ...

    async def entries(self) -> list[JournalEntry]:
        """Every entry kept, in the order they were kept."""
        ...

    async def find(self, query: JournalQuery) -> list[JournalEntry]:
        """The entries the query admits, oldest first, at most ``query.limit``: filtered on what it asks
        before any entry is read whole."""
        ...

    async def clear(self) -> int: ...


class NamespaceRegistry(Protocol):
    """The namespaces that exist, whichever replica made them, and which have wake-ups due."""

    async def add(self, name: str, limit: int) -> bool:
        """Register a namespace; False, registering nothing, when ``limit`` others exist already."""
        ...

    async def remove(self, name: str) -> None: ...

    async def announce_deleted(self, name: str) -> None:
        """Tell every replica that the namespace was deleted, so that each cuts off its calls in it."""
        ...

    def deletions(self) -> AsyncIterator[str]:
        """The namespaces other replicas deleted, as announced, until the connection fails (then an
        exception: the caller listens again); nothing on the memory backend, whose one process knows."""
        ...

    async def dropped(self, name: str) -> None:
        """A process dropped the namespace for being idle: forgotten where its state goes with it (memory),
        kept where the state stays for other replicas (Redis)."""
        ...

    async def with_wake_ups_due(self, now: datetime) -> list[str]:
        """The namespaces with a wake-up due at ``now``, scheduled by any replica
        (``ControlStore.schedule_wake_up``)."""
        ...


class Lease(Protocol):
    """One task that only one replica may run at a time (the simulator): whoever holds the lease."""

    async def hold(self, ttl: timedelta) -> bool:
        """Whether this process holds the lease now: taken when free, kept while renewed within ``ttl``."""
        ...


class ClockStore(Protocol):
    """Where the virtual clock is kept so that every replica reads the same time."""

    async def load(self) -> datetime | None:
        """The virtual clock's time, None on real time."""
        ...

    async def save(self, frozen: datetime | None) -> None: ...

    async def advance(self, by: timedelta, real_now: datetime) -> datetime:
        """Move the virtual clock (from ``real_now`` when on real time) atomically; its new time."""
        ...


@dataclass(frozen=True)
class Backend:
    state: StateStore
    events: EventLog
    feed: StateFeed
    control: ControlStore
    journal: JournalStore | None = None  # shared by the replicas (Redis), else the process's own journal

    async def clear(self) -> None:
        await self.state.clear()
        await self.events.clear()
        await self.control.clear()
        if self.journal is not None:
            await self.journal.clear()

    async def ping(self) -> None:
        """Return when state and events can be served; ``Unavailable`` when either cannot."""
        await self.state.ping()
        await self.events.ping()

    async def close(self) -> None:
        """Free what the namespace's backend holds of its own (a shared client is closed by its owner)."""
        await self.feed.close()
        await self.events.close()
