"""The emulator's Redis clients: one Redis or a Redis Cluster, and writes acknowledged by replicas.

A URL ``redis+cluster://host:port[/0]`` (``rediss+cluster://`` with TLS) names a Redis Cluster by one of its
nodes: the client (``ClusterClient``, redis-py's ``RedisCluster``) learns the others and which master serves
each slot from it, and follows fail-overs (``MOVED``, a lost node: the slot map is read again). Every other
URL is one Redis with redis-py's plain client. Keys are laid out so that what one command, transaction or
script touches lies in one slot (``redis_keys.py``).

A transaction (``pipeline(transaction=True)``) on a cluster runs here, not in redis-py (whose asyncio cluster
transaction, in 8.1, queues each command from a thread of its own): ``MULTI``, the commands and ``EXEC`` go
in one write on one connection of the master of the commands' slot (which must be one slot, else
``CrossSlotTransactionError`` before anything is sent); a redirection (``MOVED``, ``ASK``, ``TRYAGAIN``,
``CLUSTERDOWN``) aborts it before it ran, so it is sent again, to the new owner, a few times. The cluster
client learns the slot map before its first command (redis-py 8.1 loses the connections of commands that
run while it initialises, and sends them again: a write would happen twice).

``Replication(replicas=N)`` (``--redis-wait-replicas``) makes every write wait for N replicas: after each
command that is not a read, and after each transaction with a write in it, ``WAIT N <timeout>`` goes on the
same connection (so it waits for exactly that write), in the same round trip. Fewer acknowledgements within
the time-out raise ``NotReplicated``, which the backends report as ``UNAVAILABLE`` (the write may still have
happened on the master). With N = 0, writes are acknowledged as soon as the master has them (the default).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.client import EMPTY_RESPONSE, NEVER_DECODE

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
WAIT_TIMEOUT = timedelta(seconds=1)  # how long a write waits for its replicas
REDIRECTIONS = 5  # times a command or transaction is sent again after MOVED, ASK, TRYAGAIN or CLUSTERDOWN
RESHARDING_PAUSE_S = 0.05
FAIL_OVER_PAUSE_S = 0.25
# Commands that change nothing: every other command waits for the replicas (a script too, read-only or not).
READS = frozenset(
    {
        "GET", "MGET", "STRLEN", "EXISTS", "TYPE", "TTL", "PTTL", "HGET", "HMGET", "HGETALL", "HKEYS",
        "HVALS", "HLEN", "HEXISTS", "ZRANGE", "ZRANGEBYLEX", "ZRANGEBYSCORE", "ZREVRANGE", "ZCARD",
        "ZSCORE", "ZRANK", "ZCOUNT", "SMEMBERS", "SISMEMBER", "SCARD", "LRANGE", "LLEN", "LINDEX",
        "ZREVRANGEBYSCORE", "ZREVRANGEBYLEX", "ZLEXCOUNT", "ZMSCORE", "ZREVRANK", "SMISMEMBER",
        "GETRANGE", "HSTRLEN", "HSCAN", "SSCAN", "ZSCAN", "EVAL_RO", "EVALSHA_RO", "FCALL_RO",
        "XRANGE", "XREVRANGE", "XREAD", "XLEN", "XINFO", "SCAN", "KEYS", "DBSIZE", "PING", "ECHO",
        "INFO", "TIME", "PUBLISH", "SPUBLISH", "CLIENT", "CLUSTER", "COMMAND", "CONFIG", "SCRIPT",
        "MEMORY", "OBJECT", "WAIT", "READONLY", "READWRITE", "ASKING",
    }
)  # fmt: skip
REDIRECTED = (
    redis.exceptions.AskError,  # MOVED too
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,
)

Args = tuple[Any, ...]
Options = dict[str, Any]


class NotReplicated(Exception):
    """Fewer replicas than asked acknowledged a write within the time-out."""


@dataclass(frozen=True)
class Replication:
    """How many replicas acknowledge each write before it counts as done, and how long to wait for them."""

    replicas: int = 0
    timeout: timedelta = WAIT_TIMEOUT

    def waits_for(self, commands: Sequence[Args]) -> bool:
        return self.replicas > 0 and any(is_write(args) for args in commands)

    @property
    def wait(self) -> tuple[Args, Options]:
        return ("WAIT", self.replicas, int(self.timeout.total_seconds() * 1000)), {}

    def check(self, acknowledged: Any) -> None:
        if isinstance(acknowledged, Exception):
            raise acknowledged
        if int(acknowledged) < self.replicas:
            raise NotReplicated(
                f"{acknowledged} of {self.replicas} replicas acknowledged the write within "
                f"{self.timeout.total_seconds():g} s (--redis-wait-replicas)"
            )


def is_write(args: Args) -> bool:
    name = args[0].decode() if isinstance(args[0], bytes) else str(args[0])
    return name.split(" ", 1)[0].upper() not in READS


def is_cluster_url(url: str) -> bool:
    return urlsplit(url).scheme in CLUSTER_SCHEMES


def plain_url(url: str) -> str:
    """The URL as redis-py reads it: a cluster URL without its ``+cluster``."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme=CLUSTER_SCHEMES[parts.scheme])) if is_cluster_url(url) else url


