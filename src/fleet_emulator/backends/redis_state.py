"""Redis state store: fleets, vehicles and page cursors in Redis, shared by every replica on it.

Writes that touch several keys go in one MULTI/EXEC transaction or Lua script; command counts are
``HINCRBY``, replacing a vehicle compares its stored text first, and a first use of an idempotency key (kept
until a time on the emulator's clock) is a script, all atomic across replicas. Key-set pages are
``ZRANGE ... BYLEX`` over sorted sets of ids (score 0) followed by one ``HMGET``; vehicles are decoded once
per stored text (``DecodedTexts``), and so are fleets. Reads go through ``CoalescedReads``, shared with
the concurrent calls that ask the same. Connection failures and time-outs of redis-py are mapped at this
boundary (``redis_errors.py``) to ``Unavailable``.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

import redis.asyncio as aioredis

from fleet_emulator.backends.redis_batches import CoalescedReads
from fleet_emulator.backends.redis_errors import mapped
from fleet_emulator.backends.redis_keys import RedisKeys
from fleet_emulator.domain.codec import decode_as, encode
from fleet_emulator.domain.models import EPOCH, Fleet, Vehicle
from fleet_emulator.domain.paging import PageCursor

BATCH = 500
MILLISECOND = timedelta(milliseconds=1)
REPLACE_VEHICLE = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
if KEYS[2] ~= KEYS[3] then redis.call('ZREM', KEYS[2], ARGV[1]) end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[3], 0, ARGV[1])
return 1
"""
REMEMBER = """
local kept = redis.call('GET', KEYS[1])
if kept then
  local colon = string.find(kept, ':', 1, true)
  if tonumber(string.sub(kept, 1, colon - 1)) > tonumber(ARGV[1]) then
    return string.sub(kept, colon + 1)
  end
end
redis.call('SET', KEYS[1], ARGV[2] .. ':' .. ARGV[3], 'PX', ARGV[4])
return false
"""  # a record is "<until, ms since 1970 on the emulator's clock>:<record>"
DECODED_VEHICLES = 10_000  # vehicle states kept decoded, by their stored text
DECODED_FLEETS = 1_000  # fleets kept decoded, by their stored text
T = TypeVar("T")


class DecodedTexts(Generic[T]):
    """Values (vehicles, fleets) decoded once per stored text: a page or a read of a value that did not
    change since it was last read costs a lookup instead of JSON decoding (the most recent ``size`` texts
    are kept)."""

    def __init__(self, kind: type[T], size: int) -> None:
        self.kind = kind
        self.size = size
        self._decoded: OrderedDict[str, T] = OrderedDict()
        self._texts: dict[int, str] = {}  # id() of a value kept decoded -> its stored text

    def of(self, raw: str) -> T:
        value = self._decoded.get(raw)
        if value is None:
            value = self._decoded[raw] = decode_as(self.kind, json.loads(raw))
            self._texts[id(value)] = raw
            if len(self._decoded) > self.size:
                _, dropped = self._decoded.popitem(last=False)
                del self._texts[id(dropped)]
        return value

    def text_of(self, value: T) -> str:
        """The text ``value`` was read from (as stored), else its JSON form."""
        return self._texts.get(id(value)) or json.dumps(encode(value))


