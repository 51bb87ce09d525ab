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
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2, json_format, timestamp_pb2
from google.protobuf.message import Message

from fleet_emulator._gen.emulator.admin.v1 import admin_pb2 as admin_pb
from fleet_emulator._gen.emulator.admin.v1 import admin_pb2_grpc as admin_grpc
from fleet_emulator._gen.moia.fleet.state.v1 import fleet_state_pb2 as v1_pb
from fleet_emulator._gen.moia.fleet.state.v1 import fleet_state_pb2_grpc as v1_grpc
from fleet_emulator._gen.moia.fleet.state.v1beta4 import fleet_state_pb2 as v1beta4_pb
from fleet_emulator._gen.moia.fleet.state.v1beta4 import fleet_state_pb2_grpc as v1beta4_grpc
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as v2_pb
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2_grpc as v2_grpc
from fleet_emulator.domain.namespaces import NAMESPACE_HEADER

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
JOURNAL_PAGE = 1000

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


def _code_number(code: grpc.StatusCode | int) -> int:
    number: int = code.value[0] if isinstance(code, grpc.StatusCode) else code
    return number


def _timestamp(when: datetime) -> timestamp_pb2.Timestamp:
    message = timestamp_pb2.Timestamp()
    message.FromDatetime(when)
    return message


def _field_paths(fields: Mapping[str, Any], prefix: str = "") -> list[str]:
    """The leaf field paths of nested keyword values: ``battery={"range_km": 3}`` is ``battery.range_km``."""
    paths: list[str] = []
    for name, value in fields.items():
        if isinstance(value, Mapping) and value:
            paths.extend(_field_paths(value, f"{prefix}{name}."))
        else:
            paths.append(f"{prefix}{name}")
    return paths


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


class Clock:
    """The emulator's clock, shared by all its namespaces: virtual once set or advanced, until ``real()``."""

    def __init__(self, stub: admin_grpc.AdminServiceStub) -> None:
        self._stub = stub
        self.moved = False  # set or advanced through this helper since the last real()

    def now(self) -> datetime:
        return self._stub.GetClock(admin_pb.GetClockRequest()).now.ToDatetime(tzinfo=UTC)

    def set(self, when: datetime) -> datetime:
        """Stop the clock at ``when`` (a naive datetime is taken as UTC)."""
        self.moved = True
        return self._stub.SetClock(admin_pb.SetClockRequest(time=_timestamp(when))).now.ToDatetime(tzinfo=UTC)

    def advance(self, by: timedelta) -> datetime:
        self.moved = True
        by_message = duration_pb2.Duration()
        by_message.FromTimedelta(by)
        response = self._stub.AdvanceClock(admin_pb.AdvanceClockRequest(by=by_message))
        return response.now.ToDatetime(tzinfo=UTC)

    def real(self) -> datetime:
        self.moved = False
        return self._stub.UseRealClock(admin_pb.UseRealClockRequest()).now.ToDatetime(tzinfo=UTC)


class Fault:
    """A fault rule of the namespace; as a context manager, deleted at the end of the block."""

    def __init__(self, stub: admin_grpc.AdminServiceStub, rule: admin_pb.Fault) -> None:
        self._stub = stub
        self.rule = rule

    @property
    def id(self) -> str:
        return self.rule.id

    def delete(self) -> None:
        """Delete the rule; one already gone (its ``times`` used up, or reset) is fine."""
        try:
            self._stub.DeleteFault(admin_pb.DeleteFaultRequest(fault_id=self.rule.id))
        except grpc.RpcError as error:
            if not isinstance(error, grpc.Call) or error.code() != grpc.StatusCode.NOT_FOUND:
                raise

    def __enter__(self) -> Fault:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.delete()


