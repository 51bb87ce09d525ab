"""The boundary between redis-py and the domain: Redis connection failures become ``Unavailable``."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar

import redis.exceptions

from fleet_emulator.domain import reasons
from fleet_emulator.domain.errors import Unavailable

P = ParamSpec("P")
R = TypeVar("R")
RETRY_AFTER = timedelta(seconds=1)
FAILURES = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


def unavailable(exc: BaseException) -> Unavailable:
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
