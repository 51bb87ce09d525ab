"""Redis state store: fleets, vehicles and page cursors in Redis, shared by every replica on it.

Writes that touch several keys go in one MULTI/EXEC transaction; command counts are ``HINCRBY`` and a
first use of an idempotency key is ``SET NX PX``, both atomic across replicas. Key-set pages are
``ZRANGE ... BYLEX`` over sorted sets of ids (score 0) followed by one ``HMGET``; vehicles are decoded once
per stored text (``DecodedVehicles``). Connection failures and time-outs of redis-py are mapped at this
boundary (``redis_errors.py``) to ``Unavailable``.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import redis.asyncio as aioredis

from fleet_emulator.backends.redis_errors import mapped
from fleet_emulator.backends.redis_keys import RedisKeys
from fleet_emulator.domain.codec import decode_as, encode
from fleet_emulator.domain.models import Fleet, Vehicle
from fleet_emulator.domain.paging import PageCursor

BATCH = 500
DECODED_VEHICLES = 10_000  # vehicle states kept decoded, by their stored text


class DecodedVehicles:
    """Vehicles decoded once per stored text: a page or a read of a vehicle that did not change since it
    was last read costs a lookup instead of JSON decoding (the most recent ``size`` texts are kept)."""

    def __init__(self, size: int = DECODED_VEHICLES) -> None:
        self.size = size
        self._decoded: OrderedDict[str, Vehicle] = OrderedDict()

    def of(self, raw: str) -> Vehicle:
        vehicle = self._decoded.get(raw)
        if vehicle is None:
            vehicle = self._decoded[raw] = decode_as(Vehicle, json.loads(raw))
            if len(self._decoded) > self.size:
                self._decoded.popitem(last=False)
        return vehicle


class RedisStateStore:
    def __init__(self, client: aioredis.Redis, keys: RedisKeys) -> None:
        self.client = client
        self.keys = keys
        self.vehicles = DecodedVehicles()

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
        raw = await self.client.hget(self.keys.fleets, fleet_id)
        return decode_as(Fleet, json.loads(raw)) if raw else None

    async def _page(self, ids_key: str, items_key: str, after_id: str, limit: int) -> list[str]:
        """JSON texts of the items whose ids follow ``after_id`` in the sorted set ``ids_key``, from hash
        ``items_key``."""
        start = f"({after_id}" if after_id else "-"
        ids: list[Any] = await self.client.zrange(ids_key, start, "+", bylex=True, offset=0, num=limit)
        raws: list[Any] = await self.client.hmget(items_key, ids) if ids else []
        return [r for r in raws if r]

    @mapped
    async def list_fleets(self, after_id: str, limit: int) -> list[Fleet]:
        items = await self._page(self.keys.fleet_ids, self.keys.fleets, after_id, limit)
        return [decode_as(Fleet, json.loads(i)) for i in items]

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
    async def get_vehicle(self, vehicle_id: str) -> Vehicle | None:
        raw: Any = await self.client.hget(self.keys.vehicles, vehicle_id)
        return self.vehicles.of(raw) if raw else None

    @mapped
    async def list_vehicles(self, fleet_id: str, after_id: str, limit: int) -> list[Vehicle]:
        items = await self._page(self.keys.fleet_vehicle_ids(fleet_id), self.keys.vehicles, after_id, limit)
        return [self.vehicles.of(i) for i in items]

    @mapped
    async def count_vehicles(self, fleet_id: str) -> int:
        count: int = await self.client.zcard(self.keys.fleet_vehicle_ids(fleet_id))
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
    async def remember_command(self, key: str, record: str, keep_for: timedelta) -> str | None:
        name = self.keys.command(key)
        while not await self.client.set(name, record, nx=True, px=keep_for):
            kept: Any = await self.client.get(name)
            if kept is not None:  # else it expired between the two commands: try again
                return str(kept)
        return None

    @mapped
    async def recall_command(self, key: str) -> str | None:
        kept: Any = await self.client.get(self.keys.command(key))
        return str(kept) if kept is not None else None
