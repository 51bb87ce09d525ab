"""Redis ``JournalStore``: the finished calls of a namespace, from every replica, within its budgets.

An entry is kept twice over: its stored form (``journal_bytes.dump``) in the hash ``journal:entries`` under
its sequence number, and a line of what queries filter on (sequence, method, flow id, code, size) in the
stream ``journal:index``, so that ``ListJournalEntries`` reads the small index and only the entries it
returns. Keeping entries is one Lua script for the entries of every call that finished meanwhile
(``redis_batches.Batcher``): it numbers each entry (``INCR`` of ``journal:sequence``) unless a running stream
was numbered when it started, adds both, and drops the oldest entries while there are more than the
capacity or their bytes (``journal:bytes``) exceed the budget, keeping at least the newest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis

from fleet_emulator.backends import journal_bytes
from fleet_emulator.backends.redis_batches import Batcher
from fleet_emulator.backends.redis_errors import mapped
from fleet_emulator.backends.redis_keys import RedisKeys
from fleet_emulator.domain.journal import JournalEntry, JournalQuery

Keeping = tuple[JournalEntry, int, int]  # an entry, the capacity and the byte budget
DECODE_IN_THREAD = 200  # entries read at once beyond which they are decoded off the event loop
KEEP = """
local capacity, budget = tonumber(ARGV[1]), tonumber(ARGV[2])
local sequences = {}
local used = 0
for at = 3, #ARGV, 5 do
  local sequence = tonumber(ARGV[at])
  if sequence == 0 then sequence = redis.call('INCR', KEYS[3]) end
  local size = string.len(ARGV[at + 1])
  redis.call('XADD', KEYS[1], '*', 'seq', sequence, 'size', size, 'method', ARGV[at + 2],
    'flow', ARGV[at + 3], 'code', ARGV[at + 4])
  redis.call('HSET', KEYS[2], sequence, ARGV[at + 1])
  used = redis.call('INCRBY', KEYS[4], size)
  sequences[#sequences + 1] = sequence
end
local length = redis.call('XLEN', KEYS[1])
local excess = math.min(length - capacity, length - 1)
if excess > 0 then  -- over the capacity: the oldest go in one read
  for _, oldest in ipairs(redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', excess)) do
    redis.call('XDEL', KEYS[1], oldest[1])
    redis.call('HDEL', KEYS[2], oldest[2][2])
    used = redis.call('DECRBY', KEYS[4], tonumber(oldest[2][4]))
  end
end
while used > budget and redis.call('XLEN', KEYS[1]) > 1 do  -- over the byte budget: the oldest, one by one
  local oldest = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1]
  redis.call('XDEL', KEYS[1], oldest[1])
  redis.call('HDEL', KEYS[2], oldest[2][2])
  used = redis.call('DECRBY', KEYS[4], tonumber(oldest[2][4]))
end
return sequences
"""  # ARGV: capacity, budget, then per entry: sequence (0: number it now), stored form, method, flow id, code
CLEAR = """
local count = redis.call('XLEN', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return count
"""  # the sequence goes on, so that a reader's ``after_sequence`` never hides new entries


class RedisJournalStore:
    def __init__(self, client: aioredis.Redis, keys: RedisKeys) -> None:
        self.client = client
        self.index_key = keys.journal("index")
        self.entries_key = keys.journal("entries")
        self.sequence_key = keys.journal("sequence")
        self.bytes_key = keys.journal("bytes")
        self._keep = client.register_script(KEEP)
        self._kept: Batcher[Keeping, int] = Batcher(self._keep_all)
        self._clear = client.register_script(CLEAR)

    @mapped
    async def sequence(self) -> int:
        number: int = await self.client.incr(self.sequence_key)
        return number

    @mapped
    async def keep(self, entry: JournalEntry, capacity: int, budget_bytes: int) -> None:
        entry.sequence = await self._kept.submit((entry, capacity, budget_bytes))

    async def _keep_all(self, batch: Sequence[Keeping]) -> list[int]:
        """The entries of concurrent calls in one script (the budgets are the newest call's)."""
        _, capacity, budget_bytes = batch[-1]
        args: list[str | int] = [capacity, budget_bytes]
        for entry, _, _ in batch:
            args += [entry.sequence, journal_bytes.dump(entry), entry.method, entry.flow_id, entry.code]
        keys = [self.index_key, self.entries_key, self.sequence_key, self.bytes_key]
        return [int(sequence) for sequence in await self._keep(keys=keys, args=args)]

    @mapped
    async def entries(self) -> list[JournalEntry]:
        index: Any = await self.client.xrange(self.index_key)
        return await self._read([int(fields["seq"]) for _, fields in index])

    @mapped
    async def find(self, query: JournalQuery) -> list[JournalEntry]:
        index: Any = await self.client.xrange(self.index_key)
        wanted = sorted(
            int(f["seq"])
            for _, f in index
            if query.admits_fields(int(f["seq"]), f["method"], f["flow"], int(f["code"]), True)
        )
        return await self._read(wanted[: query.limit])

    async def _read(self, sequences: list[int]) -> list[JournalEntry]:
        if not sequences:
            return []
        texts: list[Any] = await self.client.hmget(self.entries_key, sequences)
        kept = [(text, sequence) for text, sequence in zip(texts, sequences, strict=True) if text]
        if len(kept) > DECODE_IN_THREAD:
            return await asyncio.to_thread(_load_all, kept)
        return _load_all(kept)

    @mapped
    async def clear(self) -> int:
        count: int = await self._clear(keys=[self.index_key, self.entries_key, self.bytes_key])
        return count


def _load_all(kept: list[tuple[str, int]]) -> list[JournalEntry]:
    return [journal_bytes.load(text, sequence) for text, sequence in kept]
