"""Redis Streams event log and pub/sub state feed, shared by every emulator replica on one Redis.

Appending is one Lua script: the id is ``<now ms>-0``, or the last id's time with the next sequence when the
clock has not moved past it (so ids follow the emulator's clock, virtual or not), the entry records its
predecessor's id and the event as protobuf bytes (``event_bytes.py``), ``MINID`` trims the retention window
(and ``XTRIM MAXLEN`` the oldest entries beyond the stream's length limit) and the last id is kept in its own
key so that it outlives trimming. Each append carries a token kept beside the last id, so that an append
sent again after its connection broke (``once_more_if_stale``) appends nothing the second time.
``append_once`` first looks the event id up in a hash of the ids it appended (with a sorted set by time,
to forget them as their entries go) and answers the retained message id instead of appending. Replay is
``XRANGE`` with an exclusive start. Tailing is shared (``redis_tails.py``): the log keeps one ``SharedTail``
per stream with subscribers in this process, started with the first and stopped with the last, which does
the stream's one ``XREAD BLOCK`` on a connection of its own; each subscriber keeps only its cursor and
replays with ``XRANGE`` while it is behind the tail's window. A reset (``clear``) makes every shared tail
read again from the stream's last id. Entries are decoded once per process, whatever the number of
readers. The state feed publishes full states on one channel per fleet; each process runs one listener
that delivers them to its local subscribers.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import json
import logging
import secrets
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis

from fleet_emulator.backends import event_bytes
from fleet_emulator.backends.fanout import LocalFanout, Subscription
from fleet_emulator.backends.memory_events import epoch_ms
from fleet_emulator.backends.redis_errors import FAILURES, mapped, once_more_if_stale, unavailable
from fleet_emulator.backends.redis_keys import RedisKeys
from fleet_emulator.backends.redis_tails import (
    BLOCK_MS,
    WINDOW,
    Connect,
    DecodedEntries,
    RedisTail,
    SharedTail,
)
from fleet_emulator.domain.background import keep_cancellation, stop_task
from fleet_emulator.domain.codec import decode_as, encode
from fleet_emulator.domain.events import Event, LogEntry
from fleet_emulator.domain.message_ids import ZERO, MessageId
from fleet_emulator.domain.models import Vehicle
from fleet_emulator.telemetry.metrics import REDIS

log = logging.getLogger(__name__)

APPEND_STEPS = """
local last = redis.call('GET', KEYS[2]) or '0-0'
if redis.call('GET', KEYS[3]) == ARGV[5] then
  return {last, 1}
end
local dash = string.find(last, '-', 1, true)
local last_ms = string.sub(last, 1, dash - 1)
local id
if tonumber(ARGV[1]) > tonumber(last_ms) then
  id = ARGV[1] .. '-0'
else
  id = last_ms .. '-' .. tostring(tonumber(string.sub(last, dash + 1)) + 1)
end
redis.call('XADD', KEYS[1], 'MINID', '=', ARGV[2], id, 'prev', last, 'pb', ARGV[3])
if tonumber(ARGV[4]) > 0 then
  redis.call('XTRIM', KEYS[1], 'MAXLEN', '=', ARGV[4])
end
redis.call('SET', KEYS[2], id)
redis.call('SET', KEYS[3], ARGV[5])
"""
APPEND = APPEND_STEPS + "return {id, 1}"
APPEND_ONCE = (
    """
local function parts(id)
  local dash = string.find(id, '-', 1, true)
  return tonumber(string.sub(id, 1, dash - 1)), tonumber(string.sub(id, dash + 1))
end
local function retained(id)
  local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1]
  if not first then return false end
  local ms, seq = parts(id)
  local first_ms, first_seq = parts(first[1])
  return ms > first_ms or (ms == first_ms and seq >= first_seq)
end
redis.call('XTRIM', KEYS[1], 'MINID', '=', ARGV[2])
if tonumber(ARGV[4]) > 0 then
  redis.call('XTRIM', KEYS[1], 'MAXLEN', '=', ARGV[4])
end
local known = redis.call('HGET', KEYS[4], ARGV[6])
if known and retained(known) then
  return {known, 0}
