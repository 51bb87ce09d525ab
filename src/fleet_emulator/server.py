"""Builds and runs the emulator's gRPC server: every API version, admin, health, reflection, graceful stop.

``Emulator`` wires the backends, the namespaces (each with its domain services, faults and journal) and
the servicers. Its background tasks, supervised (``domain/background.py``), follow the backend's health,
settle due wake-ups of vehicles every ``SETTLE_INTERVAL_S``, drop idle namespaces, give freed memory back
to the system every ``TRIM_INTERVAL_S`` and run the simulator on the default namespace when asked. The
admin service is on the API port by default (behind ``--admin-token`` if set), or on a port of its own, or
off; the web console (``console/``), when on, serves over HTTP from the same event loop. Health
(``api/health.py``) reports NOT_SERVING until the backend answers and the scenario is seeded, then follows
the backend. ``serve_until`` stops in any phase: on stop, health goes back to NOT_SERVING,
open streams end at once and unary calls in flight get a grace period, every step bounded in time. A
problem at start is a ``StartupError`` naming the setting to look at.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import logging
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import health, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from fleet_emulator._gen.emulator.admin.v1 import admin_pb2, admin_pb2_grpc
from fleet_emulator.api.admin import AdminServicer
from fleet_emulator.api.call_scope import TRANSPORT_MAX_BYTES, CallScopeInterceptor
from fleet_emulator.api.health import HealthReporter
from fleet_emulator.api.versions import PACKAGE_PREFIX, VERSIONS, V2Servicer
from fleet_emulator.backends.factory import Backends, BackendUnreachable, BackendUnusable, backends_for
from fleet_emulator.domain.background import BackgroundTasks, keep_cancellation, stop_task, within
from fleet_emulator.domain.clock import EmulatorClock
from fleet_emulator.domain.errors import Unavailable
from fleet_emulator.domain.namespaces import DEFAULT_LIMITS, NamespaceLimits, Namespaces
from fleet_emulator.domain.policies import DEFAULT_POLICIES, Policies
from fleet_emulator.domain.scenario import load_scenario
from fleet_emulator.domain.simulator import Simulator
from fleet_emulator.domain.streams import DEFAULT_RETENTION, MAX_LENGTH, StreamSettings

if TYPE_CHECKING:
    from fleet_emulator.console.app import ConsoleApp

log = logging.getLogger(__name__)

ADMIN_SERVICE: str = admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name
ADMIN_PACKAGE = "emulator.admin."
ADMIN_SAME_PORT = -1
ADMIN_OFF = -2
SETTLE_INTERVAL_S = 0.25  # how often due wake-ups are settled (``wake_ups.py``)
SWEEP_INTERVAL_S = 60.0  # how often idle namespaces are looked for, at most
TRIM_INTERVAL_S = 30.0  # how often freed memory is given back to the system
STOP_MARGIN_S = 2.0  # what stopping may take beyond the grace period, per step
MAX_PENDING_CALLS = 100_000  # calls gRPC may hold before the server takes them


class StartupError(Exception):
    """The emulator cannot start: ``setting`` is the option to look at, the message says why (for people),
    ``exit_code`` tells the kind of problem apart (see the README)."""

    def __init__(self, setting: str, cause: str, exit_code: int) -> None:
        super().__init__(cause)
        self.setting = setting
        self.exit_code = exit_code


EXIT_CANNOT_LISTEN = 4
EXIT_BACKEND = 5


@dataclass(frozen=True)
class Settings:
    host: str = "0.0.0.0"
    port: int = 50051
    backend: str = "memory"
    scenario: Path | None = None
    redis_url: str = "redis://localhost:6379/0"
    redis_connect_timeout: timedelta = timedelta(seconds=30)
    redis_wait_replicas: int = 0  # replicas each write waits for (WAIT); 0: acknowledged by the master alone
    retention: timedelta = DEFAULT_RETENTION
    max_stream_length: int = MAX_LENGTH
    admin_port: int = ADMIN_SAME_PORT  # a port of its own (0: a free one), or ADMIN_SAME_PORT, ADMIN_OFF
    admin_token: str = ""  # when set, every admin call needs it as its bearer token
    simulate: bool = False  # `serve` turns it on by default; in-process emulators (tests) stay still
    simulation_rate: float = 1.0
    simulation_seed: int = 0
    health_interval_s: float = 1.0
    policies: Policies = DEFAULT_POLICIES  # every namespace starts with these (and gets them back on reset)
    jwt_secret: str = ""  # empty: a random secret (on Redis, one shared by every replica)
    grace_seconds: float = 5.0
    limits: NamespaceLimits = DEFAULT_LIMITS
    console_port: int | None = None  # the web console's port (0: a free one), or None for no console
    reuse_port: bool = False  # share the gRPC ports with other processes (SO_REUSEPORT), as workers do


def _malloc_trim() -> Callable[[int], object] | None:
    """glibc's ``malloc_trim(0)``, which gives the heap's free pages back to the system, or None elsewhere."""
    try:
        trim: Callable[[int], object] = ctypes.CDLL("libc.so.6").malloc_trim
        return trim
    except (OSError, AttributeError):
        return None


class _HeaderEncodingNoise(logging.Filter):
    """grpc logs a traceback at ERROR for every request header value that is not UTF-8 (a client's
    mistake, which the call survives): one line at DEBUG instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == "Invalid encoding on %s":
            log.debug("a request header value is not UTF-8: %r", record.args)
            return False
        return True


