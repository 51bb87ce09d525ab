"""Redis ``ControlStore`` and ``ClockStore``: what steers a namespace, and the virtual clock, shared by every
replica on one Redis.

Every change that touches several keys is one Lua script, so it is atomic across replicas: adding a rule
checks the limit, a hit removes a rule with its last hit, a draw is numbered with ``HINCRBY``, and a token
bucket is refilled and taken from in one step (the same steps as ``rate_limits.take_units``; times are sent
as seconds and microseconds, so that the elapsed time stays exact in Lua's doubles). Each change of the
policies or rules increments ``version``, which a namespace reads at the start of every call. A scenario
loaded into the namespace is kept as JSON (``scenario``), outside what a reset clears. Scheduled
wake-ups of every namespace are one sorted set, ``<namespace>\n<vehicle id>`` by due time, so that any
replica finds the namespaces with wake-ups due; the registry of namespaces is one set, and a deletion is
announced on a channel that every replica listens to. A lease (the simulator's) is a key naming the
process that holds it, renewed by it before it expires. The virtual
clock is one integer, microseconds since 1970: advancing it is ``INCRBY`` after a ``SET NX`` of the real
time, so that two replicas advancing at once both count. Keys are listed in ``redis_keys.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import redis.asyncio as aioredis

from fleet_emulator.backends.redis_batches import CoalescedReads
from fleet_emulator.backends.redis_errors import FAILURES, mapped
from fleet_emulator.backends.redis_keys import RedisKeys
from fleet_emulator.domain.background import keep_cancellation
from fleet_emulator.domain.codec import decode_as, encode
from fleet_emulator.domain.faults import FaultRule
from fleet_emulator.domain.models import EPOCH
from fleet_emulator.domain.policies import Policies
from fleet_emulator.domain.scenario import Scenario

MICROSECOND = timedelta(microseconds=1)
PARTS = ("version", "policies", "rules", "rule-order", "rule-hits", "rule-draws", "buckets")
HOLD = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""
REGISTER = """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 1 end
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
return redis.call('SADD', KEYS[1], ARGV[1])
"""

SET_POLICIES = """
if ARGV[1] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[1]) end
if ARGV[2] == '1' then redis.call('DEL', KEYS[2]) end
return redis.call('INCR', KEYS[3])
"""
ADD_RULE = """
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
local version = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], version, ARGV[1])
return 1
"""
REMOVE = """
local removed = redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
redis.call('INCR', KEYS[5])
"""  # the rule ARGV[1] from the keys of ``_rule_keys``
REMOVE_RULE = REMOVE + "return removed"
HIT = f"""
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
local hits = redis.call('HINCRBY', KEYS[3], ARGV[1], 1)
if tonumber(ARGV[2]) > 0 and hits >= tonumber(ARGV[2]) then
{REMOVE}
end
return 1
"""
DRAW = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return false end
return redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
"""
CLEAR_RULES = """
local count = redis.call('HLEN', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
redis.call('INCR', KEYS[5])
return count
"""
TAKE_TOKEN = """
local capacity, requests, period = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local now_s, now_us = tonumber(ARGV[5]), tonumber(ARGV[6])
local full = capacity * period
local units, held_s, held_us = full, now_s, now_us
local held = redis.call('HGET', KEYS[1], ARGV[1])
if held then
  local a, b = string.find(held, ':', 1, true)
  local c = string.find(held, ':', b + 1, true)
  units = tonumber(string.sub(held, 1, a - 1))
  held_s = tonumber(string.sub(held, b + 1, c - 1))
  held_us = tonumber(string.sub(held, c + 1))
end
local elapsed = (now_s - held_s) * 1000000 + (now_us - held_us)
if elapsed > 0 then units = math.min(full, units + elapsed * requests) end
local taken = 0
if units >= period then
  units = units - period
  taken = 1
end
redis.call('HSET', KEYS[1], ARGV[1], string.format('%.0f', units) .. ':' .. ARGV[5] .. ':' .. ARGV[6])
return {taken, string.format('%.0f', units)}
"""


def _micros(when: datetime) -> int:
    return (when - EPOCH) // MICROSECOND


