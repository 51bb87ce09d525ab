"""Background tasks: a failing loop is logged with its traceback and started again after a back-off, and
stopping a task never waits forever, even for one that swallows its cancellations (as a Redis call on
Python 3.11 can)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from fleet_emulator.domain import background
from fleet_emulator.domain.background import BackgroundTasks, keep_cancellation, stop_task


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(background, "FIRST_BACKOFF_S", 0.001)


async def test_a_failing_loop_is_logged_and_started_again(caplog: pytest.LogCaptureFixture) -> None:
    runs = 0
    steady = asyncio.Event()

    async def loop() -> None:
        nonlocal runs
        runs += 1
        if runs <= 2:
            raise ZeroDivisionError("battery of infinite capacity")
        if runs == 3:
            return  # a loop that ends on its own is started again too
        steady.set()
        await asyncio.Event().wait()

    tasks = BackgroundTasks()
    with caplog.at_level(logging.ERROR, logger=background.__name__):
        tasks.start("simulator", loop)
        await asyncio.wait_for(steady.wait(), 5)
        await tasks.stop()
    failures = [r for r in caplog.records if "simulator failed" in r.getMessage()]
    assert len(failures) == 2 and all(r.exc_info and r.exc_info[0] is ZeroDivisionError for r in failures)
    assert any("simulator ended on its own" in r.getMessage() for r in caplog.records)
    assert runs == 4
    assert tasks.tasks == []


async def test_a_task_that_swallows_cancellations_is_cancelled_until_it_stops() -> None:
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                swallowed += 1
                if swallowed == 3:
                    raise
                asyncio.current_task().uncancel()  # type: ignore[union-attr]  # as wait_for on 3.11 can

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    assert await stop_task(task, timeout_s=5)
    assert task.cancelled() and swallowed == 3


async def test_stopping_gives_up_on_a_task_that_never_stops(caplog: pytest.LogCaptureFixture) -> None:
    release = asyncio.Event()

    async def immortal() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                asyncio.current_task().uncancel()  # type: ignore[union-attr]

    task = asyncio.create_task(immortal(), name="immortal")
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    began = loop.time()
    assert not await stop_task(task, timeout_s=0.3)
    assert loop.time() - began < 2
    assert "immortal did not stop" in caplog.text
    release.set()
    task.cancel()
    await asyncio.wait({task}, timeout=1)


async def test_keep_cancellation_raises_a_cancellation_an_await_swallowed() -> None:
    reached = asyncio.Event()

    async def pinger() -> None:
        while True:
            with contextlib.suppress(asyncio.CancelledError):  # as a Redis PING inside wait_for on 3.11 can
                await asyncio.sleep(3600)
            reached.set()
            keep_cancellation()

    task = asyncio.create_task(pinger())
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.wait_for(reached.wait(), 1)
    await asyncio.wait({task}, timeout=1)
    assert task.cancelled()
