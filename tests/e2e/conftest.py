"""Fixtures of the end-to-end tests: one ``fleet-emulator serve`` process with the demo scenario, shared.

The tests that need no options of their own share it, which keeps the suite fast. It listens on a free port
of 127.0.0.1, is ready once its gRPC health check says SERVING, and is stopped with SIGTERM at the end of
the session; the fixture fails unless it then exits with code 0 within a few seconds (a graceful stop).
The CLI tests get an emulator of their own per module (their clock changes are shared by all namespaces)
and a new namespace per test.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import grpc
import pytest

from fleet_emulator._gen.emulator.admin.v1 import admin_pb2_grpc
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2_grpc as v2_grpc
from tests.e2e.cli import Cli
from tests.e2e.harness import EmulatorProcess, free_port, serve_command, serving


@pytest.fixture(scope="session")
def demo_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    """``fleet-emulator serve`` with the bundled demo scenario, SERVING on a free port of 127.0.0.1."""
    port = free_port()
    log = tmp_path_factory.mktemp("emulator") / "serve.log"
    with serving(serve_command("--host", "127.0.0.1", "--port", str(port)), port, log) as emulator:
        yield emulator


@pytest.fixture(scope="session")
def address(demo_emulator: EmulatorProcess) -> str:
    """``127.0.0.1:<port>`` of the shared demo emulator."""
    return demo_emulator.address


@pytest.fixture(scope="module")
def module_cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """``fleet-emulator serve`` with the demo scenario on a free port, for this module only."""
    port = free_port()
    log = tmp_path_factory.mktemp("cli-admin") / "serve.log"
    with (
        serving(serve_command("--host", "127.0.0.1", "--port", str(port)), port, log) as emulator,
        grpc.insecure_channel(emulator.address) as channel,
    ):
        api, admin = v2_grpc.FleetStateServiceStub(channel), admin_pb2_grpc.AdminServiceStub(channel)
        yield Cli(emulator.address, "", api, admin)


@pytest.fixture
def cli(module_cli: Cli) -> Cli:
    """The CLI in a new namespace of the module's emulator."""
    return module_cli.elsewhere(f"cli-{uuid.uuid4().hex[:12]}")