class Admin:
    """The admin service of one namespace in plain synchronous calls; ``.stub`` has every RPC."""

    def __init__(self, channel: grpc.Channel, clock: Clock | None = None) -> None:
        self.stub = admin_grpc.AdminServiceStub(channel)
        self.clock = clock or Clock(self.stub)
        self.scenario_loaded = False

    def reset(self) -> admin_pb.ResetEmulatorResponse:
        """Back to the namespace's scenario; page tokens, event streams, faults and journal are forgotten."""
        return self.stub.ResetEmulator(admin_pb.ResetEmulatorRequest())

    def load_scenario(self, scenario: str | os.PathLike[str]) -> admin_pb.LoadScenarioResponse:
        """Replace the namespace's state with a scenario: a path (a ``PathLike``, or a one-line ``str``
        ending in ``.yaml``/``.yml``) or the YAML text itself."""
        if isinstance(scenario, str) and "\n" not in scenario and scenario.endswith((".yaml", ".yml")):
            scenario = Path(scenario)
        if isinstance(scenario, str):
            request = admin_pb.LoadScenarioRequest(yaml=scenario)
        else:
            path = Path(scenario)
            request = admin_pb.LoadScenarioRequest(yaml=path.read_text(encoding="utf-8"), source=path.name)
        response = self.stub.LoadScenario(request)
        self.scenario_loaded = True
        return response

    def update_vehicle(
        self,
        vehicle_id: str,
        vehicle: v2_pb.Vehicle | None = None,
        paths: Iterable[str] = (),
        **fields: Any,
    ) -> admin_pb.UpdateVehicleResponse:
        """Change parts of a vehicle, given as v2 fields in their JSON form (only the leaves named change:
        ``battery={"state_of_charge_percent": 12}`` is the path ``battery.state_of_charge_percent``) or as
        a ``v2_pb.Vehicle`` with the ``paths`` to take from it; the response has the events it emitted."""
        message = v2_pb.Vehicle()
        if vehicle is not None:
            message.CopyFrom(vehicle)
        json_format.ParseDict(fields, message)
        message.id = vehicle_id
        mask = field_mask_pb2.FieldMask(paths=[*paths, *_field_paths(fields)])
        return self.stub.UpdateVehicle(admin_pb.UpdateVehicleRequest(vehicle=message, update_mask=mask))

    def publish_event(self, event: v2_pb.Event | None = None, **fields: Any) -> admin_pb.PublishEventResponse:
        """Publish an event on its vehicle's fleet stream, as a ``v2_pb.Event`` and/or v2 fields in JSON form
        (``vehicle_id=..., lock_changed={"lock_state": "LOCK_STATE_UNLOCKED"}``)."""
        message = v2_pb.Event()
        if event is not None:
            message.CopyFrom(event)
        json_format.ParseDict(fields, message)
        return self.stub.PublishEvent(admin_pb.PublishEventRequest(event=message))

    def fault(
        self,
        method: str = "*",
        code: grpc.StatusCode | None = None,
        *,
        message: str = "",
        reason: str = "",
        details: Iterable[Message] = (),
        break_after: int | None = None,
        latency: timedelta | None = None,
        stall_after: int | None = None,
        fleet_id: str = "",
        vehicle_id: str = "",
        times: int = 0,
        probability: float = 0.0,
        seed: int = 0,
    ) -> Fault:
        """Add a fault rule for ``method`` (a name, a full name or ``*``) doing one thing: fail with ``code``
        (or, with ``break_after``, end a stream with it after that many messages), add ``latency``, or
        stall a stream after ``stall_after`` messages; on the next ``times`` matching calls (0: always)."""
        actions = sum(given is not None for given in (code, latency, stall_after))
        if actions != 1 or (break_after is not None and code is None):
            raise ValueError(
                "give one action: code= (with break_after= for streams), latency= or stall_after="
            )
        rule = admin_pb.Fault(
            method=method,
            fleet_id=fleet_id,
            vehicle_id=vehicle_id,
            times=times,
            probability=probability,
            seed=seed,
        )
        if code is not None and break_after is not None:
            rule.break_stream.CopyFrom(
                admin_pb.BreakStream(after_messages=break_after, code=_code_number(code), message=message)
            )
        elif code is not None:
            rule.fail.CopyFrom(admin_pb.FailCall(code=_code_number(code), message=message, reason=reason))
            for detail in details:
                rule.fail.details.add().Pack(detail)
        elif latency is not None:
            rule.latency.delay.FromTimedelta(latency)
        elif stall_after is not None:
            rule.stall_stream.CopyFrom(admin_pb.StallStream(after_messages=stall_after))
        created = self.stub.CreateFault(admin_pb.CreateFaultRequest(fault=rule)).fault
        return Fault(self.stub, created)

    def clear_faults(self) -> int:
        return self.stub.ClearFaults(admin_pb.ClearFaultsRequest()).deleted

    def journal(
        self, method: str = "", *, flow_id: str = "", code: grpc.StatusCode | int | None = None
    ) -> list[admin_pb.JournalEntry]:
        """The namespace's calls to the emulated API, oldest first: all of them, or those of ``method`` (a
        name or full name), with ``flow_id`` or ending with ``code``."""
        entries: list[admin_pb.JournalEntry] = []
        while True:
            request = admin_pb.ListJournalEntriesRequest(
                method=method,
                flow_id=flow_id,
                after_sequence=entries[-1].sequence if entries else 0,
                page_size=JOURNAL_PAGE,
            )
            if code is not None:
                request.code = _code_number(code)
            page = self.stub.ListJournalEntries(request).entries
            entries.extend(page)
            if len(page) < JOURNAL_PAGE:
                return entries

    def clear_journal(self) -> int:
        return self.stub.ClearJournal(admin_pb.ClearJournalRequest()).deleted


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