end
"""
    + APPEND_STEPS
    + """
redis.call('HSET', KEYS[4], ARGV[6], id)
redis.call('ZADD', KEYS[5], parts(id), ARGV[6])
local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1]
local first_ms = parts(first[1])
while true do
  local gone = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', '(' .. first_ms, 'LIMIT', 0, 1000)
  if #gone == 0 then break end
  redis.call('HDEL', KEYS[4], unpack(gone))
  redis.call('ZREM', KEYS[5], unpack(gone))
end
return {id, 1}
"""
)


class RedisEventLog:
    def __init__(
        self,
        client: aioredis.Redis,
        keys: RedisKeys,
        connect: Connect,
        window: int = WINDOW,
        block_ms: int = BLOCK_MS,
    ) -> None:
        """``connect`` makes the client of a shared tail's own connection (for the stream's key: on a
        cluster, to the master serving its slot); ``window`` is how many entries a shared tail keeps,
        ``block_ms`` how long each of its ``XREAD BLOCK`` waits."""
        self.client = client
        self.keys = keys
        self.connect = connect
        self.window = window
        self.block_ms = block_ms
        self.entries = DecodedEntries()
        self._append = client.register_script(APPEND)
        self._append_once = client.register_script(APPEND_ONCE)
        self._tails: dict[str, SharedTail] = {}

    @mapped
    async def append(
        self, stream: str, event: Event, now: datetime, keep_after: datetime, max_length: int = 0
    ) -> MessageId:
        message_id, _ = await self._run(self._append, stream, event, now, keep_after, max_length)
        return message_id

    @mapped
    async def append_once(
        self, stream: str, event: Event, now: datetime, keep_after: datetime, max_length: int = 0
    ) -> tuple[MessageId, bool]:
        return await self._run(self._append_once, stream, event, now, keep_after, max_length)

    async def _run(
        self, script: Any, stream: str, event: Event, now: datetime, keep_after: datetime, max_length: int
    ) -> tuple[MessageId, bool]:
        """Run an append script: the id, and whether it appended (an append sent again after its
        connection broke appends nothing the second time, and answers the id it appended)."""
        keys = [
            self.keys.stream(stream),
            self.keys.stream_last(stream),
            self.keys.stream_last_append(stream),
            self.keys.stream_event_ids(stream),
            self.keys.stream_event_times(stream),
        ]
        token = secrets.token_hex(8)  # names this append, so that sending it again appends nothing
        args: list[str | int] = [
            epoch_ms(now),
            epoch_ms(keep_after),
            event_bytes.dump(event),
            max_length,
            token,
            event.id,
        ]
        message_id, appended = await once_more_if_stale(lambda: script(keys=keys, args=args))
        return MessageId.parse(message_id), bool(appended)

    @mapped
    async def read(self, stream: str, after: MessageId, limit: int) -> list[LogEntry]:
        key = self.keys.stream(stream)
        raw: Any = await once_more_if_stale(lambda: self.client.xrange(key, f"({after}", "+", count=limit))
        return self.entries.of(raw)

    @asynccontextmanager
    async def tail(self, stream: str) -> AsyncIterator[RedisTail]:
        """A subscriber's reader on the stream's shared tail: the first subscriber starts it (again, if the
        last one failed), the last one to go stops it."""
        key = self.keys.stream(stream)
        shared = self._tails.get(key)
        if shared is None or shared.failed:
            replay = functools.partial(self.read, stream)
            last_key = self.keys.stream_last(stream)
            shared = SharedTail(self.connect, key, last_key, self.entries, replay, self.window, self.block_ms)
            self._tails[key] = shared
            shared.start()
        shared.subscribers += 1
        try:
            yield RedisTail(shared)
        finally:
            shared.subscribers -= 1
            if shared.subscribers == 0:
                if self._tails.get(key) is shared:
                    del self._tails[key]
                await shared.stop()

    @mapped
    async def last_id(self, stream: str) -> MessageId:
        raw: Any = await self.client.get(self.keys.stream_last(stream))
        return MessageId.parse(raw) if raw else ZERO

    @mapped
    async def trim(self, stream: str, keep_after: datetime) -> None:
        await self.client.xtrim(self.keys.stream(stream), minid=str(epoch_ms(keep_after)), approximate=False)

    @mapped
    async def clear(self) -> None:
        """Delete every stream; the shared tails read again from the (new) last ids."""
        await self.keys.delete_matching(self.client, self.keys.stream_patterns)
        await asyncio.gather(*(shared.restart() for shared in list(self._tails.values())))

    @mapped
    async def ping(self) -> None:
        await self.client.ping()

    async def close(self) -> None:
        """Stop every shared tail; a subscriber still waiting gets ``Unavailable``."""
        tails, self._tails = list(self._tails.values()), {}
        closed = ConnectionError("the namespace's event log closed")
        await asyncio.gather(*(shared.stop(closed) for shared in tails))


def _consume_outcome(task: asyncio.Task[None]) -> None:
    """Retrieve a dead listener's failure (``_listen`` logged it; the next subscribe starts a new one), so
    that asyncio does not report it as never retrieved."""
    if not task.cancelled():
        task.exception()


class RedisStateFeed:
    """Publishes on ``state:<fleet>``; one listener task per process delivers to local subscribers.

    On a Redis Cluster a ``PUBLISH`` reaches every node, so the listener subscribes on one: with
    ``connect``, on a connection of its own to the master serving the namespace's slot (found anew each
    time the listener starts, so after a fail-over too)."""

    def __init__(self, client: aioredis.Redis, keys: RedisKeys, connect: Connect | None = None) -> None:
        self.client = client
        self.keys = keys
        self.connect = connect
        self.fanout = LocalFanout()
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    @mapped
    async def publish(self, vehicle: Vehicle) -> None:
        await self.client.publish(self.keys.state_channel(vehicle.fleet_id), json.dumps(encode(vehicle)))

    @asynccontextmanager
    async def subscribe(self, fleet_id: str, vehicle_ids: Iterable[str] = ()) -> AsyncIterator[Subscription]:
        await self._ensure_listener()
        with self.fanout.subscription(fleet_id, vehicle_ids) as subscription:
            yield subscription

    async def _ensure_listener(self) -> None:
        if self._listener is None or self._listener.done():
            self._subscribed = asyncio.Event()
            self._listener = asyncio.create_task(  # a context of its own: it serves no one call
                self._listen(), name="redis-state-feed", context=contextvars.Context()
            )
            self._listener.add_done_callback(_consume_outcome)
        waiting = asyncio.ensure_future(self._subscribed.wait())
        done, _ = await asyncio.wait({waiting, self._listener}, return_when=asyncio.FIRST_COMPLETED)
        if waiting not in done:
            waiting.cancel()
            error = self._listener.exception()
            raise unavailable(error or ConnectionError("listener stopped"))

    async def _listen(self) -> None:
        """Deliver every state published on the namespace's channels, until Redis is lost or the feed
        closes; a message that is not a vehicle's state is logged and skipped."""
        pattern = self.keys.state_channel("*")
        client, pubsub = self.client, None
        try:
            if self.connect is not None:
                client = await self.connect(pattern)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            await pubsub.psubscribe(pattern)
            REDIS.answered()
            self._subscribed.set()
            async for message in pubsub.listen():
                keep_cancellation()
                try:
                    vehicle = decode_as(Vehicle, json.loads(message["data"]))
                except (ValueError, KeyError, TypeError) as exc:
                    log.warning(
                        "state feed skipped a message that is no vehicle state (%s): %.200r", exc, message
                    )
                    continue
                self.fanout.deliver(vehicle)
        except FAILURES as exc:
            REDIS.failed("state_feed")
            log.warning("state feed lost Redis (%s); live state streams end with UNAVAILABLE", exc)
            self.fanout.fail_all(unavailable(exc))
            raise
        except Exception as exc:
            log.exception("state feed failed; live state streams end with UNAVAILABLE")
            self.fanout.fail_all(unavailable(exc))
            raise
        finally:
            with contextlib.suppress(*FAILURES):
                if pubsub is not None:
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                if client is not self.client:
                    await client.aclose()

    async def close(self) -> None:
        if self._listener is not None:
            await stop_task(self._listener)
