"""Shared tails of Redis streams: one blocking reader per stream and process, however many subscribers.

A ``SharedTail`` runs one task that reads its stream with ``XREAD BLOCK`` from an explicit last id (never
``$``, no consumer groups) on a connection of its own, from the stream's last id when it starts; it decodes
each entry once and keeps the newest in a bounded window, which covers every entry after its ``base`` up to
its ``head`` (each entry names its predecessor, so a hole in what was read starts the window afresh), and
wakes the subscribers waiting at its head. A subscriber's ``RedisTail`` holds nothing but the shared tail:
its cursor is the ``after`` it passes. A cursor inside the window is answered from memory, one at the head
waits for the reader, and one behind the window (a subscriber that starts behind, or one the window moved
past) replays with ``XRANGE`` until it reaches the window, subscribers asking the same replay at the same
time sharing one read: no gap, no duplicate, and a slow subscriber never makes the window grow. When the
reader loses Redis, every subscriber's next ``wait`` raises ``Unavailable`` and the log starts a new shared
tail for the next subscriber; the reader stops when the last subscriber leaves or the log closes, and reads
again from the last id after a reset (``restart``). While idle, it also checks the stream's last id, so
that a reset by another replica is noticed.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import contextvars
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis

from fleet_emulator.backends.event_bytes import JSON, PROTOBUF
from fleet_emulator.backends.event_bytes import entry as log_entry
from fleet_emulator.backends.redis_errors import FAILURES, unavailable
from fleet_emulator.domain.background import keep_cancellation, stop_task
from fleet_emulator.domain.errors import Unavailable
from fleet_emulator.domain.events import LogEntry
from fleet_emulator.domain.message_ids import ZERO, MessageId
from fleet_emulator.telemetry.metrics import REDIS

log = logging.getLogger(__name__)

DECODED_CACHE_SIZE = 2_000  # per namespace: the entries being read now
WINDOW = 2_000  # entries a shared tail keeps for the subscribers at or near its head
BLOCK_MS = 1_000  # each XREAD BLOCK of a shared tail (then it checks whether the stream was reset)

Replay = Callable[[MessageId, int], Awaitable[list[LogEntry]]]
Connect = Callable[[str], Awaitable[aioredis.Redis]]  # a client on a connection of its own, for a key


class DecodedEntries:
    """Stream entries decoded once per process: every subscriber of a stream reads the same entries."""

    def __init__(self, size: int = DECODED_CACHE_SIZE) -> None:
        self.size = size
        self._cache: OrderedDict[tuple[str, str], LogEntry] = OrderedDict()

    def of(self, raw: list[Any]) -> list[LogEntry]:
        return [self._entry(entry_id, fields) for entry_id, fields in raw]

    def _entry(self, entry_id: str, fields: dict[str, str]) -> LogEntry:
        key = (entry_id, fields.get(PROTOBUF) or fields[JSON])  # after a reset, an id may name another event
        entry = self._cache.get(key)
        if entry is None:
            entry = self._cache[key] = log_entry(entry_id, fields)
            if len(self._cache) > self.size:
                self._cache.popitem(last=False)  # the oldest decoded, in O(1)
        return entry


def _consume_outcome(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()


class SharedTail:
    """The one blocking reader of a stream in this process, and the window of entries it read last."""

    def __init__(
        self,
        connect: Connect,
        key: str,
        last_key: str,
        entries: DecodedEntries,
        replay: Replay,
        window: int = WINDOW,
        block_ms: int = BLOCK_MS,
    ) -> None:
        self.connect = connect
        self.key = key
        self.last_key = last_key
        self._replay = replay
        self._replays: dict[tuple[MessageId, int], asyncio.Task[list[LogEntry] | Exception]] = {}
        self.entries = entries
        self.size = window
        self.block_ms = block_ms
        self.subscribers = 0
        self.base: MessageId | None = None  # the window holds every entry after it; None until started
        self.head: MessageId | None = None  # the last id read (the base while the window is empty)
        self._ids: list[MessageId] = []
        self._window: list[LogEntry] = []
        self._changed = asyncio.Event()  # replaced whenever the window or the state changes
        self._failure: BaseException | None = None
        self._stopped = False
        self._generation = 0  # a reader of an older generation changes nothing, even if it runs on
        self._task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        """How many entries the window holds (at most its size)."""
        return len(self._window)

    @property
    def failed(self) -> bool:
        return self._failure is not None

    def start(self) -> None:
        """Start a reader from the stream's last id, forgetting the window."""
        self._generation += 1
        self.base = self.head = None
        self._ids, self._window = [], []
        self._task = asyncio.create_task(  # a context of its own: it serves no one call
            self._read(self._generation), name=f"redis-tail {self.key}", context=contextvars.Context()
        )
        self._task.add_done_callback(_consume_outcome)
        self._wake()

    async def restart(self) -> None:
        """Read again from the stream's last id (the stream was deleted: ids may start again lower)."""
        if self._stopped or self.failed:
            return
        old = self._task
        self.start()
        if old is not None:
            await stop_task(old)

    async def stop(self, failure: BaseException | None = None) -> None:
        """Stop the reader; with ``failure``, the subscribers still holding the tail get it."""
        self._stopped = True
        self._generation += 1
        if failure is not None and self._failure is None:
            self._failure = failure
            self._wake()
        task = self._task
        if task is not None:
            task.cancel()
            await stop_task(task)

    def check(self) -> None:
        """Raise ``Unavailable`` once the reader has failed."""
        if self._failure is not None:
            raise unavailable(self._failure) from self._failure

    def continues_from(self, cursor: MessageId) -> bool:
        """Whether the window goes on from ``cursor``: its base, or an id it holds. A cursor between its
        ids comes from another history of the stream (reset by another replica): it replays instead."""
        if cursor == self.base:
            return True
        found = bisect.bisect_left(self._ids, cursor)
        return found < len(self._ids) and self._ids[found] == cursor

    def after(self, cursor: MessageId, limit: int) -> list[LogEntry]:
        """The window's entries after ``cursor`` (at most ``limit``); complete when ``cursor >= base``."""
        start = bisect.bisect_right(self._ids, cursor)
        return self._window[start : start + limit]

    async def replay(self, after: MessageId, limit: int) -> list[LogEntry]:
        """The retained entries after ``after`` (``XRANGE``), one read for every subscriber asking the same
        at the same time: those behind a reader that has just started, say, all at one cursor."""
        running = self._replays.get((after, limit))
        if running is None:
            running = asyncio.create_task(self._replay_once(after, limit), context=contextvars.Context())
            self._replays[after, limit] = running
            running.add_done_callback(lambda _: self._replays.pop((after, limit), None))
        outcome = await asyncio.shield(running)  # a subscriber going away leaves the others their read
        if isinstance(outcome, Unavailable):
            raise unavailable(outcome.__cause__ or outcome) from outcome.__cause__
        if isinstance(outcome, Exception):
            raise outcome
        return list(outcome)

    async def _replay_once(self, after: MessageId, limit: int) -> list[LogEntry] | Exception:
        try:
            return await self._replay(after, limit)
        except Exception as exc:  # each waiter raises its own (a shared exception would gather tracebacks)
            return exc

    async def changed(self, timeout_s: float) -> None:
        """Return when the window or the state changes, or after ``timeout_s``."""
        changed = self._changed
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await changed.wait()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _begin(self, head: MessageId) -> None:
        self.base = self.head = head
        self._ids.clear()
        self._window.clear()
        self._wake()

    def _add(self, batch: list[LogEntry]) -> None:
        for entry in batch:
            if entry.previous_id != self.head:  # trimmed before it was read, or the stream began again
                self._ids.clear()
                self._window.clear()
                self.base = entry.previous_id
            self._ids.append(entry.message_id)
            self._window.append(entry)
            self.head = entry.message_id
        excess = len(self._window) - self.size
        if excess > 0:
            self.base = self._ids[excess - 1]
            del self._ids[:excess], self._window[:excess]
        self._wake()

    async def _read(self, generation: int) -> None:
        client: aioredis.Redis | None = None
        try:
            client = await self.connect(self.key)  # on a cluster: the master of the stream's slot, now
            last = await self._last_id(client)
            if generation == self._generation:
                self._begin(last)
            while generation == self._generation:  # also ends a reader whose cancellation was lost
                assert self.head is not None
                streams: dict[Any, Any] = {self.key: str(self.head)}
                answer: Any = await client.xread(streams, count=self.size, block=self.block_ms)
                keep_cancellation()
                REDIS.answered()
                if generation != self._generation:
                    break
                if answer:
                    self._add(self.entries.of(answer[0][1]))
                    continue
                last = await self._last_id(client)  # idle: was the stream deleted (by another replica)?
                if generation == self._generation and last < self.head:
                    self._begin(last)
        except FAILURES as exc:
            if generation == self._generation:
                REDIS.failed("tail")
                log.warning("the tail of %s lost Redis (%s); its streams end with UNAVAILABLE", self.key, exc)
                self._failure = exc
                self._wake()
        except Exception as exc:
            if generation == self._generation:
                log.exception("the tail of %s failed; its streams end with UNAVAILABLE", self.key)
                self._failure = exc
                self._wake()
        finally:
            if client is not None:
                with contextlib.suppress(*FAILURES):
                    await client.aclose()

    async def _last_id(self, client: aioredis.Redis) -> MessageId:
        raw: Any = await client.get(self.last_key)
        keep_cancellation()
        return MessageId.parse(raw) if raw else ZERO


class RedisTail:
    """One subscriber's reader: the shared tail of its stream, or an ``XRANGE`` replay when its cursor is
    behind the window. It holds no cursor and no buffer: the cursor is ``after``."""

    def __init__(self, shared: SharedTail) -> None:
        self.shared = shared

    async def wait(self, after: MessageId, limit: int, wait_s: float) -> list[LogEntry]:
        shared = self.shared
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while True:
            shared.check()
            if shared.base is not None and shared.head is not None:
                if after < shared.base or (after < shared.head and not shared.continues_from(after)):
                    head = shared.head
                    entries = await shared.replay(after, limit)
                    if entries:
                        return entries
                    shared.check()  # nothing is retained after ``after`` (trimmed, or a reset): the next
                    if shared.head != head:  # entry shows the caller the gap
                        continue
                elif after < shared.head:
                    return shared.after(after, limit)
            left = deadline - loop.time()
            if left <= 0:
                return []
            await shared.changed(left)
