"""Namespaces: parallel test jobs share one emulator without seeing each other.

A call names its namespace in the ``x-emulator-namespace`` header (none: the default namespace). Each
namespace has its own backend state (fleets, vehicles, page tokens, event streams), fault rules, call
journal, scenario, policies (``policies.py``) and rate-limit buckets; the clock is shared. Policies, fault
rules, buckets and wake-ups live in the backend's ``ControlStore``; a namespace reads what changed there
(``refresh``) when a call gets it, so replicas on one Redis see one set. A namespace
comes into being, seeded with the emulator's scenario, on the first call that names it, up to
``NamespaceLimits.max_namespaces`` besides the default one (then ``RESOURCE_EXHAUSTED``).

A namespace other than the default one goes away when deleted (``delete``: its backend state too, and its
calls still running are cut off) or when it has been idle, with no call running, for
``NamespaceLimits.idle_timeout`` (``drop_idle``: on the memory backend its state goes with it; on Redis
the state stays there for other replicas, and only what this process holds is freed). Journals share one
byte budget (``journal.JournalPool``).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import timedelta

from fleet_emulator.backends.base import Backend, NamespaceRegistry
from fleet_emulator.domain import reasons
from fleet_emulator.domain.clock import EmulatorClock
from fleet_emulator.domain.emulation import Emulation
from fleet_emulator.domain.errors import (
    EmulatorError,
    FieldViolation,
    InvalidArgument,
    QuotaViolation,
    ResourceExhausted,
    Unavailable,
)
from fleet_emulator.domain.fault_book import FaultBook
from fleet_emulator.domain.journal import BUDGET_BYTES, TOTAL_BUDGET_BYTES, Journal, JournalPool
from fleet_emulator.domain.policies import DEFAULT_POLICIES, Policies
from fleet_emulator.domain.rate_limits import RateLimiter
from fleet_emulator.domain.scenario import Scenario
from fleet_emulator.domain.streams import StreamSettings

NAMESPACE_HEADER = "x-emulator-namespace"
DEFAULT = ""
NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
RETRY_WHEN_FULL = timedelta(seconds=60)
RETRY_AFTER_CUT_OFF = timedelta(seconds=1)

current_namespace: ContextVar[str] = ContextVar("current_namespace", default=DEFAULT)
# the namespace a call of the emulated API settled when it began (``Namespaces.for_call``)
_call_namespace: ContextVar[Namespace | None] = ContextVar("call_namespace", default=None)


@dataclass(frozen=True)
class NamespaceLimits:
    max_namespaces: int = 1000  # besides the default one
    idle_timeout: timedelta = timedelta(hours=1)  # zero: never dropped for being idle
    journal_bytes: int = BUDGET_BYTES  # per namespace
    journal_total_bytes: int = TOTAL_BUDGET_BYTES  # all namespaces together


DEFAULT_LIMITS = NamespaceLimits()


@dataclass(eq=False)
class Namespace:
    name: str
    emulation: Emulation
    scenario: Scenario
    journal: Journal
    initial_policies: Policies = DEFAULT_POLICIES
    faults: FaultBook = field(init=False)
    rate_limiter: RateLimiter = field(init=False)
    policies: Policies = field(init=False)  # as of the last refresh
    calls: set[asyncio.Task[object]] = field(default_factory=set)  # calls of the emulated API running now
    streams: set[asyncio.Task[object]] = field(default_factory=set)  # those of them that are server streams
    last_used: float = field(default_factory=time.monotonic)
    cut_off: EmulatorError | None = None  # what its calls end with once cancelled by the emulator
    _version: str | None = None  # of the control store's policies and rules last read

    def __post_init__(self) -> None:
        control = self.emulation.backend.control
        self.policies = self.initial_policies
        self.faults = FaultBook(control)
        self.rate_limiter = RateLimiter(control)

    async def refresh(self) -> None:
        """Read the policies and fault rules again if they changed in the control store."""
        control = self.emulation.backend.control
        version = await control.version()
        if version == self._version:
            return
        self.policies = await control.policies() or self.initial_policies
        self.faults.refreshed(await control.rules())
        self._version = version

    async def set_policies(self, policies: Policies) -> None:
        rates_changed = policies.rate_limits != self.policies.rate_limits
        await self.emulation.backend.control.set_policies(policies, rates_changed)
        await self.refresh()

    def enter(self, call: asyncio.Task[object], streaming: bool) -> None:
        self.calls.add(call)
        if streaming:
            self.streams.add(call)

    def leave(self, call: asyncio.Task[object]) -> None:
        self.calls.discard(call)
        self.streams.discard(call)
        self.last_used = time.monotonic()

    def cut(self, why: EmulatorError, streams_only: bool = False) -> None:
        """Cancel the running calls (or only the streams); each ends with ``why``."""
        self.cut_off = why
        for call in list(self.streams if streams_only else self.calls):
            call.cancel()

    async def reset(self) -> None:
        """Back to the namespace's scenario (the one loaded through any replica) and starting policies:
        state, streams, faults, journal, rate-limit buckets and wake-ups are forgotten."""
        self.scenario = await self.emulation.backend.control.scenario() or self.scenario
        await self.emulation.reset(self.scenario)
        self.journal.forget_all()
        await self.refresh()

    async def load(self, scenario: Scenario) -> None:
        await self.emulation.backend.control.set_scenario(scenario)
        self.scenario = scenario
        await self.reset()


def check_name(name: str, where: str = NAMESPACE_HEADER) -> None:
    if name != DEFAULT and not NAME.fullmatch(name):
        problem = (
            "must be 1 to 63 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
        raise InvalidArgument(reasons.FIELD_INVALID, [FieldViolation(where, problem)])


class Namespaces:
    def __init__(
        self,
        make_backend: Callable[[str], Backend],
        registry: NamespaceRegistry,
        clock: EmulatorClock,
        scenario: Scenario,
        stream_settings: StreamSettings | None = None,
        policies: Policies = DEFAULT_POLICIES,
        jwt_secret: str = "",
        limits: NamespaceLimits | None = None,
    ) -> None:
        """``registry`` comes with ``make_backend`` (``Backends.registry``): it sees their wake-ups."""
        self.make_backend = make_backend
        self.registry = registry
        self.policies = policies
        self.jwt_secret = jwt_secret  # HS256 secret of the bearer tokens (Settings.jwt_secret)
        self.clock = clock
        self.scenario = scenario
        self.stream_settings = stream_settings
        self.limits = limits or DEFAULT_LIMITS
        self.journals = JournalPool(self.limits.journal_total_bytes)
        self.default = self._build(DEFAULT)
        self._others: dict[str, asyncio.Task[Namespace]] = {}

    def _build(self, name: str) -> Namespace:
        emulation = Emulation.build(self.make_backend(name), self.clock, self.stream_settings)
        journal = self.journals.journal(
            budget_bytes=self.limits.journal_bytes, store=emulation.backend.journal
        )
        return Namespace(name, emulation, self.scenario, journal, self.policies)

    async def _create(self, name: str) -> Namespace:
        if not await self.registry.add(name, self.limits.max_namespaces):
            raise self._full()
        namespace = self._build(name)
        try:
            await namespace.emulation.fleets.seed(self.scenario)
        except BaseException:
            await self._free(namespace)
            raise
        return namespace

    async def get(self, name: str) -> Namespace:
        """The namespace called ``name``, created and seeded on first use."""
        if name == DEFAULT:
            return self.default
        check_name(name)
        creating = self._others.get(name)
        if creating is None:
            creating = self._others[name] = asyncio.ensure_future(self._create(name))
        try:
            namespace = await asyncio.shield(creating)
        except BaseException:
            if creating.done() and self._others.get(name) is creating:  # refused or failed: not kept, so
                del self._others[name]  # that names refused at the limit hold no memory
            raise
        namespace.last_used = time.monotonic()
        return namespace

    async def refreshed(self, name: str) -> Namespace:
        """The namespace called ``name`` (``get``), its policies and rules and the clock read again."""
        namespace = await self.get(name)
        await namespace.refresh()
        await self.clock.refresh()
        return namespace

    def _full(self) -> ResourceExhausted:
        most = self.limits.max_namespaces
        return ResourceExhausted(
            reasons.NAMESPACE_LIMIT_REACHED,
            f"the emulator holds {most} namespaces, as many as it may: delete one or wait for an idle one "
            "to be dropped",
            RETRY_WHEN_FULL,
            [QuotaViolation("emulator", f"at most {most} namespaces besides the default one")],
        )

    async def current(self) -> Namespace:
        """The namespace of the call, refreshed (``refreshed``); once per call where the call scope settled
        it as the call began (``for_call``)."""
        settled = _call_namespace.get()
        if settled is not None and settled.name == current_namespace.get():
            return settled
        return await self.refreshed(current_namespace.get())

    async def for_call(self) -> Namespace:
        """The namespace of the call, refreshed once for the whole call: its handler gets the same from
        ``current`` without reading the store again."""
        namespace = await self.refreshed(current_namespace.get())
        _call_namespace.set(namespace)
        return namespace

    def created(self) -> list[Namespace]:
        """Every namespace made so far (the default one first)."""
        made = [t.result() for t in self._others.values() if t.done() and t.exception() is None]
        return [self.default, *made]

    async def delete(self, name: str) -> bool:
        """Delete a namespace other than the default one, with its state; whether it existed."""
        check_name(name, "namespace")
        if name == DEFAULT:
            problem = "is required: the default namespace cannot be deleted (reset it with ResetEmulator)"
            raise InvalidArgument(reasons.FIELD_INVALID, [FieldViolation("namespace", problem)])
        creating = self._others.pop(name, None)
        namespace = None
        if creating is not None:
            with contextlib.suppress(EmulatorError):  # its seeding failed: the state is cleared anyway
                namespace = await asyncio.shield(creating)
        known = namespace is not None
        namespace = namespace or self._build(name)
        try:
            known = not await namespace.emulation.backend.state.claim_seeding() or known
            await namespace.emulation.backend.clear()
            await namespace.emulation.backend.control.set_scenario(None)
            await self.registry.remove(name)
            await self.registry.announce_deleted(name)
        finally:
            await self._free(namespace)
        return known

    async def follow_deletions(self) -> None:
        """Free what this process holds of each namespace another replica deletes, cutting off its calls
        (runs until cancelled; fails when the announcements cannot be heard, to be started again)."""
        async for name in self.registry.deletions():
            creating = self._others.get(name)
            if creating is None or not creating.done():  # not here, or being made afresh: nothing to free
                continue
            del self._others[name]
            if creating.exception() is None:
                await self._free(creating.result())

    async def drop_idle(self) -> list[str]:
        """Drop the namespaces idle for longer than the limit; their names."""
        idle_s = self.limits.idle_timeout.total_seconds()
        if idle_s <= 0:
            return []
        since = time.monotonic() - idle_s
        idle = [n for n in self.created()[1:] if not n.calls and n.last_used < since]
        for namespace in idle:
            del self._others[namespace.name]
            await self._free(namespace)
            await self.registry.dropped(namespace.name)
        return [n.name for n in idle]

    async def _free(self, namespace: Namespace) -> None:
        """Cut off the namespace's running calls and free what this process holds of it."""
        namespace.cut(
            Unavailable(
                reasons.NAMESPACE_DELETED,
                "the namespace was deleted while the call ran; calling again starts it afresh",
                RETRY_AFTER_CUT_OFF,
            )
        )
        self.journals.forget(namespace.journal)
        await namespace.emulation.backend.close()

    def end_streams(self) -> None:
        """End every open stream of every namespace with UNAVAILABLE (the emulator is stopping): streams do
        not end on their own, so there is no point in giving them a grace period, and their clients can
        resume elsewhere at once."""
        stopping = Unavailable(
            reasons.EMULATOR_STOPPING,
            "the emulator is stopping; resume the stream with its last message id (on another replica, or "
            "once it is back)",
            RETRY_AFTER_CUT_OFF,
        )
        for namespace in self.created():
            namespace.cut(stopping, streams_only=True)

    async def settle_wake_ups(self) -> None:
        """Bring online the vehicles of every namespace whose wake-up is due (``wake_ups.py``), whichever
        replica scheduled it: only the namespaces the registry names as having one due are visited."""
        await self.clock.refresh()
        for name in await self.registry.with_wake_ups_due(self.clock.now()):
            await (await self.get(name)).emulation.wake_ups.settle_due()

    async def close(self) -> None:
        for namespace in self.created():
            await namespace.emulation.backend.close()
