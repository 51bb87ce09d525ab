"""Redis ``JournalStore``: the finished calls of a namespace, from every replica, in one capped stream.

Keeping an entry is one Lua script: it numbers the entry (``INCR`` of ``journal-sequence``) unless a
running stream was numbered when it started, appends it with its size, and drops the oldest entries while
there are more than the capacity or their bytes (``journal-bytes``) exceed the namespace's budget, keeping
at least the newest. Entries are stored as ``journal_bytes.dump`` makes them.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from fleet_emulator.backends import journal_bytes
from fleet_emulator.backends.redis_errors import mapped
from fleet_emulator.backends.redis_keys import RedisKeys
from fleet_emulator.domain.journal import JournalEntry

KEEP = """
local sequence = tonumber(ARGV[1])
if sequence == 0 then sequence = redis.call('INCR', KEYS[2]) end
redis.call('XADD', KEYS[1], '*', 'seq', sequence, 'size', string.len(ARGV[2]), 'entry', ARGV[2])
local used = redis.call('INCRBY', KEYS[3], string.len(ARGV[2]))
while redis.call('XLEN', KEYS[1]) > 1
  and (redis.call('XLEN', KEYS[1]) > tonumber(ARGV[3]) or used > tonumber(ARGV[4])) do
  local oldest = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1]
  redis.call('XDEL', KEYS[1], oldest[1])
  used = redis.call('DECRBY', KEYS[3], tonumber(oldest[2][4]))
end
return sequence
"""
CLEAR = """
local count = redis.call('XLEN', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2])
return count
"""  # the sequence goes on, so that a reader's ``after_sequence`` never hides new entries


class RedisJournalStore:
    def __init__(self, client: aioredis.Redis, keys: RedisKeys) -> None:
        self.client = client
        self.entries_key = keys.journal("entries")
        self.sequence_key = keys.journal("sequence")
        self.bytes_key = keys.journal("bytes")
        self._keep = client.register_script(KEEP)
        self._clear = client.register_script(CLEAR)

    @mapped
    async def sequence(self) -> int:
        number: int = await self.client.incr(self.sequence_key)
        return number

    @mapped
    async def keep(self, entry: JournalEntry, capacity: int, budget_bytes: int) -> None:
        keys = [self.entries_key, self.sequence_key, self.bytes_key]
        args: list[str | int] = [entry.sequence, journal_bytes.dump(entry), capacity, budget_bytes]
        entry.sequence = int(await self._keep(keys=keys, args=args))

    @mapped
    async def entries(self) -> list[JournalEntry]:
        raw: Any = await self.client.xrange(self.entries_key)
        return [journal_bytes.load(fields["entry"], int(fields["seq"])) for _, fields in raw]

    @mapped
    async def clear(self) -> int:
        count: int = await self._clear(keys=[self.entries_key, self.bytes_key])
        return count