def node_url(url: str, host: str, port: int) -> str:
    """The plain URL of one node of a cluster: its credentials and options, another address."""
    parts = urlsplit(plain_url(url))
    credentials = parts.netloc.rpartition("@")[0]
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return urlunsplit(parts._replace(netloc=f"{credentials}@{address}" if credentials else address))


async def _exchange(connection: AbstractConnection, batch: Sequence[tuple[Args, Options]]) -> list[Any]:
    """Send ``batch`` in one write on ``connection`` and read one reply per command, in order: an error
    reply is returned as its exception. A connection that fails or is left mid-reply is closed."""
    try:
        await connection.send_packed_command(connection.pack_commands([args for args, _ in batch]))
        replies: list[Any] = []
        for _, options in batch:
            try:
                replies.append(await connection.read_response(disable_decoding=NEVER_DECODE in options))
            except redis.exceptions.ResponseError as exc:
                replies.append(exc)
        return replies
    except BaseException:
        with contextlib.suppress(Exception):
            await connection.disconnect()
        raise


def _parsed(reply: Any, args: Args, options: Options, callbacks: Mapping[Any, Any]) -> Any:
    """A reply as redis-py's client would return it (its response callback applied); an error is raised."""
    if isinstance(reply, redis.exceptions.ResponseError):
        if EMPTY_RESPONSE in options:
            return options[EMPTY_RESPONSE]
        raise reply
    callback = callbacks.get(args[0])
    if callback is None:
        return reply
    extra = {k: v for k, v in options.items() if k not in ("keys", EMPTY_RESPONSE, NEVER_DECODE)}
    return callback(reply, **extra)


def _first_redirection(replies: Sequence[Any]) -> BaseException | None:
    return next((r for r in replies if isinstance(r, REDIRECTED)), None)


def _transaction_batch(
    commands: Sequence[tuple[Args, Options]], replication: Replication
) -> list[tuple[Args, Options]]:
    batch: list[tuple[Args, Options]] = [(("MULTI",), {}), *commands, (("EXEC",), {})]
    if replication.waits_for([args for args, _ in commands]):
        batch.append(replication.wait)
    return batch


def _transaction_results(
    replies: Sequence[Any],
    commands: Sequence[tuple[Args, Options]],
    callbacks: Mapping[Any, Any],
    replication: Replication,
) -> list[Any]:
    """The results of ``_transaction_batch``'s replies, raising the first error as redis-py's transaction
    does; then the check of the replicas' acknowledgement."""
    queued = replies[1 : 1 + len(commands)]
    for reply in [replies[0], *queued]:
        if isinstance(reply, Exception):
            raise reply  # the transaction was aborted: nothing of it ran
    executed = replies[1 + len(commands)]
    if isinstance(executed, Exception):
        raise executed
    if executed is None:
        raise redis.exceptions.WatchError("Watched variable changed.")
    results = [
        _parsed(reply, args, options, callbacks)
        for reply, (args, options) in zip(executed, commands, strict=True)
    ]
    if len(replies) > len(commands) + 2:
        replication.check(replies[-1])
    return results


class WaitingRedis(aioredis.Redis):
    """A client of one Redis whose writes wait for ``replication.replicas`` replicas (``WAIT`` on the
    connection that wrote)."""

    replication = Replication()

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        # a client on a connection of its own (a tail's) only reads
        if self.connection is not None or not self.replication.waits_for([args]):
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        replies = await self.one_connection([(args, options), self.replication.wait])
        result = _parsed(replies[0], args, options, self.response_callbacks)
        self.replication.check(replies[1])
        return result

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        return _WaitingPipeline(self, transaction, shard_hint)

    async def one_connection(self, batch: Sequence[tuple[Args, Options]]) -> list[Any]:
        pool = self.connection_pool
        connection = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            return await _exchange(connection, batch)
        finally:
            await pool.release(connection)


