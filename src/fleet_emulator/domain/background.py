"""Long-lived tasks of the emulator (health monitor, wake-up settling, simulator, idle-namespace sweep,
state-feed listeners): supervised, logged and always stoppable.

On Python 3.11, ``asyncio.wait_for`` and redis-py's time-outs can return normally from an await although
the task was cancelled meanwhile, so a loop that pings Redis may never see its cancellation.
``keep_cancellation`` re-raises such a lost cancellation (loops call it after awaits that may lose one),
and ``stop_task`` cancels again and again until the task is done or a deadline passes, so that stopping
never waits forever. ``BackgroundTasks.start`` runs a loop under a supervisor: a failure is logged with
its traceback and the loop starts again after a back-off that doubles up to ``MAX_BACKOFF_S`` (and starts
over once the loop has run well for a while).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0
STOP_TIMEOUT_S = 2.0
RECANCEL_S = 0.05


def keep_cancellation() -> None:
    """Raise a cancellation that an await swallowed: the task still counts the request."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def stop_task(task: asyncio.Task[object], timeout_s: float = STOP_TIMEOUT_S) -> bool:
    """Cancel the task, again every few milliseconds while it goes on, until it is done or ``timeout_s``
    has passed; whether it stopped. Its outcome (a failure too) is consumed."""
    deadline = time.monotonic() + timeout_s
    while not task.done():
        task.cancel()
        left = deadline - time.monotonic()
        if left <= 0:
            log.warning("background task %s did not stop within %.1f s", task.get_name(), timeout_s)
            return False
        await asyncio.wait({task}, timeout=min(RECANCEL_S, left))
    if not task.cancelled() and task.exception() is not None:
        log.debug("background task %s had failed", task.get_name(), exc_info=task.exception())
    return True


async def within(work: Awaitable[object], timeout_s: float, what: str) -> None:
    """Await ``work``, but no longer than ``timeout_s`` (then it is stopped, and a warning says so)."""
    task = asyncio.ensure_future(work)
    await asyncio.wait({task}, timeout=timeout_s)
    if not task.done():
        log.warning("%s took longer than %.1f s; going on without it", what, timeout_s)
    await stop_task(task, STOP_TIMEOUT_S)


class BackgroundTasks:
    """The supervised tasks of one emulator."""

    def __init__(self) -> None:
        self.tasks: list[asyncio.Task[None]] = []

    def start(self, name: str, loop: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        task = asyncio.create_task(supervise(name, loop), name=name)
        self.tasks.append(task)
        return task

    async def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Stop every task, none waited for longer than ``timeout_s``."""
        tasks, self.tasks = self.tasks, []
        await asyncio.gather(*(stop_task(t, timeout_s) for t in tasks))


async def supervise(name: str, loop: Callable[[], Awaitable[None]]) -> None:
    """Run ``loop`` until cancelled, starting it again after a back-off whenever it fails or returns."""
    backoff = FIRST_BACKOFF_S
    while True:
        began = time.monotonic()
        failure: Exception | None = None
        try:
            await loop()
        except Exception as exc:
            failure = exc
        keep_cancellation()
        if time.monotonic() - began > MAX_BACKOFF_S:
            backoff = FIRST_BACKOFF_S  # it had run well for a while: this is a new failure
        what = "failed" if failure is not None else "ended on its own"
        log.error("background task %s %s; starting it again in %.1f s", name, what, backoff, exc_info=failure)
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, MAX_BACKOFF_S)
