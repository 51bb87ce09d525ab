"""Backends per namespace: ``MemoryBackends`` gives each namespace its own in-process state,
``RedisBackends`` gives each its own key prefix on one shared Redis client (one connection pool).

At start the emulator calls ``connect``: Redis gets up to a time-out to answer (one warning while it
waits), and a server that answers but cannot be used (not a Redis, a DB index out of range, refused
credentials) is ``BackendUnusable`` at once. ``shared_secret`` settles the HS256 secret of the bearer
tokens when none is configured: a random one per process in memory, one random secret created once and
read by every replica on Redis. ``check_redis_url`` tells what is wrong with a URL before anything
connects.

A ``redis+cluster://`` URL gives a Redis Cluster (``redis_clients.py``): the keys of a namespace are
hash-tagged into one slot and each stream into one of its own (``RedisKeys.of``), the tails of streams and
the state feed's subscription each get a connection of their own to the master serving their slot. With
``wait_replicas`` (``--redis-wait-replicas``) every write waits for that many replicas, and the start waits
until every master has them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import Any, Protocol, cast
from urllib.parse import urlsplit

import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.connection import parse_url

from fleet_emulator.backends.base import Backend, ClockStore, Lease, NamespaceRegistry
from fleet_emulator.backends.event_bytes import ENCODING as EVENT_ENCODING
from fleet_emulator.backends.memory import MemoryStateStore
from fleet_emulator.backends.memory_control import (
    MemoryClockStore,
    MemoryControlStore,
    MemoryLease,
    MemoryNamespaceRegistry,
    WakeUpsDue,
)
from fleet_emulator.backends.memory_events import MemoryEventLog, MemoryStateFeed
from fleet_emulator.backends.redis_batches import CoalescedReads
from fleet_emulator.backends.redis_clients import (
    ClusterClient,
    Replication,
    WaitingRedis,
    is_cluster_url,
    node_url,
    plain_url,
)
from fleet_emulator.backends.redis_control import (
    RedisClockStore,
    RedisControlStore,
    RedisLease,
    RedisNamespaceRegistry,
)
from fleet_emulator.backends.redis_errors import FAILURES
from fleet_emulator.backends.redis_events import RedisEventLog, RedisStateFeed
from fleet_emulator.backends.redis_journal import RedisJournalStore
from fleet_emulator.backends.redis_keys import RedisKeys
from fleet_emulator.backends.redis_state import RedisStateStore
from fleet_emulator.domain.background import keep_cancellation
from fleet_emulator.telemetry.metrics import REDIS

log = logging.getLogger(__name__)

BACKENDS = ("memory", "redis")
MAX_POOLED_CONNECTIONS = 1000  # redis-py's default of 100 runs out under a few hundred concurrent calls
UNUSABLE = (
    redis.exceptions.ResponseError,
    redis.exceptions.InvalidResponse,
    redis.exceptions.AuthenticationError,
)
SCHEMES = ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster")
PROBE_TIMEOUT_S = 2.0  # each wait of the start-up ping
FIRST_RETRY_S = 0.1  # then doubling up to 2 s


class BackendUnreachable(Exception):
    """The backend did not answer within the time-out at start."""


class BackendUnusable(Exception):
    """The backend answered, but it cannot be used as it is configured."""


class TooFewReplicas(Exception):
    """A master has fewer replicas than each write is to wait for (at start: waited for)."""


def check_redis_url(url: str) -> str | None:
    """What is wrong with a Redis URL, or None when redis-py can use it."""
    if urlsplit(url).scheme not in SCHEMES:
        return (
            "must start with redis://, rediss://, unix:// or (a Redis Cluster) redis+cluster:// or "
            "rediss+cluster://, e.g. redis://localhost:6379/0"
        )
    try:
        options = parse_url(plain_url(url))
    except ValueError as exc:
        return str(exc)
    database = options.get("db", 0)
    if not isinstance(database, int) or database < 0:
        return "the path must be a database number, e.g. /0"
    if is_cluster_url(url) and database != 0:
        return "names a Redis Cluster, which has database 0 only"
    return None


def _online_replicas(replication: dict[str, Any]) -> int:
    """The replicas in sync with a master, from its ``INFO replication`` (``slave0:...,state=online``)."""
    return sum(
        1
        for name, replica in replication.items()
        if name.startswith("slave") and isinstance(replica, dict) and replica.get("state") == "online"
    )


def _unwrapped(exc: Exception) -> BaseException:
    """Why a cluster client could not connect ("Redis Cluster cannot be connected" says that no node answered;
    its cause says why), else ``exc``."""
    if isinstance(exc, redis.exceptions.RedisClusterException) and exc.__cause__ is not None:
        return exc.__cause__
    return exc


def _cause(exc: BaseException) -> str:
    """What went wrong, in the operating system's words where there are some ("Connection refused")."""
    seen: BaseException | None = exc
    chain: set[int] = set()
    while seen is not None and id(seen) not in chain:
        if isinstance(seen, OSError) and seen.errno:
            return os.strerror(seen.errno)
        chain.add(id(seen))
        seen = seen.__cause__ or seen.__context__
    return str(exc) or type(exc).__name__