class RedisControlStore:
    def __init__(
        self, client: aioredis.Redis, keys: RedisKeys, namespace: str, reads: CoalescedReads
    ) -> None:
        self.client = client
        self.reads = reads
        self.key = {part: keys.control(part) for part in PARTS}
        self.wake_ups = RedisKeys().wake_ups
        self.scenario_key = keys.control("scenario")
        self.namespace = namespace
        self._set_policies = client.register_script(SET_POLICIES)
        self._add_rule = client.register_script(ADD_RULE)
        self._remove_rule = client.register_script(REMOVE_RULE)
        self._hit = client.register_script(HIT)
        self._draw = client.register_script(DRAW)
        self._clear_rules = client.register_script(CLEAR_RULES)
        self._take_token = client.register_script(TAKE_TOKEN)

    def _keys(self, *parts: str) -> list[str]:
        return [self.key[p] for p in parts]

    @property
    def _rule_keys(self) -> list[str]:
        return self._keys("rules", "rule-order", "rule-hits", "rule-draws", "version")

    @mapped
    async def version(self) -> str:
        version: Any = await self.reads.read("GET", self.key["version"])
        return str(version or 0)

    @mapped
    async def policies(self) -> Policies | None:
        raw: Any = await self.client.get(self.key["policies"])
        return decode_as(Policies, json.loads(raw)) if raw else None

    @mapped
    async def set_policies(self, policies: Policies | None, rates_changed: bool) -> None:
        raw = json.dumps(encode(policies)) if policies is not None else ""
        keys = self._keys("policies", "buckets", "version")
        await self._set_policies(keys=keys, args=[raw, "1" if rates_changed else "0"])

    @mapped
    async def rules(self) -> list[FaultRule]:
        ids: list[Any] = await self.client.zrange(self.key["rule-order"], 0, -1)
        if not ids:
            return []
        async with self.client.pipeline(transaction=True) as tx:
            tx.hmget(self.key["rules"], ids)
            tx.hmget(self.key["rule-hits"], ids)
            raws, hits = await tx.execute()
        return [
            decode_as(FaultRule, {**json.loads(raw), "hits": int(hit or 0)})
            for raw, hit in zip(raws, hits, strict=True)
            if raw
        ]

    @mapped
    async def add_rule(self, rule: FaultRule, limit: int) -> bool:
        raw = json.dumps(encode(rule) | {"hits": 0})
        keys = self._keys("rules", "rule-order", "version")
        return bool(await self._add_rule(keys=keys, args=[rule.id, raw, limit]))

    @mapped
    async def delete_rule(self, rule_id: str) -> bool:
        return bool(await self._remove_rule(keys=self._rule_keys, args=[rule_id]))

    @mapped
    async def clear_rules(self) -> int:
        count: int = await self._clear_rules(keys=self._rule_keys)
        return count

    @mapped
    async def draw(self, rule_id: str) -> int | None:
        number: Any = await self._draw(keys=self._keys("rules", "rule-draws"), args=[rule_id])
        return int(number) if number is not None else None

    @mapped
    async def hit(self, rule_id: str, times: int) -> bool:
        return bool(await self._hit(keys=self._rule_keys, args=[rule_id, times]))

    @mapped
    async def take_token(
        self, bucket: str, capacity: int, requests: int, period_us: int, now_us: int
    ) -> tuple[bool, int]:
        seconds, micros = divmod(now_us, 1_000_000)
        args: list[str | int] = [bucket, capacity, requests, period_us, seconds, micros]
        taken, units = await self._take_token(keys=self._keys("buckets"), args=args)
        return bool(taken), int(units)

    @mapped
    async def scenario(self) -> Scenario | None:
        raw: Any = await self.client.get(self.scenario_key)
        if raw is None:
            return None
        return await asyncio.to_thread(lambda: decode_as(Scenario, json.loads(raw)))  # up to megabytes

    @mapped
    async def set_scenario(self, scenario: Scenario | None) -> None:
        if scenario is None:
            await self.client.delete(self.scenario_key)
            return
        text = await asyncio.to_thread(lambda: json.dumps(encode(scenario)))
        await self.client.set(self.scenario_key, text)

    @mapped
    async def schedule_wake_up(self, vehicle_id: str, due: datetime) -> None:
        await self.client.zadd(self.wake_ups, {f"{self.namespace}\n{vehicle_id}": _micros(due)})

    @mapped
    async def due_wake_ups(self, now: datetime) -> list[str]:
        return [v for n, v in await _due(self.client, self.wake_ups, now) if n == self.namespace]

    @mapped
    async def forget_wake_up(self, vehicle_id: str) -> None:
        await self.client.zrem(self.wake_ups, f"{self.namespace}\n{vehicle_id}")

    @mapped
    async def clear(self) -> None:
        """Everything but ``version``, which moves on, so that no replica keeps what it read before."""
        async with self.client.pipeline(transaction=True) as tx:
            tx.delete(*(self.key[p] for p in PARTS if p != "version"))
            tx.incr(self.key["version"])
            await tx.execute()
        scheduled: list[Any] = await self.client.zrange(self.wake_ups, 0, -1)
        mine = [m for m in scheduled if str(m).split("\n", 1)[0] == self.namespace]
        if mine:
            await self.client.zrem(self.wake_ups, *mine)


