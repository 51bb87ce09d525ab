"""The boundary between redis-py and the domain: Redis connection failures become ``Unavailable``, and are
counted by operation (``telemetry.metrics.REDIS``, which also counts Redis answering again); commands that
may be sent twice get a second try on a connection that broke (``once_more_if_stale``). On a Redis Cluster
so do the errors of a slot without a master for now (a fail-over: ``CLUSTERDOWN``, redirections that do not
settle, a write that reached a former master, now a replica: ``READONLY``), and on any Redis a write that
fewer replicas acknowledged than ``--redis-wait-replicas`` asks (``NotReplicated``)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar

import redis.exceptions

from fleet_emulator.backends.redis_clients import NotReplicated
from fleet_emulator.domain import reasons
from fleet_emulator.domain.errors import Unavailable
from fleet_emulator.telemetry.metrics import REDIS

P = ParamSpec("P")
R = TypeVar("R")
RETRY_AFTER = timedelta(seconds=1)
FAILURES = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    OSError,
    redis.exceptions.ClusterError,  # CLUSTERDOWN, MASTERDOWN, redirections without end
    redis.exceptions.AskError,  # MOVED too: the slot map kept changing
    redis.exceptions.TryAgainError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.RedisClusterException,  # no node of the cluster reachable, a slot not covered
    NotReplicated,
)


def unavailable(exc: BaseException) -> Unavailable:
    message = (
        "the emulator's Redis backend did not replicate the write in time; retry later"
        if isinstance(exc, NotReplicated)
        else "the emulator's Redis backend is unreachable; retry later"
    )
    return Unavailable(reasons.BACKEND_UNAVAILABLE, message, RETRY_AFTER, cause=type(exc).__name__)


async def once_more_if_stale(command: Callable[[], Awaitable[R]]) -> R:
    """Run ``command``, and once more if its connection broke: a pooled connection is stale after Redis
    restarted, and redis-py reconnects only on the next use. Only for commands that are safe to send twice
    (reads, and appends that recognise their own retry)."""
    try:
        return await command()
    except redis.exceptions.ConnectionError:
        return await command()


def mapped(method: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Turn redis-py's connection errors into the domain's ``Unavailable``, counting them under the
    method's name."""
    operation = method.__name__

    @functools.wraps(method)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            result = await method(*args, **kwargs)
        except FAILURES as exc:
            REDIS.failed(operation)
            raise unavailable(exc) from exc
        REDIS.answered()
        return result

    return call
