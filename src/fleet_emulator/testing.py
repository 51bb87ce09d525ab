"""A pytest plugin for testing clients of the fleet-state API against the emulator (entry point ``pytest11``).

The ``fleet_emulator`` fixture gives a test the emulator's address, typed synchronous stubs of every API
version (``.v1beta4``, ``.v1``, ``.v2``) on a channel whose calls carry the session's namespace header,
the generated message modules (``.pb``), that header (``.metadata``) for channels of your own, and an
admin helper (``.admin``) that steers state, scenarios, events, faults, the call journal and the clock
with plain synchronous calls. The emulator is the one named by ``--fleet-emulator-address`` (or the
``FLEET_EMULATOR_ADDRESS`` environment variable, or the ``fleet_emulator_address`` ini option), else one
started once per session in this process, served by a thread with its own event loop so that sync and
async tests alike can call it. Each session (each xdist worker) works in a namespace of its own, reset
before every test that uses the fixture; a test that moved the clock gets it back to real time after it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

import grpc
import pytest

from fleet_emulator._gen.emulator.admin.v1 import admin_pb2 as admin_pb
from fleet_emulator._gen.emulator.admin.v1 import admin_pb2_grpc as admin_grpc
from fleet_emulator._gen.moia.fleet.state.v1 import fleet_state_pb2 as v1_pb
from fleet_emulator._gen.moia.fleet.state.v1 import fleet_state_pb2_grpc as v1_grpc
from fleet_emulator._gen.moia.fleet.state.v1beta4 import fleet_state_pb2 as v1beta4_pb
from fleet_emulator._gen.moia.fleet.state.v1beta4 import fleet_state_pb2_grpc as v1beta4_grpc
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as v2_pb
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2_grpc as v2_grpc
from fleet_emulator.domain.namespaces import NAMESPACE_HEADER
from fleet_emulator.testing_admin import Admin, Clock, Fault

if TYPE_CHECKING:
    from fleet_emulator.server import Settings

__all__ = [
    "Admin",
    "BackgroundEmulator",
    "Clock",
    "Fault",
    "FleetEmulator",
    "Messages",
    "admin_grpc",
    "admin_pb",
    "connect",
    "new_namespace",
    "pb",
    "v1_grpc",
    "v1_pb",
    "v1beta4_grpc",
    "v1beta4_pb",
    "v2_grpc",
    "v2_pb",
]

ADDRESS_OPTION = "--fleet-emulator-address"
ADDRESS_ENV = "FLEET_EMULATOR_ADDRESS"
ADDRESS_INI = "fleet_emulator_address"
CONNECT_TIMEOUT_S = 30.0

Metadata = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Messages:
    """The generated message modules, e.g. ``pb.v2.ListVehiclesRequest``; for precise static types import
    the modules themselves (``from fleet_emulator.testing import v2_pb``)."""

    v1beta4: ModuleType = v1beta4_pb
    v1: ModuleType = v1_pb
    v2: ModuleType = v2_pb
    admin: ModuleType = admin_pb


pb = Messages()


def new_namespace() -> str:
    """A new namespace name of this session's own (with the xdist worker in it, if there is one)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "").lower()
    return "-".join(part for part in ("pytest", worker, secrets.token_hex(6)) if part)


@dataclass(frozen=True)
class _CallDetails(grpc.ClientCallDetails):
    method: str
    timeout: float | None
    metadata: grpc.Metadata | None
    credentials: grpc.CallCredentials | None
    wait_for_ready: bool | None
    compression: grpc.Compression | None


class _AddHeaders(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):  # type: ignore[type-arg]
    """Adds the headers to every call that does not send them itself."""

    def __init__(self, headers: Metadata) -> None:
        self.headers = headers

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        metadata = tuple(details.metadata or ())
        sent = {key for key, _ in metadata}
        added = tuple(header for header in self.headers if header[0] not in sent)
        return _CallDetails(
            details.method,
            details.timeout,
            metadata + added,
            details.credentials,
            details.wait_for_ready,
            details.compression,
        )

    def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.ClientCallDetails, Any], grpc.CallFuture[Any]],
        client_call_details: grpc.ClientCallDetails,
        request: Any,
    ) -> grpc.CallFuture[Any]:
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(
        self,
        continuation: Callable[[grpc.ClientCallDetails, Any], grpc.CallIterator[Any]],
        client_call_details: grpc.ClientCallDetails,
        request: Any,
    ) -> grpc.CallIterator[Any]:
        return continuation(self._details(client_call_details), request)


class FleetEmulator:
    """What the ``fleet_emulator`` fixture gives: the emulator as seen from one namespace."""

    def __init__(
        self, address: str, channel: grpc.Channel, namespace: str, clock: Clock | None = None
    ) -> None:
        self.address = address
        self.namespace = namespace
        self.metadata: Metadata = ((NAMESPACE_HEADER, namespace),)
        self.channel = grpc.intercept_channel(channel, _AddHeaders(self.metadata))
        self.v1beta4 = v1beta4_grpc.FleetStateServiceStub(self.channel)
        self.v1 = v1_grpc.FleetStateServiceStub(self.channel)
        self.v2 = v2_grpc.FleetStateServiceStub(self.channel)
        self.pb = pb
        self.admin = Admin(self.channel, clock)
        self._shared_channel = channel

    def in_namespace(self, namespace: str) -> FleetEmulator:
        """The same emulator seen from another namespace (seeded with the emulator's scenario on first use,
        and not reset by the fixture), on the same connection."""
        return FleetEmulator(self.address, self._shared_channel, namespace, self.admin.clock)

    def close(self) -> None:
        """Close the connection, which the views of other namespaces share."""
        self._shared_channel.close()