async def _due(client: aioredis.Redis, key: str, now: datetime) -> list[tuple[str, str]]:
    """The (namespace, vehicle id) of the wake-ups due at ``now``."""
    due: list[Any] = await client.zrangebyscore(key, "-inf", _micros(now))
    return [(n, v) for n, _, v in (str(m).partition("\n") for m in due)]


class RedisNamespaceRegistry:
    def __init__(self, client: aioredis.Redis, connect: Callable[[str], Awaitable[aioredis.Redis]]) -> None:
        """``connect`` gives a client on a connection of its own for a channel, to listen on."""
        self.client = client
        self.connect = connect
        keys = RedisKeys()
        self.names = keys.namespaces
        self.wake_ups = keys.wake_ups
        self.deleted_channel = keys.namespace_deleted
        self.origin = uuid.uuid4().hex  # this process's announcements, which it does not act on again
        self._register = client.register_script(REGISTER)

    @mapped
    async def add(self, name: str, limit: int) -> bool:
        return bool(await self._register(keys=[self.names], args=[name, limit]))

    @mapped
    async def remove(self, name: str) -> None:
        await self.client.srem(self.names, name)

    async def dropped(self, name: str) -> None:
        return None

    @mapped
    async def announce_deleted(self, name: str) -> None:
        await self.client.publish(self.deleted_channel, f"{self.origin}\n{name}")

    async def deletions(self) -> AsyncIterator[str]:
        client = await self.connect(self.deleted_channel)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self.deleted_channel)
            async for message in pubsub.listen():
                keep_cancellation()
                origin, _, name = str(message["data"]).partition("\n")
                if origin != self.origin:
                    yield name
        finally:
            with contextlib.suppress(*FAILURES):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
                await client.aclose()

    @mapped
    async def with_wake_ups_due(self, now: datetime) -> list[str]:
        return sorted({n for n, _ in await _due(self.client, self.wake_ups, now)})


class RedisClockStore:
    def __init__(self, reads: CoalescedReads, keys: RedisKeys) -> None:
        self.client = reads.client
        self.reads = reads
        self.key = keys.clock

    @mapped
    async def load(self) -> datetime | None:
        micros: Any = await self.reads.read("GET", self.key)
        return EPOCH + int(micros) * MICROSECOND if micros is not None else None

    @mapped
    async def save(self, frozen: datetime | None) -> None:
        if frozen is None:
            await self.client.delete(self.key)
        else:
            await self.client.set(self.key, _micros(frozen))

    @mapped
    async def advance(self, by: timedelta, real_now: datetime) -> datetime:
        async with self.client.pipeline(transaction=True) as tx:
            tx.set(self.key, _micros(real_now), nx=True)
            tx.incrby(self.key, by // MICROSECOND)
            _, micros = await tx.execute()
        return EPOCH + int(micros) * MICROSECOND


class RedisLease:
    """A key holding the id of the process that holds the lease, expiring unless renewed in time."""

    def __init__(self, client: aioredis.Redis, key: str) -> None:
        self.client = client
        self.key = key
        self.holder = uuid.uuid4().hex
        self._hold = client.register_script(HOLD)

    @mapped
    async def hold(self, ttl: timedelta) -> bool:
        ttl_ms = max(ttl // timedelta(milliseconds=1), 1)
        return bool(await self._hold(keys=[self.key], args=[self.holder, ttl_ms]))