def safe_url(url: str) -> str:
    """The URL without its password, for logs and errors."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")).geturl()


class Backends(Protocol):
    def __call__(self, namespace: str) -> Backend:
        """The backend of a namespace ("" is the default namespace)."""
        ...

    async def connect(self, timeout_s: float) -> None:
        """Return once the backend answers; ``BackendUnreachable`` after ``timeout_s``, ``BackendUnusable``
        at once when it answers but cannot be used."""
        ...

    async def shared_secret(self, candidate: str) -> str:
        """The secret every process of the emulator uses: the first candidate offered wins."""
        ...

    def clock_store(self) -> ClockStore:
        """Where the emulator's virtual clock is kept (shared by the replicas on Redis)."""
        ...

    def registry(self) -> NamespaceRegistry:
        """Where the namespaces are registered (shared by the replicas on Redis)."""
        ...

    def lease(self, name: str) -> Lease:
        """A lease that one replica holds at a time (the one process, in memory)."""
        ...

    async def close(self) -> None: ...


class MemoryBackends:
    def __init__(self) -> None:
        self.wake_ups: WakeUpsDue = {}  # of every namespace, as Redis keeps them in one sorted set

    def __call__(self, namespace: str) -> Backend:
        control = MemoryControlStore(namespace, self.wake_ups)
        return Backend(MemoryStateStore(), MemoryEventLog(), MemoryStateFeed(), control)

    async def connect(self, timeout_s: float) -> None:
        return None

    async def shared_secret(self, candidate: str) -> str:
        return candidate

    def clock_store(self) -> ClockStore:
        return MemoryClockStore()

    def registry(self) -> NamespaceRegistry:
        return MemoryNamespaceRegistry(self.wake_ups)

    def lease(self, name: str) -> Lease:
        return MemoryLease()

    async def close(self) -> None:
        return None


CLIENT_SETTINGS: dict[str, Any] = {
    "decode_responses": True,
    "socket_connect_timeout": 2,
    "socket_timeout": 10,
    "health_check_interval": 5,
}