def connect(
    address: str, namespace: str | None = None, timeout_s: float = CONNECT_TIMEOUT_S
) -> FleetEmulator:
    """The emulator at ``address``, once it accepts connections, seen from ``namespace`` (by default a
    new one); raises ``ConnectionError`` if it does not within ``timeout_s``."""
    channel = grpc.insecure_channel(address)
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout_s)
    except grpc.FutureTimeoutError:
        channel.close()
        raise ConnectionError(f"no fleet emulator answers at {address} (waited {timeout_s:g} s)") from None
    return FleetEmulator(address, channel, namespace or new_namespace())


class BackgroundEmulator:
    """An emulator in this process, served by a thread with an event loop of its own, so that it answers
    sync tests and async tests (on any event loop) alike. By default: 127.0.0.1, a free port, the memory
    backend and the demo scenario."""

    def __init__(self, settings: Settings | None = None) -> None:
        # imported here: the server's dependencies would otherwise load in every pytest run of the venv
        from fleet_emulator.server import Settings

        self.settings = settings or Settings(host="127.0.0.1", port=0, backend="memory", grace_seconds=1.0)
        self._runner = asyncio.Runner(loop_factory=asyncio.new_event_loop)
        self._stop = asyncio.Event()
        self._started: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._run, name="fleet-emulator", daemon=True)

    def start(self) -> str:
        """Start serving; returns the address (``host:port``)."""
        self._thread.start()
        return f"{self.settings.host}:{self._started.result(timeout=CONNECT_TIMEOUT_S)}"

    def stop(self) -> None:
        """Stop gracefully and wait for the thread to end."""
        self._runner.get_loop().call_soon_threadsafe(self._stop.set)
        self._thread.join()

    def _run(self) -> None:
        with self._runner:
            try:
                self._runner.run(self._serve())
            except BaseException as error:
                if self._started.done():
                    raise
                self._started.set_exception(error)

    async def _serve(self) -> None:
        from fleet_emulator.server import Emulator

        emulator = Emulator(self.settings)
        try:
            self._started.set_result(await emulator.start())
            await self._stop.wait()
        finally:
            await emulator.stop()


def pytest_addoption(parser: pytest.Parser) -> None:
    help_text = (
        "use the fleet emulator running at HOST:PORT (e.g. a docker-compose or CI service) instead of one "
        f"started in-process; also the {ADDRESS_ENV} environment variable or the {ADDRESS_INI} ini option"
    )
    parser.getgroup("fleet-emulator").addoption(
        ADDRESS_OPTION, dest=ADDRESS_INI, metavar="HOST:PORT", default=None, help=help_text
    )
    parser.addini(ADDRESS_INI, "HOST:PORT of a running fleet emulator (see --fleet-emulator-address)")


def _configured_address(config: pytest.Config) -> str:
    given = (
        config.getoption(ADDRESS_INI, default=None)
        or os.environ.get(ADDRESS_ENV)
        or config.getini(ADDRESS_INI)
    )
    return str(given or "").strip()


@pytest.fixture(scope="session")
def fleet_emulator_address(pytestconfig: pytest.Config) -> Iterator[str]:
    """HOST:PORT of the emulator of the session: the one configured, else one started in this process."""
    configured = _configured_address(pytestconfig)
    if configured:
        yield configured
        return
    emulator = BackgroundEmulator()
    yield emulator.start()
    emulator.stop()


class _Session:
    """The session's connection, and the namespace its tests use (a new one after a test that loaded a
    scenario, since a namespace's resets go back to the scenario it loaded last)."""

    def __init__(self, emulator: FleetEmulator) -> None:
        self.emulator = emulator


@pytest.fixture(scope="session", name="_fleet_emulator_session")
def fleet_emulator_session(fleet_emulator_address: str) -> Iterator[_Session]:
    try:
        emulator = connect(fleet_emulator_address, timeout_s=CONNECT_TIMEOUT_S)
    except ConnectionError as error:
        pytest.fail(f"{error}; check {ADDRESS_OPTION} / {ADDRESS_ENV} / {ADDRESS_INI}", pytrace=False)
    yield _Session(emulator)
    emulator.close()


@pytest.fixture
def fleet_emulator(_fleet_emulator_session: _Session) -> Iterator[FleetEmulator]:
    """The emulator, in the session's namespace reset to its scenario; see ``FleetEmulator``."""
    emulator = _fleet_emulator_session.emulator
    emulator.admin.reset()
    yield emulator
    if emulator.admin.clock.moved:
        emulator.admin.clock.real()
    if emulator.admin.scenario_loaded:
        _fleet_emulator_session.emulator = emulator.in_namespace(new_namespace())
