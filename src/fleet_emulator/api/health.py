"""``grpc.health.v1`` for the emulator: NOT_SERVING until the backend answers, then following it.

Every served service (and the server as a whole, ``""``) reports the same status. After start-up the
emulator runs ``follow`` as a background task: it pings the backend every ``interval_s``, reporting
NOT_SERVING while Redis is unreachable and SERVING again once it answers, without a restart. A ping that
swallows the task's cancellation (redis-py on Python 3.11) does not keep the loop alive.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health_pb2

from fleet_emulator.domain.background import keep_cancellation
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
        finally:
            keep_cancellation()

    async def follow(self) -> None:
        """Follow the backend until cancelled: SERVING while it answers, NOT_SERVING while it does not."""
        while True:
            await asyncio.sleep(self.interval_s)
            answers = await self._answers()
            if answers != self.serving:
                log.warning("backend %s", "is back: SERVING" if answers else "unreachable: NOT_SERVING")
                await self.report(answers)
