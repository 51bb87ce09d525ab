"""Builds and runs the emulator's gRPC server: every API version, admin, health, reflection, graceful stop.

``Emulator`` wires the backends, the namespaces (each with its domain services, faults and journal) and
the servicers, runs the simulator on the default namespace when asked, and settles due wake-ups of
vehicles every ``SETTLE_INTERVAL_S``. The admin service is on the API port by default, or on a port of its
own, or off. Health (``api/health.py``) reports NOT_SERVING until the backend answers and the scenario is
seeded, then follows the backend; on stop it goes back to NOT_SERVING before in-flight calls get a grace
period.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from fleet_emulator.backends.factory import Backends, backends_for
from fleet_emulator.domain.clock import EmulatorClock
from fleet_emulator.domain.errors import Unavailable
from fleet_emulator.domain.namespaces import Namespaces
from fleet_emulator.domain.policies import DEFAULT_POLICIES, Policies
from fleet_emulator.domain.scenario import load_scenario
from fleet_emulator.domain.simulator import Simulator
from fleet_emulator.domain.streams import DEFAULT_RETENTION, StreamSettings

log = logging.getLogger(__name__)

ADMIN_SERVICE: str = admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name
ADMIN_PACKAGE = "emulator.admin."
ADMIN_SAME_PORT = -1
ADMIN_OFF = -2
SETTLE_INTERVAL_S = 0.25  # how often due wake-ups are settled (``wake_ups.py``)
DEFAULT_JWT_SECRET = "fleet-emulator-development-secret"  # documented, for local use only


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
    admin_port: int = ADMIN_SAME_PORT  # a port of its own (0: a free one), or ADMIN_SAME_PORT, ADMIN_OFF
    simulate: bool = False  # `serve` turns it on by default; in-process emulators (tests) stay still
    simulation_rate: float = 1.0
    simulation_seed: int = 0
    health_interval_s: float = 1.0
    policies: Policies = DEFAULT_POLICIES  # every namespace starts with these (and gets them back on reset)
    jwt_secret: str = DEFAULT_JWT_SECRET
    grace_seconds: float = 5.0


def _grpc_server(namespaces: Namespaces) -> grpc.aio.Server:
    headers = {v.service_name: v.response_headers for v in VERSIONS if v.response_headers}
    scope = CallScopeInterceptor((PACKAGE_PREFIX, ADMIN_PACKAGE), PACKAGE_PREFIX, namespaces, headers)
    return grpc.aio.server(
        interceptors=[scope],
        options=[("grpc.so_reuseport", 0), ("grpc.max_receive_message_length", TRANSPORT_MAX_BYTES)],
    )


class Emulator:
    def __init__(
        self, settings: Settings, clock: EmulatorClock | None = None, backends: Backends | None = None
    ) -> None:
        self.settings = settings
        self.clock = clock or EmulatorClock()
        self.backends = backends or backends_for(settings.backend, settings.redis_url)
        scenario = load_scenario(settings.scenario, self.clock.now())
        streams = StreamSettings(retention=settings.retention)
        self.namespaces = Namespaces(
            self.backends, self.clock, scenario, streams, settings.policies, settings.jwt_secret
        )
        self.server = _grpc_server(self.namespaces)
        self.service_names = [v.service_name for v in VERSIONS]
        for version in VERSIONS:
            version.register(self.server, self.namespaces)
        self.admin_server: grpc.aio.Server | None = None
        if settings.admin_port != ADMIN_OFF:
            own = settings.admin_port != ADMIN_SAME_PORT
            self.admin_server = _grpc_server(self.namespaces) if own else self.server
            admin = AdminServicer(self.namespaces, self.clock)
            admin_pb2_grpc.add_AdminServiceServicer_to_server(admin, self.admin_server)
        if self.admin_server is self.server:
            self.service_names.append(ADMIN_SERVICE)
        default_state = self.namespaces.default.emulation.backend.state
        self.health = HealthReporter(self.service_names, default_state.ping, settings.health_interval_s)
        health_pb2_grpc.add_HealthServicer_to_server(self.health.servicer, self.server)
        reflection.enable_server_reflection(
            [*self.service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], self.server
        )
        if self.admin_server is not None and self.admin_server is not self.server:
            reflection.enable_server_reflection([ADMIN_SERVICE, reflection.SERVICE_NAME], self.admin_server)
        self.port = 0
        self.admin_port = 0
        self._simulation: asyncio.Task[None] | None = None
        self._settling: asyncio.Task[None] | None = None

    def _bind(self, server: grpc.aio.Server, port: int) -> int:
        address = f"{self.settings.host}:{port}"
        try:
            bound: int = server.add_insecure_port(address)
        except RuntimeError as exc:
            raise StartupError(f"cannot listen on {address}: is the port in use?") from exc
        return bound

    async def start(self) -> int:
        """Bind, serve, seed the scenario, then report SERVING. Returns the bound API port."""
        self.port = self._bind(self.server, self.settings.port)
        if self.admin_server is self.server:
            self.admin_port = self.port
        elif self.admin_server is not None:
            self.admin_port = self._bind(self.admin_server, self.settings.admin_port)
            await self.admin_server.start()
        await self.health.report(False)
        await self.server.start()
        await self.health.wait_for_backend()
        seeded = await self.namespaces.default.emulation.fleets.seed(self.namespaces.scenario)
        await self.health.report(True)
        self.health.monitor()
        self._settling = asyncio.create_task(self._settle_wake_ups(), name="wake-ups")
        if self.settings.simulate:
            simulator = Simulator(
                self.namespaces.default.emulation,
                self.clock,
                seed=self.settings.simulation_seed,
                rate_hz=self.settings.simulation_rate,
            )
            self._simulation = asyncio.create_task(simulator.run(), name="simulator")
        log.info(
            "fleet emulator serving %s on %s:%d (admin %s, backend %s, simulator %s, %s)",
            ", ".join(v.name for v in VERSIONS),
            self.settings.host,
            self.port,
            f"on port {self.admin_port}" if self.admin_server is not None else "off",
            self.settings.backend,
            f"at {self.settings.simulation_rate:g} Hz" if self.settings.simulate else "off",
            f"loaded scenario {self.namespaces.scenario.name!r}"
            if seeded
            else "kept the state already in the backend",
        )
        return self.port

    async def _settle_wake_ups(self) -> None:
        """Bring woken vehicles online when due in real time too, for clients that poll or stream."""
        while True:
            await asyncio.sleep(SETTLE_INTERVAL_S)
            try:
                with contextlib.suppress(Unavailable):  # the backend is away: the next round tries again
                    await self.namespaces.settle_wake_ups()
            except Exception:
                log.exception("bug while settling the due wake-ups")

    async def stop(self) -> None:
        for task in (self._simulation, self._settling):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.health.stop()
        if self.admin_server is not None and self.admin_server is not self.server:
            await self.admin_server.stop(self.settings.grace_seconds)
        await self.server.stop(self.settings.grace_seconds)
        await self.namespaces.close()
        await self.backends.close()

    async def serve_until(self, stop: asyncio.Event) -> None:
        """Start, then serve until ``stop`` is set, then stop gracefully."""
        await self.start()
        await stop.wait()
        log.info("stopping: finishing in-flight calls (grace %.1fs)", self.settings.grace_seconds)
        await self.stop()
