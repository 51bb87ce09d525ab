"""``grpc.health.v1`` for the emulator: NOT_SERVING until the backend answers, then following it.

Every served service (and the server as a whole, ``""``) reports the same status. After start-up a
monitor pings the backend every ``interval_s``: while Redis is unreachable the emulator reports
NOT_SERVING, and SERVING again once it answers, without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health_pb2

from fleet_emulator.domain.errors import Unavailable

log = logging.getLogger(__name__)
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class HealthReporter:
    def __init__(
        self, service_names: list[str], ping: Callable[[], Awaitable[None]], interval_s: float = 1.0
    ) -> None:
        self.servicer = health_aio.HealthServicer()
        self.names = ["", *service_names]
        self.ping = ping
        self.interval_s = interval_s
        self.serving = False
        self._monitor: asyncio.Task[None] | None = None

    async def report(self, serving: bool) -> None:
        self.serving = serving
        for name in self.names:
            await self.servicer.set(name, SERVING if serving else NOT_SERVING)

    async def _answers(self) -> bool:
        try:
            await self.ping()
            return True
        except Unavailable as exc:
            log.debug("backend check failed: %s", exc.message)
            return False

    async def wait_for_backend(self) -> None:
        """Return once the backend answers, retrying with a capped back-off while reporting NOT_SERVING."""
        await self.report(False)
        delay = 0.1
        while not await self._answers():
            log.warning("backend not ready; retrying in %.1fs", delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    def monitor(self) -> None:
        """Follow the backend from now on: SERVING while it answers, NOT_SERVING while it does not."""
        self._monitor = asyncio.create_task(self._follow(), name="backend-health")

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            answers = await self._answers()
            if answers != self.serving:
                log.warning("backend %s", "is back: SERVING" if answers else "unreachable: NOT_SERVING")
                await self.report(answers)

    async def stop(self) -> None:
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
        await self.report(False)
