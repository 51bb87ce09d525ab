"""Running the CLI against a real ``fleet-emulator serve`` in the e2e tests: ``Cli`` aims the commands and
gRPC stubs at one emulator and namespace; the fixtures in ``conftest.py`` give one per module and test."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, replace

from fleet_emulator._gen.emulator.admin.v1 import admin_pb2, admin_pb2_grpc
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as v2
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2_grpc as v2_grpc
from tests.e2e.harness import FLEET_EMULATOR, clean_env


def fleet_emulator(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``fleet-emulator`` with ``args`` and, as its only ``FLEET_EMULATOR_*`` variables, ``env``."""
    command = [str(FLEET_EMULATOR), *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=30, check=False, env=clean_env(**env)
    )


@dataclass(frozen=True)
class Cli:
    """The CLI and the gRPC stubs, both aimed at the module's emulator and one namespace."""

    address: str
    namespace: str
    api: v2_grpc.FleetStateServiceStub
    admin: admin_pb2_grpc.AdminServiceStub

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("x-emulator-namespace", self.namespace),)

    def elsewhere(self, namespace: str) -> Cli:
        return replace(self, namespace=namespace)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return fleet_emulator(*args, "--address", self.address, "--namespace", self.namespace)

    def ok(self, *args: str) -> str:
        result = self.run(*args)
        assert result.returncode == 0, f"{args} exited with {result.returncode}:\n{result.stderr}"
        return result.stdout

    def fleet_ids(self) -> list[str]:
        fleets = self.api.ListFleets(v2.ListFleetsRequest(), metadata=self.metadata).fleets
        return [fleet.id for fleet in fleets]

    def faults(self) -> list[admin_pb2.Fault]:
        return list(self.admin.ListFaults(admin_pb2.ListFaultsRequest(), metadata=self.metadata).faults)