class RedisBackends:
    def __init__(self, url: str, wait_replicas: int = 0) -> None:
        self.url = url
        self.cluster = is_cluster_url(url)
        self.replication = Replication(wait_replicas)
        self.client = self.new_client(max_connections=MAX_POOLED_CONNECTIONS)
        self.event_client = self.new_event_client(max_connections=MAX_POOLED_CONNECTIONS)
        self.reads = CoalescedReads(self.client)

    def new_client(self, **options: Any) -> aioredis.Redis:
        """A client of the Redis, or of the cluster (``ClusterClient``: the same commands, typed as a plain
        client so that the stores take either); its writes wait for the replicas asked for."""
        settings = {**CLIENT_SETTINGS, **options}
        if self.cluster:
            settings.pop("single_connection_client", None)
            return cast(aioredis.Redis, ClusterClient.of_url(self.url, self.replication, **settings))
        if self.replication.replicas:
            waiting = cast(WaitingRedis, WaitingRedis.from_url(self.url, **settings))
            waiting.replication = self.replication
            return waiting
        return aioredis.Redis.from_url(self.url, **settings)

    def new_event_client(self, **options: Any) -> aioredis.Redis:
        """A client for the event log, which reads and writes text as latin-1 (``event_bytes.py``)."""
        return self.new_client(encoding=EVENT_ENCODING, **options)

    async def connection_for(self, key: str, **options: Any) -> aioredis.Redis:
        """A client on a connection of its own (a stream's tail, the state feed's subscription) for
        ``key``: on a cluster, to the master serving the key's slot now."""
        if not self.cluster:
            return self.new_client(single_connection_client=True, **options)
        node = await cast(ClusterClient, self.client).primary_for(key)
        url = node_url(self.url, node.host, int(node.port))
        settings = {**CLIENT_SETTINGS, **options, "single_connection_client": True}
        return aioredis.Redis.from_url(url, **settings)

    async def tail_connection(self, key: str) -> aioredis.Redis:
        return await self.connection_for(key, encoding=EVENT_ENCODING)

    def __call__(self, namespace: str) -> Backend:
        """Keys under ``fleet-emulator:`` for the default namespace, ``fleet-emulator:ns:<name>:`` else
        (hash-tagged on a cluster); each stream's tail gets a connection of its own."""
        keys = RedisKeys.of(namespace, cluster=self.cluster)
        events = RedisEventLog(self.event_client, keys, self.tail_connection)
        subscriber = self.connection_for if self.cluster else None
        return Backend(
            RedisStateStore(self.client, keys, self.reads),
            events,
            RedisStateFeed(self.client, keys, subscriber),
            RedisControlStore(self.client, keys, namespace, self.reads),
            RedisJournalStore(self.client, keys),
        )

    async def connect(self, timeout_s: float) -> None:
        """Ping with a client of its own whose every wait is short, so that a Redis that accepts
        connections but never answers is given up in time too."""
        deadline = time.monotonic() + timeout_s
        short = min(PROBE_TIMEOUT_S, timeout_s)
        probe = self.new_client(
            socket_connect_timeout=short, socket_timeout=short, single_connection_client=True
        )
        delay = FIRST_RETRY_S
        try:
            while True:
                try:
                    await probe.ping()
                    await self._check_replicas(probe)
                    REDIS.answered()
                    return
                except Exception as caught:
                    exc = _unwrapped(caught)
                    if isinstance(exc, (*UNUSABLE, redis.exceptions.RedisClusterException)):
                        raise BackendUnusable(f"{safe_url(self.url)} cannot be used: {exc}") from None
                    if not isinstance(exc, (*FAILURES, TooFewReplicas)):
                        raise
                    REDIS.failed("connect")
                    left = deadline - time.monotonic()
                    if left <= 0:
                        few = isinstance(exc, TooFewReplicas)
                        what = "lacked replicas for" if few else "did not answer within"
                        raise BackendUnreachable(
                            f"Redis at {safe_url(self.url)} {what} {timeout_s:g} s "
                            f"(--redis-connect-timeout): {_cause(exc)}"
                        ) from None
                    if delay == FIRST_RETRY_S:
                        url = safe_url(self.url)
                        log.warning("waiting up to %g s for Redis at %s: %s", timeout_s, url, _cause(exc))
                await asyncio.sleep(min(delay, left))
                keep_cancellation()
                delay = min(delay * 2, 2.0)
        finally:
            with contextlib.suppress(*FAILURES):
                await probe.aclose()

    async def _check_replicas(self, probe: aioredis.Redis) -> None:
        """``TooFewReplicas`` unless every master has the replicas ``--redis-wait-replicas`` asks for."""
        wanted = self.replication.replicas
        if not wanted:
            return
        if self.cluster:
            nodes = cast(ClusterClient, probe).get_primaries()
            infos: Any = await probe.info("replication", target_nodes=nodes)
            counts = [_online_replicas(info) for info in infos.values()]
        else:
            counts = [_online_replicas(await probe.info("replication"))]
        if min(counts) < wanted:
            raise TooFewReplicas(
                f"a master has {min(counts)} replica{'' if min(counts) == 1 else 's'}, "
                f"--redis-wait-replicas asks for {wanted}"
            )

    async def shared_secret(self, candidate: str) -> str:
        key = RedisKeys().jwt_secret
        await self.client.set(key, candidate, nx=True)
        kept: Any = await self.client.get(key)
        return str(kept)

    def clock_store(self) -> ClockStore:
        return RedisClockStore(self.reads, RedisKeys())

    def registry(self) -> NamespaceRegistry:
        return RedisNamespaceRegistry(self.client, self.connection_for)

    def lease(self, name: str) -> Lease:
        return RedisLease(self.client, RedisKeys().lease(name))

    async def close(self) -> None:
        await self.client.aclose()
        await self.event_client.aclose()


def memory_backend() -> Backend:
    return MemoryBackends()("")


def backends_for(name: str, redis_url: str, wait_replicas: int = 0) -> Backends:
    if name == "memory":
        return MemoryBackends()
    if name == "redis":
        return RedisBackends(redis_url, wait_replicas)
    raise ValueError(f"unknown backend {name!r}; expected one of {', '.join(BACKENDS)}")
