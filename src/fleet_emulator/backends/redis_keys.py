"""Every Redis key the emulator uses, in one place, under one prefix so that a reset can find them all.

State: ``fleets`` and ``vehicles`` are hashes of id to JSON; ``fleet-ids`` and ``fleet:<id>:vehicle-ids``
are sorted sets with score 0, read in lexicographic order for key-set pages; ``cursor:<token>`` holds a
page cursor as JSON with an expiry;
``seeded`` marks state that a replica has already loaded a scenario into; ``command-counts`` is a hash of
``<vehicle id>:<command>`` to executions, ``command:<idempotency key>`` a command result with an expiry.
Durable streams are ``stream:<name>`` with their last id in ``stream-last:<name>``; live states go out on
``state:<fleet>``. What steers a namespace is under ``control:`` (``redis_control.py``): ``version``,
``policies``, ``rules`` (a hash of id to JSON) with ``rule-order``, ``rule-hits`` and ``rule-draws``, and
``buckets``; its journal under ``journal:`` (``redis_journal.py``); the event ids a stream was given by
``append_once`` under ``stream-event-ids:`` and ``stream-event-times:``. Under the default prefix only: the
HS256 secret of bearer tokens that replicas share is ``jwt-secret``, the virtual clock ``clock``, the
namespaces other than the default one ``namespaces`` (deletions announced on ``namespace-deleted``) and the
scheduled wake-ups of every namespace ``wake-ups``, and the simulator's lease ``lease:simulator``.

On one Redis the prefix is ``fleet-emulator`` (the default namespace) or ``fleet-emulator:ns:<name>``. On a
Redis Cluster (``RedisKeys.of(..., cluster=True)``) the prefix is that name as a hash tag,
``{fleet-emulator}`` or ``{fleet-emulator:ns:<name>}``: every key made as ``f"{prefix}:..."`` lies in the
namespace's one slot, so that a transaction or script over several of them never crosses slots. A durable
stream's keys are ``<name>:stream:{<name>:<stream>}`` (and ``stream-last:``, ``stream-last-append:``): one
slot per stream, shared by its three keys, so that the streams spread over the masters. Global keys (made
with the default ``RedisKeys()``) keep their plain names: each is used alone, in whatever slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

DEFAULT_PREFIX = "fleet-emulator"


@dataclass(frozen=True)
class RedisKeys:
    prefix: str = DEFAULT_PREFIX  # on a cluster a hash tag: "{fleet-emulator}" (see the module)

    @classmethod
    def of(cls, namespace: str = "", cluster: bool = False) -> RedisKeys:
        """The keys of a namespace ("" is the default one), hash-tagged on a cluster."""
        name = f"{DEFAULT_PREFIX}:ns:{namespace}" if namespace else DEFAULT_PREFIX
        return cls(f"{{{name}}}" if cluster else name)

    @property
    def name(self) -> str:
        """The prefix without the braces of its hash tag."""
        return self.prefix.removeprefix("{").removesuffix("}")

    def _of_stream(self, kind: str, stream: str) -> str:
        if self.name == self.prefix:
            return f"{self.prefix}:{kind}:{stream}"
        return f"{self.name}:{kind}:{{{self.name}:{stream}}}"  # the stream's own slot

    @property
    def fleets(self) -> str:
        return f"{self.prefix}:fleets"

    @property
    def fleet_ids(self) -> str:
        return f"{self.prefix}:fleet-ids"

    @property
    def vehicles(self) -> str:
        return f"{self.prefix}:vehicles"

    def fleet_vehicle_ids(self, fleet_id: str) -> str:
        return f"{self.prefix}:fleet:{fleet_id}:vehicle-ids"

    @property
    def seeded(self) -> str:
        return f"{self.prefix}:seeded"

    def cursor(self, token: str) -> str:
        return f"{self.prefix}:cursor:{token}"

    @property
    def command_counts(self) -> str:
        return f"{self.prefix}:command-counts"

    def command(self, idempotency_key: str) -> str:
        return f"{self.prefix}:command:{idempotency_key}"

    def stream(self, name: str) -> str:
        return self._of_stream("stream", name)

    def stream_last(self, name: str) -> str:
        return self._of_stream("stream-last", name)

    def stream_last_append(self, name: str) -> str:
        return self._of_stream("stream-last-append", name)

    def stream_event_ids(self, name: str) -> str:
        """A hash of event id to message id, of the events appended with ``append_once``."""
        return self._of_stream("stream-event-ids", name)

    def stream_event_times(self, name: str) -> str:
        """The same event ids by the milliseconds of their message ids, to forget them with the entries."""
        return self._of_stream("stream-event-times", name)

    @property
    def jwt_secret(self) -> str:
        return f"{self.prefix}:jwt-secret"

    @property
    def clock(self) -> str:
        return f"{self.prefix}:clock"

    @property
    def namespaces(self) -> str:
        return f"{self.prefix}:namespaces"

    @property
    def wake_ups(self) -> str:
        return f"{self.prefix}:wake-ups"

    def lease(self, name: str) -> str:
        """The key of a lease (``simulator``): the id of the process that holds it."""
        return f"{self.prefix}:lease:{name}"

    @property
    def namespace_deleted(self) -> str:
        """The channel on which a replica announces a namespace it deleted."""
        return f"{self.prefix}:namespace-deleted"

    def journal(self, part: str) -> str:
        """One of the keys of the namespace's shared journal (``entries``, ``sequence``, ``bytes``)."""
        return f"{self.prefix}:journal:{part}"

    def control(self, part: str) -> str:
        """One of the keys of what steers the namespace (``version``, ``policies``, ``rules``...)."""
        return f"{self.prefix}:control:{part}"

    def state_channel(self, fleet_id: str) -> str:
        return f"{self.prefix}:state:{fleet_id}"

    @property
    def state_patterns(self) -> tuple[str, ...]:
        """Globs matching every key of the state store (not the streams)."""
        p = self.prefix
        return (
            f"{p}:fleets",
            f"{p}:fleet-ids",
            f"{p}:vehicles",
            f"{p}:fleet:*",
            f"{p}:cursor:*",
            f"{p}:seeded",
            f"{p}:command-counts",
            f"{p}:command:*",
        )

    @property
    def stream_patterns(self) -> tuple[str, ...]:
        return (
            f"{self.name}:stream:*",
            f"{self.name}:stream-last:*",
            f"{self.name}:stream-last-append:*",
            f"{self.name}:stream-event-ids:*",
            f"{self.name}:stream-event-times:*",
        )

    @staticmethod
    async def delete_matching(client: aioredis.Redis, patterns: tuple[str, ...]) -> None:
        """Delete every key matching one of the globs, in batches (on a cluster, ``SCAN`` goes to every
        master and ``UNLINK`` is split by slot)."""
        for pattern in patterns:
            batch: list[Any] = [key async for key in client.scan_iter(match=pattern, count=1000)]
            for start in range(0, len(batch), 1000):
                await client.unlink(*batch[start : start + 1000])