class RedisStateStore:
    def __init__(self, client: aioredis.Redis, keys: RedisKeys, reads: CoalescedReads) -> None:
        self.client = client
        self.reads = reads
        self.keys = keys
        self.vehicles = DecodedTexts(Vehicle, DECODED_VEHICLES)
        self.fleets = DecodedTexts(Fleet, DECODED_FLEETS)
        self._replace_vehicle = client.register_script(REPLACE_VEHICLE)
        self._remember = client.register_script(REMEMBER)

    @mapped
    async def ping(self) -> None:
        await self.client.ping()

    @mapped
    async def clear(self) -> None:
        await self.keys.delete_matching(self.client, self.keys.state_patterns)

    @mapped
    async def claim_seeding(self) -> bool:
        return bool(await self.client.set(self.keys.seeded, "1", nx=True))

    async def put_fleet(self, fleet: Fleet) -> None:
        await self.put_all([fleet], [])

    @mapped
    async def put_all(self, fleets: Sequence[Fleet], vehicles: Sequence[Vehicle]) -> None:
        """Pipelined in transactions of ``BATCH`` items (``put_fleet`` and ``put_vehicle`` are batches of
        one); a vehicle that moves to another fleet leaves the old fleet's set."""
        for start in range(0, len(fleets), BATCH):
            async with self.client.pipeline(transaction=True) as tx:
                for fleet in fleets[start : start + BATCH]:
                    tx.hset(self.keys.fleets, fleet.id, json.dumps(encode(fleet)))
                    tx.zadd(self.keys.fleet_ids, {fleet.id: 0})
                await tx.execute()
        for start in range(0, len(vehicles), BATCH):
            batch = vehicles[start : start + BATCH]
            raws: list[Any] = await self.client.hmget(self.keys.vehicles, [v.id for v in batch])
            async with self.client.pipeline(transaction=True) as tx:
                for vehicle, raw in zip(batch, raws, strict=True):
                    old_fleet = json.loads(raw)["fleet_id"] if raw else vehicle.fleet_id
                    if old_fleet != vehicle.fleet_id:
                        tx.zrem(self.keys.fleet_vehicle_ids(old_fleet), vehicle.id)
                    tx.hset(self.keys.vehicles, vehicle.id, json.dumps(encode(vehicle)))
                    tx.zadd(self.keys.fleet_vehicle_ids(vehicle.fleet_id), {vehicle.id: 0})
                await tx.execute()

    @mapped
    async def get_fleet(self, fleet_id: str) -> Fleet | None:
        raw: Any = await self.reads.read("HGET", self.keys.fleets, fleet_id)
        return self.fleets.of(raw) if raw else None

    async def _page(self, ids_key: str, items_key: str, after_id: str, limit: int) -> list[str]:
        """JSON texts of the items whose ids follow ``after_id`` in the sorted set ``ids_key``, from hash
        ``items_key`` (both reads shared with concurrent calls asking the same)."""
        start = f"({after_id}" if after_id else "-"
        ids: list[Any] = await self.reads.read("ZRANGE", ids_key, start, "+", "BYLEX", "LIMIT", 0, limit)
        raws: list[Any] = await self.reads.read("HMGET", items_key, *ids) if ids else []
        return [r for r in raws if r]

    @mapped
    async def list_fleets(self, after_id: str, limit: int) -> list[Fleet]:
        items = await self._page(self.keys.fleet_ids, self.keys.fleets, after_id, limit)
        return [self.fleets.of(i) for i in items]

    @mapped
    async def delete_fleet(self, fleet_id: str) -> bool:
        members = self.keys.fleet_vehicle_ids(fleet_id)
        vehicle_ids = await self.client.zrange(members, 0, -1)
        async with self.client.pipeline(transaction=True) as tx:
            tx.hdel(self.keys.fleets, fleet_id)
            tx.zrem(self.keys.fleet_ids, fleet_id)
            if vehicle_ids:
                tx.hdel(self.keys.vehicles, *vehicle_ids)
            tx.delete(members)
            removed, *_ = await tx.execute()
        return bool(removed)

    async def put_vehicle(self, vehicle: Vehicle) -> None:
        await self.put_all([], [vehicle])

    @mapped
    async def replace_vehicle(self, old: Vehicle, new: Vehicle) -> bool:
        keys = [
            self.keys.vehicles,
            self.keys.fleet_vehicle_ids(old.fleet_id),
            self.keys.fleet_vehicle_ids(new.fleet_id),
        ]
        args = [old.id, self.vehicles.text_of(old), json.dumps(encode(new))]
        return bool(await self._replace_vehicle(keys=keys, args=args))

    @mapped
    async def get_vehicle(self, vehicle_id: str) -> Vehicle | None:
        raw: Any = await self.reads.read("HGET", self.keys.vehicles, vehicle_id)
        return self.vehicles.of(raw) if raw else None

    @mapped
    async def list_vehicles(self, fleet_id: str, after_id: str, limit: int) -> list[Vehicle]:
        items = await self._page(self.keys.fleet_vehicle_ids(fleet_id), self.keys.vehicles, after_id, limit)
        return [self.vehicles.of(i) for i in items]

    @mapped
    async def count_vehicles(self, fleet_id: str) -> int:
        count: int = await self.reads.read("ZCARD", self.keys.fleet_vehicle_ids(fleet_id))
        return count

    @mapped
    async def delete_vehicle(self, vehicle_id: str) -> bool:
        old = await self.get_vehicle(vehicle_id)
        if old is None:
            return False
        async with self.client.pipeline(transaction=True) as tx:
            tx.hdel(self.keys.vehicles, vehicle_id)
            tx.zrem(self.keys.fleet_vehicle_ids(old.fleet_id), vehicle_id)
            removed, _ = await tx.execute()
        return bool(removed)

    @mapped
    async def save_cursor(self, token: str, cursor: PageCursor, keep_for: timedelta) -> None:
        await self.client.set(self.keys.cursor(token), json.dumps(encode(cursor)), px=keep_for)

    @mapped
    async def load_cursor(self, token: str) -> PageCursor | None:
        raw: Any = await self.client.get(self.keys.cursor(token))
        return decode_as(PageCursor, json.loads(raw)) if raw else None

    @mapped
    async def count_command(self, vehicle_id: str, command: str) -> int:
        count: int = await self.client.hincrby(self.keys.command_counts, f"{vehicle_id}:{command}", 1)
        return count

    @mapped
    async def remember_command(self, key: str, record: str, now: datetime, until: datetime) -> str | None:
        args: list[str | int] = [_millis(now), _millis(until), record, _real_ttl_ms(now, until)]
        kept: Any = await self._remember(keys=[self.keys.command(key)], args=args)
        return str(kept) if kept is not None else None

    @mapped
    async def replace_command(self, key: str, record: str, now: datetime, until: datetime) -> None:
        value = f"{_millis(until)}:{record}"
        await self.client.set(self.keys.command(key), value, px=_real_ttl_ms(now, until))

    @mapped
    async def forget_command(self, key: str) -> None:
        await self.client.delete(self.keys.command(key))


def _millis(when: datetime) -> int:
    return (when - EPOCH) // MILLISECOND


def _real_ttl_ms(now: datetime, until: datetime) -> int:
    """How long Redis keeps a command record in real time: twice its life on the emulator's clock, which
    decides when it expires (a garbage bound for records nobody asks for again)."""
    return max(2 * (until - now) // MILLISECOND, 1000)