class _WaitingPipeline(Pipeline):
    """A pipeline whose transactions with a write in them wait for the replicas."""

    def __init__(self, client: WaitingRedis, transaction: bool, shard_hint: str | None) -> None:
        super().__init__(client.connection_pool, client.response_callbacks, transaction, shard_hint)
        self.waiting = client

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        commands = [(tuple(args), dict(options)) for args, options in self.command_stack]
        replication = self.waiting.replication
        if not self.is_transaction or self.watching or not replication.waits_for([a for a, _ in commands]):
            return await super().execute(raise_on_error)
        try:
            replies = await self.waiting.one_connection(_transaction_batch(commands, replication))
            return _transaction_results(replies, commands, self.response_callbacks, replication)
        finally:
            await self.reset()  # type: ignore[no-untyped-call]


class ClusterClient(RedisCluster):
    """redis-py's cluster client with transactions on one connection of the slot's master (see the module),
    and writes that wait for ``replication.replicas`` replicas."""

    replication = Replication()

    @classmethod
    def of_url(cls, url: str, replication: Replication, **options: Any) -> ClusterClient:
        client = cast(ClusterClient, cls.from_url(plain_url(url), **options))
        client.replication = replication
        return client

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        # Learn the slot map before anything else: commands that run while redis-py 8.1 initialises
        # concurrently lose their connections, and are sent again (a write then happens twice).
        await self.initialize()
        if "target_nodes" in kwargs or not self.replication.waits_for([args]):
            return await super().execute_command(*args, **kwargs)
        replies = await self.on_master(args, [(args, kwargs), self.replication.wait])
        result = _parsed(replies[0], args, kwargs, self.response_callbacks)
        self.replication.check(replies[1])
        return result

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> ClusterPipeline:
        if transaction:
            return _SlotTransaction(self)  # type: ignore[abstract]
        return super().pipeline(transaction, shard_hint)

    async def primary_for(self, key: str) -> ClusterNode:
        """The master serving ``key``'s slot, once it answered for it (so the slot map is current)."""
        await self.exists(key)
        node = self.get_node_from_key(key)
        if node is None:
            raise redis.exceptions.SlotNotCoveredError(f"no master serves the slot of {key!r}")
        return node

    async def on_master(self, routed_by: Args, batch: Sequence[tuple[Args, Options]]) -> list[Any]:
        """``batch`` in one write on one connection of the master serving ``routed_by``'s slot, sent again
        (a few times) while a reply says the slot is elsewhere or in transition: redirected, nothing ran."""
        for attempt in range(REDIRECTIONS + 1):
            await self.initialize()
            node = self.nodes_manager.get_node_from_slot(await self._determine_slot(*routed_by))
            connection = node.acquire_connection()
            try:
                await node.disconnect_if_needed(connection)
                replies = await _exchange(connection, batch)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
                # the master is gone (a fail-over?): read the slot map again before the next command
                node.update_active_connections_for_reconnect()
                await node.disconnect_free_connections()
                self.nodes_manager.move_node_to_end_of_cached_nodes(node.name)
                self._initialize = True
                raise
            finally:
                node.release(connection)
            redirected = _first_redirection(replies)
            if redirected is None or attempt == REDIRECTIONS:
                return replies
            if isinstance(redirected, redis.exceptions.MovedError):
                await self.nodes_manager.move_slot(redirected)
            elif isinstance(redirected, redis.exceptions.ClusterDownError):
                self._initialize = True
                await asyncio.sleep(FAIL_OVER_PAUSE_S)
            else:  # ASK, TRYAGAIN: the slot is moving between masters
                await asyncio.sleep(RESHARDING_PAUSE_S)
        raise AssertionError("unreachable")

    async def transaction_on_master(self, commands: Sequence[tuple[Args, Options]]) -> list[Any]:
        if not commands:
            return []
        slots = {await self._determine_slot(*args) for args, _ in commands}
        if len(slots) != 1:
            raise redis.exceptions.CrossSlotTransactionError(
                f"a transaction touches {len(slots)} slots: {[args[:2] for args, _ in commands]}"
            )
        batch = _transaction_batch(commands, self.replication)
        replies = await self.on_master(commands[0][0], batch)
        return _transaction_results(replies, commands, self.response_callbacks, self.replication)


class _SlotTransaction(ClusterPipeline):
    """``pipeline(transaction=True)`` of ``ClusterClient``: queues commands like redis-py's pipeline, and
    runs them as one ``MULTI``/``EXEC`` on one connection of the slot's master."""

    def __init__(self, client: ClusterClient) -> None:
        super().__init__(client, transaction=False)
        self.client = client
        self.queued: list[tuple[Args, Options]] = []

    def execute_command(self, *args: Any, **kwargs: Any) -> ClusterPipeline:
        self.queued.append((args, kwargs))
        return self

    def __len__(self) -> int:
        return len(self.queued)

    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> list[Any]:
        try:
            return await self.client.transaction_on_master(self.queued)
        finally:
            await self.reset()

    async def reset(self) -> None:  # type: ignore[override]
        self.queued = []
        await super().reset()  # type: ignore[no-untyped-call]
