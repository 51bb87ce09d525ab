"""Builds and runs the emulator's gRPC server: every API version, admin, health, reflection, graceful stop.

``Emulator`` wires the backend, the domain services and the servicers. Health (``api/health.py``) reports
NOT_SERVING until the backend answers and the scenario is seeded, then follows the backend; on stop it goes
back to NOT_SERVING before in-flight calls get a grace period to finish.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from fleet_emulator._gen.emulator.admin.v1 import admin_pb2, admin_pb2_grpc
from fleet_emulator.api.admin import AdminServicer
from fleet_emulator.api.call_scope import TRANSPORT_MAX_BYTES, CallScopeInterceptor
from fleet_emulator.api.health import HealthReporter
from fleet_emulator.api.versions import PACKAGE_PREFIX, VERSIONS
from fleet_emulator.backends.base import Backend
from fleet_emulator.backends.factory import make_backend
from fleet_emulator.domain.clock import Clock, SystemClock
from fleet_emulator.domain.emulation import Emulation
from fleet_emulator.domain.scenario import Scenario, load_scenario
from fleet_emulator.domain.streams import DEFAULT_RETENTION, StreamSettings

log = logging.getLogger(__name__)

ADMIN_SERVICE: str = admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name
ADMIN_PACKAGE = "emulator.admin."


class StartupError(Exception):
    """The emulator cannot start (the message says why, for people)."""


@dataclass(frozen=True)
class Settings:
    host: str = "0.0.0.0"
    port: int = 50051
    backend: str = "memory"
    scenario: Path | None = None
    redis_url: str = "redis://localhost:6379/0"
    retention: timedelta = DEFAULT_RETENTION
    health_interval_s: float = 1.0
    grace_seconds: float = 5.0


class Emulator:
    def __init__(
        self, settings: Settings, clock: Clock | None = None, backend: Backend | None = None
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.backend = backend or make_backend(settings.backend, settings.redis_url)
        self.emulation = Emulation.build(
            self.backend, self.clock, StreamSettings(retention=settings.retention)
        )
        self.scenario = load_scenario(settings.scenario, self.clock.now())
        self.server = grpc.aio.server(
            interceptors=[CallScopeInterceptor((PACKAGE_PREFIX, ADMIN_PACKAGE))],
            options=[("grpc.so_reuseport", 0), ("grpc.max_receive_message_length", TRANSPORT_MAX_BYTES)],
        )
        self.service_names = [v.service_name for v in VERSIONS]
        for version in VERSIONS:
            version.register(self.server, self.emulation)
        admin_pb2_grpc.add_AdminServiceServicer_to_server(
            AdminServicer(self.emulation, self.reset), self.server
        )
        self.service_names.append(ADMIN_SERVICE)
        self.health = HealthReporter(self.service_names, self.backend.state.ping, settings.health_interval_s)
        health_pb2_grpc.add_HealthServicer_to_server(self.health.servicer, self.server)
        reflection.enable_server_reflection(
            [*self.service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], self.server
        )
        self.port = 0

    async def start(self) -> int:
        """Bind, serve, load the scenario, then report SERVING. Returns the bound port."""
        address = f"{self.settings.host}:{self.settings.port}"
        try:
            self.port = self.server.add_insecure_port(address)
        except RuntimeError as exc:
            raise StartupError(f"cannot listen on {address}: is the port in use?") from exc
        await self.health.report(False)
        await self.server.start()
        await self.health.wait_for_backend()
        seeded = await self.emulation.fleets.seed(self.scenario)
        await self.health.report(True)
        self.health.monitor()
        log.info(
            "fleet emulator serving %s on %s:%d (backend %s, %s)",
            ", ".join(v.name for v in VERSIONS),
            self.settings.host,
            self.port,
            self.settings.backend,
            f"loaded scenario {self.scenario.name!r}" if seeded else "kept the state already in the backend",
        )
        return self.port

    async def reset(self) -> Scenario:
        """Back to the loaded scenario: state, page tokens and event streams are forgotten."""
        await self.emulation.reset(self.scenario)
        return self.scenario

    async def stop(self) -> None:
        await self.health.stop()
        await self.server.stop(self.settings.grace_seconds)
        await self.backend.close()

    async def serve_until(self, stop: asyncio.Event) -> None:
        """Start, then serve until ``stop`` is set, then stop gracefully."""
        await self.start()
        await stop.wait()
        log.info("stopping: finishing in-flight calls (grace %.1fs)", self.settings.grace_seconds)
        await self.stop()
