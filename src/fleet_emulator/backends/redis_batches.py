"""Redis commands of concurrent calls, sent together: one round trip serves every call waiting for it.

Under load, many calls at once read the same few keys (their namespace's control version, the clock, a
vehicle) and each one that finishes writes its journal entry. ``Batcher`` is a group commit: what callers
submit while a round trip is on its way waits for it to return and then goes, all of it, in the next one.
A caller's command is therefore always sent after it was submitted, so a read sees every write
acknowledged before the call asked (on every replica: nothing is cached), and with one call at a time each
command is a round trip of its own, as without batching. ``CoalescedReads`` sends the distinct reads of a
batch in one pipeline (a read asked by several callers once), once more on a connection that broke (a
pooled connection is stale after Redis restarted: ``once_more_if_stale``). A caller that is cancelled
stops waiting; its command may still be sent. A batch that fails gives each of its callers the error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

import redis.asyncio as aioredis

from fleet_emulator.backends.redis_errors import once_more_if_stale

T = TypeVar("T")
R = TypeVar("R")
Command = tuple[str | int, ...]
Flush = Callable[[Sequence[T]], Awaitable[Sequence[R | Exception]]]


class Batcher(Generic[T, R]):
    """Submitted items go to ``flush`` in batches, one batch at a time; ``flush`` gives, per item, its
    result or the exception that item failed with."""

    def __init__(self, flush: Flush[T, R]) -> None:
        self._flush = flush
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._sending: asyncio.Task[None] | None = None

    @property
    def queued(self) -> int:
        """Items waiting for the next round trip."""
        return len(self._waiting)

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._waiting.append((item, future))
        if self._sending is None:
            self._sending = loop.create_task(self._send())
        return await future

    async def _send(self) -> None:
        batch: list[tuple[T, asyncio.Future[R]]] = []
        try:
            while self._waiting:
                await asyncio.sleep(0)  # the calls that are ready to run join this round trip too
                batch, self._waiting = self._waiting, []
                try:
                    results = await self._flush([item for item, _ in batch])
                except Exception as error:  # every caller of the batch gets it
                    results = [error] * len(batch)
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():
                        continue
                    if isinstance(result, Exception):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
                batch = []
        finally:  # cancelled (the loop is closing): nobody waits for ever
            self._sending = None
            for _, future in (*batch, *self._waiting):
                future.cancel()
            self._waiting = []


class CoalescedReads:
    """Read commands (``GET``, ``HGET``, ...) of concurrent callers in one pipeline per round trip, each
    distinct command once."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self._batcher: Batcher[Command, Any] = Batcher(self._read)

    @property
    def queued(self) -> int:
        return self._batcher.queued

    async def read(self, *command: str | int) -> Any:
        return await self._batcher.submit(command)

    async def _read(self, commands: Sequence[Command]) -> list[Any]:
        distinct = list(dict.fromkeys(commands))
        replies = await once_more_if_stale(lambda: self._send(distinct))
        reply_of = dict(zip(distinct, replies, strict=True))
        return [reply_of[command] for command in commands]

    async def _send(self, distinct: list[Command]) -> list[Any]:
        if len(distinct) == 1:
            replies = [await self.client.execute_command(*distinct[0])]  # type: ignore[no-untyped-call]
        else:
            async with self.client.pipeline(transaction=False) as pipe:
                for command in distinct:
                    pipe.execute_command(*command)
                replies = await pipe.execute(raise_on_error=False)
        return replies