logging.getLogger("grpc._cython.cygrpc").addFilter(_HeaderEncodingNoise())


def _grpc_server(namespaces: Namespaces, admin_token: str, reuse_port: bool) -> grpc.aio.Server:
    headers = {v.service_name: v.response_headers for v in VERSIONS if v.response_headers}
    scope = CallScopeInterceptor(
        (PACKAGE_PREFIX, ADMIN_PACKAGE), PACKAGE_PREFIX, namespaces, headers, admin_token
    )
    return grpc.aio.server(
        interceptors=[scope],
        options=[
            ("grpc.so_reuseport", int(reuse_port)),
            ("grpc.max_receive_message_length", TRANSPORT_MAX_BYTES),
            # Calls wait in gRPC's queue until the server takes them, one at a time through the generic
            # handlers (``_GenericHandlersOnly``): a burst of thousands of new streams must not be shed.
            ("grpc.server.max_pending_requests", MAX_PENDING_CALLS),
            ("grpc.server.max_pending_requests_hard_limit", MAX_PENDING_CALLS),
        ],
    )


def _not_listening(setting: str, host: str, port: int, problem: str) -> StartupError:
    return StartupError(setting, f"cannot listen on {host}:{port}: {problem}", EXIT_CANNOT_LISTEN)


def _check_listening(setting: str, host: str, port: int, reuse_port: bool = False) -> None:
    """``StartupError`` naming ``setting`` when nothing can listen on ``host:port`` now."""
    if (problem := _cannot_listen(host, port, reuse_port)) is not None:
        raise _not_listening(setting, host, port, problem)


