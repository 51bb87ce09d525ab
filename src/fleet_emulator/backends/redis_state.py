"""Redis state store: fleets, vehicles and page cursors in Redis, shared by every replica on it.

Writes that touch several keys go in one MULTI/EXEC transaction. Key-set pages are ``ZRANGE ... BYLEX``
over sorted sets of ids (score 0) followed by one ``HMGET``. Connection failures and time-outs of redis-py
are mapped here, at the boundary, to ``Unavailable`` (``BACKEND_UNAVAILABLE`` with a retry delay).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar

import redis.asyncio as aioredis
import redis.exceptions

from fleet_emulator.backends.redis_keys import RedisKeys
from fleet_emulator.domain import reasons
from fleet_emulator.domain.codec import decode_as, encode
from fleet_emulator.domain.errors import Unavailable
from fleet_emulator.domain.models import Fleet, Vehicle
from fleet_emulator.domain.paging import PageCursor

P = ParamSpec("P")
R = TypeVar("R")
RETRY_AFTER = timedelta(seconds=1)
FAILURES = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


def unavailable(exc: Exception) -> Unavailable:
    return Unavailable(
        reasons.BACKEND_UNAVAILABLE,
        "the emulator's Redis backend is unreachable; retry later",
        RETRY_AFTER,
        cause=type(exc).__name__,
    )


def mapped(method: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Turn redis-py's connection errors into the domain's ``Unavailable``."""

    @functools.wraps(method)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except FAILURES as exc:
            raise unavailable(exc) from exc

    return call


class RedisStateStore:
    def __init__(self, client: aioredis.Redis, keys: RedisKeys | None = None) -> None:
        self.client = client
        self.keys = keys or RedisKeys()

    @classmethod
    def from_url(cls, url: str, keys: RedisKeys | None = None) -> RedisStateStore:
        client = aioredis.Redis.from_url(
            url, decode_responses=True, socket_connect_timeout=2, socket_timeout=5, health_check_interval=5
        )
        return cls(client, keys)

    @mapped
    async def ping(self) -> None:
        await self.client.ping()

    async def close(self) -> None:
        await self.client.aclose()

    @mapped
    async def clear(self) -> None:
        batch: list[str] = []
        async for key in self.client.scan_iter(match=self.keys.pattern, count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                await self.client.unlink(*batch)
                batch = []
        if batch:
            await self.client.unlink(*batch)

    @mapped
    async def claim_seeding(self) -> bool:
        return bool(await self.client.set(self.keys.seeded, "1", nx=True))

    @mapped
    async def put_fleet(self, fleet: Fleet) -> None:
        async with self.client.pipeline(transaction=True) as tx:
            tx.hset(self.keys.fleets, fleet.id, json.dumps(encode(fleet)))
            tx.zadd(self.keys.fleet_ids, {fleet.id: 0})
            await tx.execute()

    @mapped
    async def get_fleet(self, fleet_id: str) -> Fleet | None:
        raw = await self.client.hget(self.keys.fleets, fleet_id)
        return decode_as(Fleet, json.loads(raw)) if raw else None

    async def _page(self, ids_key: str, items_key: str, after_id: str, limit: int) -> list[dict[str, Any]]:
        """JSON items whose ids follow ``after_id`` in the sorted set ``ids_key``, from hash ``items_key``."""
        start = f"({after_id}" if after_id else "-"
        ids: list[Any] = await self.client.zrange(ids_key, start, "+", bylex=True, offset=0, num=limit)
        raws: list[Any] = await self.client.hmget(items_key, ids) if ids else []
        return [json.loads(r) for r in raws if r]

    @mapped
    async def list_fleets(self, after_id: str, limit: int) -> list[Fleet]:
        items = await self._page(self.keys.fleet_ids, self.keys.fleets, after_id, limit)
        return [decode_as(Fleet, i) for i in items]

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

    @mapped
    async def put_vehicle(self, vehicle: Vehicle) -> None:
        old = await self.get_vehicle(vehicle.id)
        async with self.client.pipeline(transaction=True) as tx:
            if old is not None and old.fleet_id != vehicle.fleet_id:
                tx.zrem(self.keys.fleet_vehicle_ids(old.fleet_id), vehicle.id)
            tx.hset(self.keys.vehicles, vehicle.id, json.dumps(encode(vehicle)))
            tx.zadd(self.keys.fleet_vehicle_ids(vehicle.fleet_id), {vehicle.id: 0})
            await tx.execute()

    @mapped
    async def get_vehicle(self, vehicle_id: str) -> Vehicle | None:
        raw = await self.client.hget(self.keys.vehicles, vehicle_id)
        return decode_as(Vehicle, json.loads(raw)) if raw else None

    @mapped
    async def list_vehicles(self, fleet_id: str, after_id: str, limit: int) -> list[Vehicle]:
        items = await self._page(self.keys.fleet_vehicle_ids(fleet_id), self.keys.vehicles, after_id, limit)
        return [decode_as(Vehicle, i) for i in items]

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