class _GenericHandlersOnly:
    """Stands in for a server when services are added: passes their generic handlers on and drops their
    tables of registered methods. grpc.aio's server keeps one pending future per registered method and
    waits on all of them (``asyncio.wait``) for every call it accepts, so the emulator's 60-odd methods
    would cost each call that many callbacks; served through the generic handlers, a call costs one
    (and the call scope resolves each method's handler once)."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self.server = server

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        self.server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(self, service: str, handlers: Any) -> None:
        return None


def generic_only(server: grpc.aio.Server) -> Any:
    """``server`` for the generated ``add_*_to_server`` functions (see ``_GenericHandlersOnly``)."""
    return _GenericHandlersOnly(server)


def _cannot_listen(host: str, port: int, reuse_port: bool = False) -> str | None:
    """Why nothing can listen on ``host:port`` now (in use, not an address of this machine), or None.

    Checked with a socket of our own before gRPC binds, so that a port in use is one clear line rather
    than gRPC's log.
    """
    if port == 0:
        return None
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        return str(exc)
    for family, kind, protocol, _, address in addresses:
        with socket.socket(family, kind, protocol) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                return exc.strerror or str(exc)
    return None


class Emulator:
    def __init__(
        self, settings: Settings, clock: EmulatorClock | None = None, backends: Backends | None = None
    ) -> None:
        self.settings = settings
        self.backends = backends or backends_for(
            settings.backend, settings.redis_url, settings.redis_wait_replicas
        )
        self.clock = clock or EmulatorClock()
        self.clock.store = self.clock.store or self.backends.clock_store()
        scenario = load_scenario(settings.scenario, self.clock.now())
        streams = StreamSettings(retention=settings.retention, max_length=settings.max_stream_length)
        self.namespaces = Namespaces(
            self.backends,
            self.backends.registry(),
            self.clock,
            scenario,
            streams,
            settings.policies,
            settings.jwt_secret,
            settings.limits,
        )
        self.server = _grpc_server(self.namespaces, settings.admin_token, settings.reuse_port)
        services = generic_only(self.server)
        self.service_names = [v.service_name for v in VERSIONS]
        for version in VERSIONS:
            version.register(services, self.namespaces)
        self.admin_server: grpc.aio.Server | None = None
        admin = AdminServicer(self.namespaces, self.clock)
        if settings.admin_port != ADMIN_OFF:
            own = settings.admin_port != ADMIN_SAME_PORT
            self.admin_server = (
                _grpc_server(self.namespaces, settings.admin_token, settings.reuse_port)
                if own
                else self.server
            )
            admin_pb2_grpc.add_AdminServiceServicer_to_server(admin, generic_only(self.admin_server))
        if self.admin_server is self.server:
            self.service_names.append(ADMIN_SERVICE)
        default_backend = self.namespaces.default.emulation.backend
        self.health = HealthReporter(self.service_names, default_backend.ping, settings.health_interval_s)
        health_pb2_grpc.add_HealthServicer_to_server(self.health.servicer, services)
        reflection.enable_server_reflection(
            [*self.service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], services
        )
        if self.admin_server is not None and self.admin_server is not self.server:
            names = [ADMIN_SERVICE, reflection.SERVICE_NAME]
            reflection.enable_server_reflection(names, generic_only(self.admin_server))
        self.console = self._console(admin) if settings.console_port is not None else None
        self.port = 0
        self.admin_port = 0
        self.console_port = 0
        self.tasks = BackgroundTasks()
        self._started: list[grpc.aio.Server] = []

    def _console(self, admin: AdminServicer) -> ConsoleApp:
        """The web console, imported only when it is on (aiohttp takes a while to import)."""
        from fleet_emulator.console.app import ConsoleApp
        from fleet_emulator.console.calls import Bridge, methods_of

        services = {
            "admin": methods_of(admin, admin_pb2.DESCRIPTOR.services_by_name["AdminService"], steers=True),
            "v2": methods_of(
                V2Servicer(self.namespaces),
                V2Servicer.adapter.pb.DESCRIPTOR.services_by_name["FleetStateService"],
                steers=False,
            ),
        }
        bridge = Bridge(services, self.namespaces, self.settings.admin_token, self.admin_server is not None)
        return ConsoleApp(bridge, lambda: self.health.serving, lambda: self.port)

    async def _start_console(self, console: ConsoleApp, port: int) -> None:
        host = self.settings.host
        _check_listening("--console-port", host, port)
        try:
            self.console_port = await console.start(host, port)
        except OSError as exc:
            raise _not_listening("--console-port", host, port, exc.strerror or str(exc)) from None

    def _bind(self, server: grpc.aio.Server, port: int, setting: str) -> int:
        host = self.settings.host
        _check_listening(setting, host, port, self.settings.reuse_port)
        try:
            bound: int = server.add_insecure_port(f"{host}:{port}")
        except RuntimeError:
            raise _not_listening(setting, host, port, "gRPC could not bind it") from None
        return bound

    async def start(self) -> int:
        """Bind, serve, wait for the backend, seed the scenario, then report SERVING. Returns the bound API
        port."""
        self.port = self._bind(self.server, self.settings.port, "--port")
        if self.admin_server is self.server:
            self.admin_port = self.port
        elif self.admin_server is not None:
            self.admin_port = self._bind(self.admin_server, self.settings.admin_port, "--admin-port")
            await self.admin_server.start()
            self._started.append(self.admin_server)
        await self.health.report(False)
        await self.server.start()
        self._started.append(self.server)
        if self.console is not None and self.settings.console_port is not None:
            await self._start_console(self.console, self.settings.console_port)
        try:
            await self.backends.connect(self.settings.redis_connect_timeout.total_seconds())
        except (BackendUnreachable, BackendUnusable) as exc:
            raise StartupError("--redis-url", str(exc), EXIT_BACKEND) from None
        secret = self.settings.jwt_secret
        self.namespaces.jwt_secret = secret or await self.backends.shared_secret(secrets.token_urlsafe(32))
        if self.clock.virtual:  # given a virtual time to start at (tests): it is every replica's now
            await self.clock.set(self.clock.now())
        await self.clock.refresh()
        seeded = await self.namespaces.default.emulation.fleets.seed(self.namespaces.scenario)
        await self.health.report(True)
        self.tasks.start("backend-health", self.health.follow)
        self.tasks.start("wake-ups", self._settle_wake_ups)
        self.tasks.start("idle-namespaces", self._drop_idle_namespaces)
        self.tasks.start("namespace-deletions", self.namespaces.follow_deletions)
        if (trim := _malloc_trim()) is not None:
            self.tasks.start("memory-trim", functools.partial(self._trim_memory, trim))
        if self.settings.simulate:
            simulator = Simulator(
                self.namespaces.default.emulation,
                self.clock,
                seed=self.settings.simulation_seed,
                rate_hz=self.settings.simulation_rate,
                lease=self.backends.lease("simulator"),
            )
            self.tasks.start("simulator", simulator.run)
        log.info(
            "fleet emulator serving %s on %s:%d (admin %s, backend %s, simulator %s, %s, event loop %s)",
            ", ".join(v.name for v in VERSIONS),
            self.settings.host,
            self.port,
            f"on port {self.admin_port}" if self.admin_server is not None else "off",
            self.settings.backend,
            f"at {self.settings.simulation_rate:g} Hz" if self.settings.simulate else "off",
            f"loaded scenario {self.namespaces.scenario.name!r}"
            if seeded
            else "kept the state already in the backend",
            type(asyncio.get_running_loop()).__module__.split(".")[0],
        )
        if self.console is not None:
            shown = "localhost" if self.settings.host in ("0.0.0.0", "::") else self.settings.host
            log.info("web console on http://%s:%d/", shown, self.console_port)
        return self.port

    async def _settle_wake_ups(self) -> None:
        """Bring woken vehicles online when due in real time too, for clients that poll or stream."""
        while True:
            await asyncio.sleep(SETTLE_INTERVAL_S)
            with contextlib.suppress(Unavailable):  # the backend is away: the next round tries again
                await self.namespaces.settle_wake_ups()
            keep_cancellation()

    async def _drop_idle_namespaces(self) -> None:
        idle = self.settings.limits.idle_timeout.total_seconds()
        while True:
            await asyncio.sleep(min(SWEEP_INTERVAL_S, idle / 4) if idle > 0 else SWEEP_INTERVAL_S)
            dropped = await self.namespaces.drop_idle()
            keep_cancellation()
            if dropped:
                log.info("dropped %d idle namespaces: %s", len(dropped), ", ".join(dropped))

    async def _trim_memory(self, trim: Callable[[int], object]) -> None:
        """Give memory freed by closed streams and dropped entries back to the system now and then: glibc
        keeps freed pages in its heap otherwise, and the process would look as large as it ever was."""
        while True:
            await asyncio.sleep(TRIM_INTERVAL_S)
            trim(0)

    async def stop(self) -> None:
        """Stop serving: background tasks, open streams (UNAVAILABLE at once), then in-flight calls after
        the grace period, then the backend; no step waits for longer than its bound."""
        grace = self.settings.grace_seconds
        await self.tasks.stop()
        await self.health.report(False)
        self.namespaces.end_streams()
        servers, self._started = self._started, []
        await within(asyncio.gather(*(s.stop(grace) for s in servers)), grace + STOP_MARGIN_S, "gRPC stop")
        if self.console is not None:
            await within(self.console.stop(), STOP_MARGIN_S, "stopping the console")
        await within(self.namespaces.close(), STOP_MARGIN_S, "closing the namespaces")
        await within(self.backends.close(), STOP_MARGIN_S, "closing the backend")

    async def serve_until(self, stop: asyncio.Event) -> None:
        """Start, then serve until ``stop`` is set, then stop gracefully; ``stop`` set while starting
        (waiting for Redis, say) ends the start at once."""
        starting = asyncio.create_task(self.start(), name="start")
        stopping = asyncio.create_task(stop.wait(), name="stop-signal")
        try:
            await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if starting.done():
                starting.result()
                await stopping
                log.info("stopping: finishing in-flight calls (grace %.1fs)", self.settings.grace_seconds)
            else:
                log.info("stopping before the emulator was ready")
                await stop_task(starting)
        finally:
            stopping.cancel()
            await self.stop()
